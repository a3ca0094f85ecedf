//! "Did you mean ...?" for misspelt keys, kinds and provider names. The
//! rule lives in `soar-text`, shared with plugins (through `soar-sdk`) so a
//! typo gets the same suggestion whoever reads the key.

pub(crate) use soar_text::closest;
