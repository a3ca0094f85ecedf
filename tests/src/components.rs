//! Components built from `tests/plugins/` by `tests/build.rs`.
