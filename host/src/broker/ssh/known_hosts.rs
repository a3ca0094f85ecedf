//! Host key verification: the user's `~/.ssh/known_hosts` plus Soar's own
//! known-hosts file (`<project>/.soar/known_hosts` unless configured).
//!
//! Rules, stricter than a default OpenSSH client:
//! - a key recorded in either file for `[host]:port` that matches → trusted;
//! - keys recorded for the host, none matching → ALWAYS refused, and the
//!   message shows both fingerprints (`SHA256:...`) and the line to remove;
//! - no key recorded → refused, unless the engine says Soar itself created
//!   the host in this deploy (`accept_new`), in which case the key is
//!   appended to Soar's own file (never to `~/.ssh/known_hosts`).

use std::path::{Path, PathBuf};

use russh::keys::{HashAlg, PublicKey};

/// Where host keys are looked up and learned.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    /// Read-only files (the user's).
    pub user_files: Vec<PathBuf>,
    /// Soar's own file: read, and written for hosts accepted as new.
    pub own_file: PathBuf,
}

impl KnownHosts {
    /// `~/.ssh/known_hosts` (when there is a home) and `own_file`.
    pub fn standard(own_file: PathBuf) -> Self {
        let user_files = std::env::var_os("HOME")
            .map(|h| vec![PathBuf::from(h).join(".ssh").join("known_hosts")])
            .unwrap_or_default();
        Self {
            user_files,
            own_file,
        }
    }

    /// Decide whether `key`, presented by `host:port`, is the host's key.
    pub fn verify(
        &self,
        host: &str,
        port: u16,
        key: &PublicKey,
        accept_new: bool,
    ) -> Result<Verdict, String> {
        let mut recorded: Vec<(PathBuf, usize, PublicKey)> = Vec::new();
        for file in self
            .user_files
            .iter()
            .chain(std::iter::once(&self.own_file))
        {
            recorded.extend(
                read(file, host, port)
                    .into_iter()
                    .map(|(line, k)| (file.clone(), line, k)),
            );
        }
        if recorded
            .iter()
            .any(|(_, _, k)| k.key_data() == key.key_data())
        {
            return Ok(Verdict::Known);
        }
        if let Some((file, line, old)) = recorded
            .iter()
            .find(|(_, _, k)| k.algorithm() == key.algorithm())
            .or(recorded.first())
        {
            return Err(format!(
                "HOST KEY MISMATCH for {}: the host presented {} key {} but {}:{line} records {} key {}. \
                 Someone may be intercepting the connection, or the host was rebuilt. Refusing to connect. \
                 If you know the host was rebuilt, remove that line and deploy again.",
                display(host, port),
                key.algorithm(),
                fingerprint(key),
                file.display(),
                old.algorithm(),
                fingerprint(old),
            ));
        }
        if !accept_new {
            return Err(format!(
                "{} is not a known host: its {} key {} is in neither {}. Soar trusts new host keys only for hosts \
                 a provider created in this deploy. Verify the fingerprint, then add it, e.g. \
                 `ssh-keyscan -p {port} {host} >> {}`",
                display(host, port),
                key.algorithm(),
                fingerprint(key),
                self.user_files
                    .iter()
                    .chain(std::iter::once(&self.own_file))
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" nor "),
                self.own_file.display()
            ));
        }
        learn(&self.own_file, host, port, key)
            .map_err(|e| format!("recording the host key of {host}: {e}"))?;
        Ok(Verdict::Learned)
    }
}

/// How a host key was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The key matched one already recorded.
    Known,
    /// New host created by this deploy; its key is now recorded.
    Learned,
}

/// `SHA256:...` as OpenSSH prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

fn display(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Keys recorded for `host:port` in `file` (missing or unreadable files and
/// malformed lines are skipped; hashed host names are supported).
pub fn read(file: &Path, host: &str, port: u16) -> Vec<(usize, PublicKey)> {
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    // Delegate the hostname matching (plain, hashed `|1|`, comma lists) to
    // russh per line, so markers and broken lines elsewhere never abort.
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if l.is_empty() || l.starts_with('#') || l.starts_with('@') {
            continue;
        }
        let Some(tmp) = single_line_file(l) else {
            continue;
        };
        if let Ok(found) = russh::keys::known_hosts::known_host_keys_path(host, port, tmp.path()) {
            out.extend(found.into_iter().map(|(_, k)| (n + 1, k)));
        }
    }
    out
}

fn single_line_file(line: &str) -> Option<tempfile::NamedTempFile> {
    use std::io::Write as _;
    let mut f = tempfile::NamedTempFile::new().ok()?;
    let normalized: Vec<&str> = line.split_whitespace().collect();
    writeln!(f, "{}", normalized.join(" ")).ok()?;
    Some(f)
}

/// Append `host:port key` to `file` (created 0600 with its directory).
pub fn learn(file: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let line = format!(
        "{} {}\n",
        display(host, port),
        key.to_openssh()
            .map_err(|e| std::io::Error::other(e.to_string()))?
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(file)?;
    f.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const ED2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA6rWI3G1sz07DnfFlrouTcysQlj2P+jpNSOEWD9OJ3X";

    fn key(s: &str) -> PublicKey {
        PublicKey::from_openssh(s).unwrap()
    }

    #[test]
    fn known_new_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("known_hosts");
        let kh = KnownHosts {
            user_files: vec![dir.path().join("missing")],
            own_file: own.clone(),
        };
        let err = kh.verify("127.0.0.1", 2201, &key(ED), false).unwrap_err();
        assert!(err.contains("not a known host"), "{err}");
        assert_eq!(
            kh.verify("127.0.0.1", 2201, &key(ED), true).unwrap(),
            Verdict::Learned
        );
        assert_eq!(
            kh.verify("127.0.0.1", 2201, &key(ED), false).unwrap(),
            Verdict::Known
        );
        // Another port is another host.
        assert!(kh.verify("127.0.0.1", 2202, &key(ED2), false).is_err());
        let err = kh.verify("127.0.0.1", 2201, &key(ED2), true).unwrap_err();
        assert!(err.contains("MISMATCH"), "{err}");
        assert!(err.contains(&fingerprint(&key(ED))), "{err}");
        assert!(err.contains(&fingerprint(&key(ED2))), "{err}");
        assert!(fingerprint(&key(ED)).starts_with("SHA256:"));
    }

    #[test]
    fn broken_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kh");
        std::fs::write(
            &f,
            format!("# comment\ngarbage line here\n@cert-authority * {ED2}\n[h]:2 {ED}\n"),
        )
        .unwrap();
        let found = read(&f, "h", 2);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, 4);
    }
}
