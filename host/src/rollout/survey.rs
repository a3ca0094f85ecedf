//! What a host holds before a rollout, learnt in one round trip, and the
//! stamp that lets a re-deploy of what already runs skip the restart.
//!
//! Before this, a rollout asked the host one question per command (is the
//! release there? which is current? which releases exist?). [`survey`]
//! asks them all in one `sh` line. Its answer also carries the *start
//! stamp*: a digest of what the service was last started with (release,
//! environment file, start command, port). Every switch of `current`
//! removes it first ([`clear_stamp`]) and only a start that passed its
//! health check writes it ([`record_stamp`]), so a stamp on the host means
//! "this is what runs". A rollout whose release is current, whose stamp
//! matches and whose service is running and answers its health check has
//! nothing to do: it leaves the service alone instead of restarting it
//! ([`still_serving`]).
//!
//! Writing the stamp with the switch, before the restart, was wrong: a
//! deploy killed between the two left the new release current and stamped
//! while the old process still served, and the re-run skipped the restart.

use std::time::Duration;

use sha2::{Digest as _, Sha256};

use super::service::{ServiceManager, ServiceSpec};
use super::transport::Transport;
use super::{Health, STEP_TIMEOUT};
use crate::shell::quote;

/// Where the start stamp lives, under the service root.
const STAMP_FILE: &str = "shared/.soar-started";

/// A host's answer to [`survey`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Survey {
    /// The release directory already holding the artifact's digest.
    pub found: Option<String>,
    /// The release `current` points at.
    pub current: Option<String>,
    /// The start stamp of the running release, if any was written.
    pub started: Option<String>,
    /// Every release directory (`.partial` ones included).
    pub releases: Vec<String>,
}

/// Ask the host, in one command, for the release holding `digest`, the
/// current release, the start stamp and the release directories.
pub async fn survey<T: Transport>(t: &T, root: &str, digest: &str) -> anyhow::Result<Survey> {
    let script = format!(
        "cd {root} 2>/dev/null || exit 0; \
         for f in releases/*/.soar-digest; do [ -f \"$f\" ] && [ \"$(cat \"$f\")\" = {digest} ] \
         && echo \"found $(basename \"$(dirname \"$f\")\")\" && break; done; \
         c=$(readlink current 2>/dev/null) && echo \"current $c\"; \
         [ -f {stamp} ] && echo \"started $(cat {stamp})\"; \
         ls -1 releases 2>/dev/null | sed 's/^/release /'; true",
        root = quote(root)?,
        digest = quote(digest)?,
        stamp = STAMP_FILE,
    );
    let out = t
        .exec(&script, STEP_TIMEOUT)
        .await?
        .check("looking at the releases on the host")?;
    Ok(parse(&out.stdout))
}

fn parse(stdout: &str) -> Survey {
    let mut s = Survey::default();
    for line in stdout.lines() {
        let Some((key, value)) = line.split_once(' ') else {
            continue;
        };
        let value = value.trim().to_string();
        if value.is_empty() {
            continue;
        }
        match key {
            "found" => s.found = s.found.or(Some(value)),
            "current" => s.current = Some(value.trim_start_matches("releases/").to_string()),
            "started" => s.started = Some(value),
            "release" => s.releases.push(value),
            _ => {}
        }
    }
    s
}

/// The start stamp of `release` started with `env` (the rendered
/// environment file) as `spec`: a digest, so the file on the host says
/// nothing about the environment's values.
pub fn stamp(release: &str, env: &str, spec: &ServiceSpec) -> String {
    let mut h = Sha256::new();
    for part in [release, env, &spec.command, &spec.port.to_string()] {
        h.update(part.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// The shell command that removes the start stamp: run before `current`
/// moves, so no stamp names a release that is not running yet.
pub fn clear_stamp(root: &str) -> anyhow::Result<String> {
    Ok(format!("rm -f {}", quote(&format!("{root}/{STAMP_FILE}"))?))
}

/// The shell command that records `stamp` as what the service runs: only
/// after a start passed its health check.
pub fn record_stamp(root: &str, stamp: &str) -> anyhow::Result<String> {
    Ok(format!(
        "printf '%s' {} > {}",
        quote(stamp)?,
        quote(&format!("{root}/{STAMP_FILE}"))?
    ))
}

/// Whether the service already runs what a rollout would start: it is
/// running and answers its health check at once (one probe, no retries).
/// The answer, for the report; `None` means "restart it".
pub async fn still_serving<T: Transport, S: ServiceManager>(
    t: &T,
    svc: &S,
    spec: &ServiceSpec,
    health: &Health,
) -> Option<String> {
    if !svc.is_running(spec).await.unwrap_or(false) {
        return None;
    }
    let wait = health.timeout.min(Duration::from_secs(5));
    match t.probe_http(spec.port, &health.path, wait).await {
        Ok((status, _)) if (200..300).contains(&status) => Some(format!(
            "GET {} answered {status} (already running; not restarted)",
            health.path
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_answer_for_every_question() {
        let s = parse(
            "found 20260101T000000Z-aa\ncurrent releases/20260101T000000Z-aa\nstarted abc\n\
             release 20251231T000000Z-bb\nrelease 20260101T000000Z-aa\n",
        );
        assert_eq!(s.found.as_deref(), Some("20260101T000000Z-aa"));
        assert_eq!(s.current.as_deref(), Some("20260101T000000Z-aa"));
        assert_eq!(s.started.as_deref(), Some("abc"));
        assert_eq!(s.releases.len(), 2);
        assert_eq!(parse(""), Survey::default());
    }

    #[test]
    fn the_stamp_changes_with_what_the_service_starts_with() {
        let spec = ServiceSpec {
            name: "web".into(),
            root: "/srv/web".into(),
            command: "./web".into(),
            port: 8080,
        };
        let base = stamp("r1", "A=1\n", &spec);
        assert_eq!(base, stamp("r1", "A=1\n", &spec));
        assert_ne!(base, stamp("r2", "A=1\n", &spec));
        assert_ne!(base, stamp("r1", "A=2\n", &spec));
        let moved = ServiceSpec {
            port: 8081,
            ..spec.clone()
        };
        assert_ne!(base, stamp("r1", "A=1\n", &moved));
        assert!(!base.contains("A=1"));
    }
}
