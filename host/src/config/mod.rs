//! soar.toml: parsing and validation with file:line:col diagnostics.
