//! Durations as people write them in a config file. The grammar lives in
//! `soar-text`, shared with plugins (through `soar-sdk`) so `[hooks]` and
//! `[env.<name>]` accept the same forms; this module keeps the names the
//! config code uses.

pub use soar_text::{DURATION_FORMS as FORMS, parse_duration};
