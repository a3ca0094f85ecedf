//! Client authentication: the ssh-agent (`SSH_AUTH_SOCK`) first, then key
//! files (the configured `identity_file`, else the host's `IdentityFile`s
//! from the SSH client config, else `~/.ssh/id_ed25519`, `id_ecdsa`,
//! `id_rsa`). Ed25519, ECDSA and RSA keys are supported (RSA
//! signs with the best SHA-2 hash the server accepts). Encrypted key files
//! need the agent; Soar never prompts for a passphrase.

use std::path::PathBuf;
use std::sync::Arc;

use russh::client::Handle;
use russh::keys::agent::AgentIdentity;
use russh::keys::{PrivateKeyWithHashAlg, load_secret_key};

/// Which credentials to try.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// An explicit key file; when set, default key files are not tried.
    pub identity_file: Option<PathBuf>,
    /// Whether to ask the agent at `SSH_AUTH_SOCK`.
    pub use_agent: bool,
}

impl AuthConfig {
    /// The key files to offer: soar.toml's `identity_file` alone when set;
    /// else the host's `IdentityFile`s from the SSH client config (those
    /// that exist, as ssh skips missing ones); else the default files.
    fn key_files(&self, from_client_config: &[PathBuf]) -> Vec<PathBuf> {
        if let Some(f) = &self.identity_file {
            return vec![f.clone()];
        }
        if !from_client_config.is_empty() {
            return from_client_config
                .iter()
                .filter(|p| p.exists())
                .cloned()
                .collect();
        }
        let Some(home) = std::env::var_os("HOME") else {
            return Vec::new();
        };
        let ssh = PathBuf::from(home).join(".ssh");
        ["id_ed25519", "id_ecdsa", "id_rsa"]
            .iter()
            .map(|n| ssh.join(n))
            .filter(|p| p.exists())
            .collect()
    }
}

/// Authenticate `user`, offering the agent's keys, then the key files
/// ([`AuthConfig`]; `from_client_config` are the host's `IdentityFile`s);
/// on failure, say what was tried.
pub async fn authenticate<H: russh::client::Handler>(
    handle: &mut Handle<H>,
    user: &str,
    cfg: &AuthConfig,
    from_client_config: &[PathBuf],
) -> Result<(), String> {
    let mut tried = Vec::new();
    if cfg.use_agent && std::env::var_os("SSH_AUTH_SOCK").is_some() {
        match russh::keys::agent::client::AgentClient::connect_env().await {
            Ok(mut agent) => {
                let ids = agent.request_identities().await.unwrap_or_default();
                for id in ids {
                    let AgentIdentity::PublicKey { key, comment } = id else {
                        continue;
                    };
                    let hash = if key.algorithm().is_rsa() {
                        handle
                            .best_supported_rsa_hash()
                            .await
                            .ok()
                            .flatten()
                            .flatten()
                    } else {
                        None
                    };
                    match handle
                        .authenticate_publickey_with(user, key.clone(), hash, &mut agent)
                        .await
                    {
                        Ok(r) if r.success() => return Ok(()),
                        _ => tried.push(format!("agent key {comment}")),
                    }
                }
            }
            Err(e) => tried.push(format!("ssh-agent ({e})")),
        }
    }
    for file in cfg.key_files(from_client_config) {
        let key = match load_secret_key(&file, None) {
            Ok(k) => Arc::new(k),
            Err(e) => {
                tried.push(format!("{} (unreadable: {e})", file.display()));
                continue;
            }
        };
        let hash = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .ok()
                .flatten()
                .flatten()
        } else {
            None
        };
        match handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(key, hash))
            .await
        {
            Ok(r) if r.success() => return Ok(()),
            Ok(_) => tried.push(file.display().to_string()),
            Err(e) => tried.push(format!("{} ({e})", file.display())),
        }
    }
    Err(if tried.is_empty() {
        "no SSH credentials: set `identity_file` in [env.<name>.ssh], or start an ssh-agent with your key".into()
    } else {
        format!("the host refused every key: {}", tried.join(", "))
    })
}
