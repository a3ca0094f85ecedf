//! The host side of the imports in `wit/host.wit`. Each function forwards to
//! the session's broker (the enforcement point). Time spent here is not
//! guest compute: the store's call hook stops the guest's clock while the
//! host runs, so a host call neither spends nor resets the compute budget.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use sha2::Digest as _;

use super::sandbox::{HostState, clip, cut};
use crate::contract::soar::plugin::{artifacts, clock, http, log, progress, ssh, types};
use crate::contract::{TransportError, TransportReason};
use crate::journal::Event;

type HostResult<T> = wasmtime::Result<T>;

impl types::Host for HostState {}

impl http::Host for HostState {
    async fn send(
        &mut self,
        req: http::Request,
    ) -> HostResult<Result<http::Response, TransportError>> {
        let session = self.session.clone();
        let result = session.http.send(req).await;
        self.resume();
        Ok(result)
    }

    async fn secret_names(&mut self) -> HostResult<Vec<String>> {
        Ok(self.session.http.secret_names())
    }

    async fn credential_claims(&mut self, credential: String) -> HostResult<Option<String>> {
        Ok(self.session.http.credential_claims(&credential))
    }
}

impl HostState {
    /// A refused SSH call goes to the audit trail like a refused HTTP
    /// request: what the plugin tried is as telling as what it did. Only
    /// the start of a long command (or address) is kept, never all of it.
    fn record_denied_ssh(
        &self,
        target: &ssh::Target,
        what: &str,
        e: &crate::broker::ssh::SshError,
    ) {
        const SHOWN: usize = 1024;
        let (what, _) = clip(what, SHOWN);
        let (address, _) = clip(&target.address, SHOWN);
        let error = e.to_string();
        let (error, _) = clip(&error, SHOWN);
        self.session.journal.record(Event::Ssh {
            plugin: self.plugin.name.clone(),
            host: format!("{address}:{}", target.port),
            command: format!("{what} [{error}]"),
            exit: None,
            millis: 0,
        });
    }
}

impl ssh::Host for HostState {
    async fn exec(
        &mut self,
        target: ssh::Target,
        command: String,
        timeout_ms: Option<u32>,
    ) -> HostResult<Result<ssh::Output, TransportError>> {
        let broker = self.session.ssh.clone();
        let plugin = self.plugin.name.clone();
        let host =
            match broker.check_plugin_target(&plugin, &target.address, target.port, &target.user) {
                Ok(h) => h,
                Err(e) => {
                    self.record_denied_ssh(&target, &command, &e);
                    return Ok(Err(ssh_error(e)));
                }
            };
        // A brokered call has its own deadline, within the invocation's.
        let left = self
            .limits
            .invocation_timeout
            .saturating_sub(self.started_at.elapsed());
        let timeout = timeout_ms
            .map(|ms| Duration::from_millis(ms.into()))
            .unwrap_or(Duration::from_secs(300))
            .min(left);
        let r = broker.exec(&plugin, &host, &command, timeout).await;
        self.resume();
        Ok(r.map(|o| ssh::Output {
            exit_code: o.status,
            stdout: o.stdout,
            stderr: o.stderr,
        })
        .map_err(ssh_error))
    }

    async fn upload(
        &mut self,
        target: ssh::Target,
        file: String,
        remote_path: String,
        mode: u32,
    ) -> HostResult<Result<u64, TransportError>> {
        let broker = self.session.ssh.clone();
        let plugin = self.plugin.name.clone();
        let host =
            match broker.check_plugin_target(&plugin, &target.address, target.port, &target.user) {
                Ok(h) => h,
                Err(e) => {
                    self.record_denied_ssh(&target, &format!("upload {file} -> {remote_path}"), &e);
                    return Ok(Err(ssh_error(e)));
                }
            };
        let Some(artifact) = self.session.artifact.clone() else {
            return Ok(Err(transport(
                TransportReason::Invalid,
                "this command deploys no artifact".into(),
            )));
        };
        let local = match artifact.path_of(&file) {
            Ok(p) => p,
            Err(e) => return Ok(Err(transport(TransportReason::Invalid, e.to_string()))),
        };
        let r = broker
            .upload(&plugin, &host, &local, &remote_path, mode & 0o7777)
            .await;
        self.resume();
        Ok(r.map_err(ssh_error))
    }
}

fn ssh_error(e: crate::broker::ssh::SshError) -> TransportError {
    use crate::broker::ssh::SshError as E;
    match e {
        E::Denied(m) => transport(TransportReason::Denied, m),
        E::Timeout(m) => transport(TransportReason::Timeout, m),
        E::HostKey(m) => transport(TransportReason::HostKey, m),
        E::Failed(m) => transport(TransportReason::Connection, m),
    }
}

fn transport(reason: TransportReason, message: String) -> TransportError {
    TransportError {
        reason,
        message,
        size_cap: None,
    }
}

impl artifacts::Host for HostState {
    async fn current(&mut self) -> HostResult<Option<types::Artifact>> {
        Ok(self.session.artifact.as_ref().map(|a| a.describe()))
    }

    async fn read(
        &mut self,
        path: String,
        offset: u64,
        len: u32,
    ) -> HostResult<Result<Vec<u8>, String>> {
        let Some(artifact) = self.session.artifact.clone() else {
            return Ok(Err("this command deploys no artifact".into()));
        };
        let r = tokio::task::spawn_blocking(move || artifact.read(&path, offset, len)).await?;
        self.resume();
        Ok(r.map_err(|e| e.to_string()))
    }

    async fn digest(
        &mut self,
        path: String,
        algorithm: artifacts::DigestAlgorithm,
        input: artifacts::DigestInput,
    ) -> HostResult<Result<String, String>> {
        let Some(artifact) = self.session.artifact.clone() else {
            return Ok(Err("this command deploys no artifact".into()));
        };
        let r = tokio::task::spawn_blocking(move || -> anyhow::Result<String> {
            let content = artifact.read_all(&path)?;
            let mut data = if input.base64_content {
                base64::engine::general_purpose::STANDARD
                    .encode(&content)
                    .into_bytes()
            } else {
                content
            };
            data.extend_from_slice(input.suffix.as_bytes());
            Ok(match algorithm {
                artifacts::DigestAlgorithm::Sha256 => hex::encode(sha2::Sha256::digest(&data)),
                artifacts::DigestAlgorithm::Blake3 => blake3::hash(&data).to_hex().to_string(),
            })
        })
        .await?;
        self.resume();
        Ok(r.map_err(|e| e.to_string()))
    }
}

/// The name a log level is shown and stored with (`warn`, not the
/// binding's `Level::Warn`).
fn level_name(level: log::Level) -> &'static str {
    match level {
        log::Level::Trace => "trace",
        log::Level::Debug => "debug",
        log::Level::Info => "info",
        log::Level::Warn => "warn",
        log::Level::Error => "error",
    }
}

impl log::Host for HostState {
    async fn log(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> HostResult<()> {
        self.resume();
        if self.log_records >= self.limits.log_records || self.log_bytes >= self.caps.log_bytes {
            self.log_dropped += 1;
            return Ok(());
        }
        // Bounded in bytes before anything is copied: the message, then the
        // fields (keys and values) out of one allowance per record.
        let (message, clipped) = clip(&message, self.caps.log_message_bytes);
        let mut clipped = clipped as usize + fields.len().saturating_sub(self.caps.log_fields);
        let mut room = self.caps.log_field_bytes;
        let mut kept = Vec::new();
        for (k, v) in fields.iter().take(self.caps.log_fields) {
            if room == 0 {
                clipped += 1;
                continue;
            }
            let (k, ck) = clip(k, room.min(256));
            room = room.saturating_sub(k.len());
            let (v, cv) = clip(v, room);
            room = room.saturating_sub(v.len());
            clipped += (ck || cv) as usize;
            kept.push((k.into_owned(), v.into_owned()));
        }
        let size = message.len() + kept.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        if self.log_bytes + size > self.caps.log_bytes {
            self.log_bytes = self.caps.log_bytes;
            self.log_dropped += 1;
            return Ok(());
        }
        self.log_records += 1;
        self.log_bytes += size;
        self.log_clipped += clipped;
        let secrets = self.session.http.known_secrets();
        let scrub = |s: &str| crate::credentials::scrub_str(s, &secrets);
        self.session.journal.record(Event::Log {
            plugin: self.plugin.name.clone(),
            level: level_name(level).into(),
            message: scrub(&message),
            fields: kept.iter().map(|(k, v)| (scrub(k), scrub(v))).collect(),
        });
        Ok(())
    }
}

impl progress::Host for HostState {
    async fn report(&mut self, task: String, done: u64, total: Option<u64>) -> HostResult<()> {
        self.resume();
        let task = cut(&task, self.caps.progress_task_bytes);
        // A bounded set of tasks per call: each distinct task is a bar on
        // the terminal, kept until it finishes.
        if !self.progress_tasks.iter().any(|t| *t == task) {
            if self.progress_tasks.len() >= self.caps.progress_tasks {
                self.progress_dropped += 1;
                return Ok(());
            }
            self.progress_tasks.push(task.to_string());
        }
        tracing::trace!(target: "soar::progress", plugin = %self.plugin.name, done, total, "{task}");
        self.session
            .progress
            .report(&self.plugin.name, task, done, total);
        Ok(())
    }
}

impl clock::Host for HostState {
    async fn now_ms(&mut self) -> HostResult<u64> {
        Ok(SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0))
    }

    async fn sleep(&mut self, ms: u64) -> HostResult<()> {
        // Never sleep past the call's deadline: the wall-clock guard would
        // end the call anyway, and this way the plugin sees it first.
        let left = self.time_left();
        tokio::time::sleep(Duration::from_millis(ms).min(left)).await;
        self.resume();
        Ok(())
    }
}
