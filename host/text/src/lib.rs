//! How Soar reads what people type, in one place for the host and plugins.
//!
//! A user writes `timeout = "30s"` in `[hooks]` (read by the host) and
//! `wait_timeout = "30s"` in `[env.<name>]` (read by a plugin); both must
//! accept the same forms and reject the same mistakes with the same words.
//! Likewise a misspelt key gets the same "did you mean" whoever reads it.
//! This crate is that single definition. It has no dependencies so that it
//! builds natively and for `wasm32-wasip2` alike; the host uses it directly,
//! plugins through `soar-sdk`.

mod duration;
mod spelling;

pub use duration::{DURATION_FORMS, parse_duration};
pub use spelling::{closest, distance};
