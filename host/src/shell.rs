//! Quoting for POSIX `sh`: every path, name and value that goes into a
//! command line run on a host (over SSH or locally) passes through
//! [`quote`], never interpolated raw.
//!
//! A leaf module: the SSH broker, the rollout and the hooks all quote the
//! same way, and none of them owns the rule.

use std::fmt;

/// A value that no shell word can carry: `sh` ends a C string at a NUL
/// byte, so anything after it would be silently dropped from the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NulByte {
    /// Byte offset of the first NUL in the value.
    pub at: usize,
}

impl fmt::Display for NulByte {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a value for a shell command holds a NUL byte (at byte {}), which no shell \
             argument can carry; remove it from the configuration or artifact it came from",
            self.at
        )
    }
}

impl std::error::Error for NulByte {}

/// Quote `s` as one `sh` word. Fails on a NUL byte instead of passing a
/// shortened or empty word.
pub fn quote(s: &str) -> Result<String, NulByte> {
    if let Some(at) = s.bytes().position(|b| b == 0) {
        return Err(NulByte { at });
    }
    // Without NUL, shlex quotes every string.
    shlex::try_quote(s)
        .map(|q| q.into_owned())
        .map_err(|_| NulByte { at: 0 })
}

#[cfg(test)]
mod tests {
    use super::{NulByte, quote};

    #[test]
    fn quoting() {
        assert_eq!(quote("/opt/app/releases/1").unwrap(), "/opt/app/releases/1");
        assert_eq!(quote("a b").unwrap(), "'a b'");
        assert_eq!(quote("").unwrap(), "''");
        for tricky in ["it's", "a\"b", "$HOME", "`id`", "x\ny", "; rm -rf /"] {
            let q = quote(tricky).unwrap();
            assert_eq!(shlex::split(&q), Some(vec![tricky.to_string()]), "{q}");
        }
    }

    #[test]
    fn a_nul_byte_is_refused_not_dropped() {
        assert_eq!(quote("a\0b"), Err(NulByte { at: 1 }));
        assert_eq!(quote("\0"), Err(NulByte { at: 0 }));
        assert!(quote("x\0").unwrap_err().to_string().contains("NUL byte"));
    }
}
