//! Test support for Soar.
