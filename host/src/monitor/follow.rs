//! `soar logs -f`: a service's output as it is written, from every host of
//! an environment at once.
//!
//! - Local: the supervisor's log file, read natively (like `tail -F`: a
//!   truncated or replaced file is read again from its start).
//! - SSH, systemd: the unit's journal (`journalctl --after-cursor`), or the
//!   unit's log file where there is no journal, polled over the broker's
//!   pooled connection. The broker runs commands to completion (it has no
//!   streaming channel), so a remote follow is a poll each
//!   [`REMOTE_POLL`] with a cursor: journald's, or a byte offset.
//! - SSH, Docker: `docker logs --since/--until` windows of the container,
//!   the window's end kept as the cursor.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use tokio::sync::mpsc;

use super::{Place, Service};
use crate::rollout::Manager;
use crate::rollout::docker::container;
use crate::rollout::service::log_file;
use crate::rollout::transport::Transport as _;
use crate::shell::quote;

/// How often a local log file is looked at.
const LOCAL_POLL: Duration = Duration::from_millis(200);
/// How often a remote host is asked for new lines.
pub const REMOTE_POLL: Duration = Duration::from_secs(1);
/// How long one remote poll may take.
const POLL_TIMEOUT: Duration = Duration::from_secs(30);
/// The marker line that carries a remote poll's cursor.
const CURSOR: &str = "-- soar-cursor: ";

/// One line of a service's output.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Line {
    /// The host it came from.
    pub host: String,
    /// The environment.
    pub env: String,
    /// The service.
    pub service: String,
    /// The line, without its newline.
    pub line: String,
}

/// Where to start.
#[derive(Debug, Clone, Copy)]
pub struct Start {
    /// Lines of backlog shown before following.
    pub lines: usize,
    /// Only lines written this long ago or later (journald and Docker; the
    /// local log has no timestamps).
    pub since: Option<Duration>,
    /// Keep following after the backlog (`-f`); without it, the backlog
    /// is all.
    pub follow: bool,
}

/// Follow `svc`, sending each line to `out` until `out` is closed; an
/// error ends the follow of this service only.
pub async fn follow(svc: Service, start: Start, out: mpsc::Sender<Line>) -> anyhow::Result<()> {
    let send = |text: &str| Line {
        host: svc.host(),
        env: svc.env.clone(),
        service: svc.spec.name.clone(),
        line: text.to_string(),
    };
    match &svc.place {
        Place::Local => {
            if start.since.is_some() {
                anyhow::bail!(
                    "--since cannot be applied to the local log of {}: the supervisor's log has no timestamps (use -n LINES)",
                    svc.spec.name
                );
            }
            let path = log_file(Path::new(&svc.spec.root));
            local(&path, start, &out, send).await
        }
        Place::Ssh(r) => {
            let script = |cursor: Option<&str>| match &r.manager {
                Manager::Systemd(sd) => systemd_poll(&sd.prefix, &svc.spec.name, cursor, start),
                Manager::Docker(d) => {
                    docker_poll(&d.settings.command, &svc.spec.name, cursor, start)
                }
            };
            let mut cursor: Option<String> = None;
            loop {
                let command = script(cursor.as_deref())?;
                let polled = r.transport.exec(&command, POLL_TIMEOUT).await?;
                let (lines, next) = split_cursor(&polled.stdout);
                for l in lines {
                    if out.send(send(l)).await.is_err() {
                        return Ok(());
                    }
                }
                if next.is_some() {
                    cursor = next;
                }
                if !start.follow || out.is_closed() {
                    return Ok(());
                }
                tokio::time::sleep(REMOTE_POLL).await;
            }
        }
    }
}

/// Most bytes of a log line held back waiting for its newline (a local
/// file, or a remote unit's log file).
const MAX_PARTIAL: usize = 64 * 1024;

/// Follow a local file: its last `backlog` lines, then what is appended,
/// until nobody listens on `out`.
async fn local<T>(
    path: &PathBuf,
    start: Start,
    out: &mpsc::Sender<T>,
    make: impl Fn(&str) -> T,
) -> anyhow::Result<()> {
    let (backlog, mut offset) = {
        let (file, n) = (path.clone(), start.lines);
        tokio::task::spawn_blocking(move || crate::rollout::service::tail_lines(&file, n))
            .await?
            .map_err(|e| {
                anyhow::anyhow!(
                    "reading {}: {e} (has the service been deployed?)",
                    path.display()
                )
            })?
    };
    for l in &backlog {
        if out.send(make(l)).await.is_err() {
            return Ok(());
        }
    }
    if !start.follow {
        return Ok(());
    }
    let mut partial = Vec::new();
    while !out.is_closed() {
        tokio::time::sleep(LOCAL_POLL).await;
        let Ok(len) = tokio::fs::metadata(path).await.map(|m| m.len()) else {
            continue;
        };
        if len < offset {
            // Truncated or replaced: start over from the top.
            offset = 0;
            partial.clear();
        }
        if len == offset {
            continue;
        }
        let mut file = tokio::fs::File::open(path).await?;
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        let mut fresh = Vec::new();
        file.take(len - offset).read_to_end(&mut fresh).await?;
        offset += fresh.len() as u64;
        partial.extend_from_slice(&fresh);
        // Whole lines only; a line still being written waits for its end,
        // up to MAX_PARTIAL bytes (a service that never ends its line must
        // not grow this buffer without bound): then it goes out as it is.
        loop {
            let end = match partial.iter().position(|b| *b == b'\n') {
                Some(nl) => nl + 1,
                None if partial.len() >= MAX_PARTIAL => MAX_PARTIAL,
                None => break,
            };
            let line: Vec<u8> = partial.drain(..end).collect();
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches('\n').trim_end_matches('\r');
            if out.send(make(text)).await.is_err() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The poll of a systemd unit's output: its journal when it has one, else
/// the unit's log file (systemd stand-ins write one).
fn systemd_poll(
    prefix: &str,
    name: &str,
    cursor: Option<&str>,
    start: Start,
) -> anyhow::Result<String> {
    let unit = quote(name)?;
    let file = quote(&format!("{prefix}/var/log/journal/{name}.service.log"))?;
    let since = start
        .since
        .map(|d| format!(" --since=-{}s", d.as_secs().max(1)))
        .unwrap_or_default();
    let journal_from = match cursor.filter(|c| !c.starts_with("off:")) {
        Some(c) => format!("--after-cursor={}", quote(c)?),
        None => format!("-n {}{since}", start.lines),
    };
    // The file's window since the cursor's offset (0 at first), up to the
    // size just measured (what is written after it is the next poll's),
    // without a last line still being written: its bytes are `keep`, read
    // again next time, so a line is never split across two polls (up to
    // MAX_PARTIAL bytes; a longer unfinished line goes out as it is). A
    // file that shrank was rotated or truncated: from the top again.
    let offset = cursor.and_then(|c| c.strip_prefix("off:"));
    let off = offset.map(str::parse::<u64>).transpose()?.unwrap_or(0);
    // The first poll of the file shows only its last lines.
    let backlog = match offset {
        Some(_) => String::new(),
        None => format!(" | tail -n {}", start.lines),
    };
    Ok(format!(
        "if journalctl -u {unit} -n 1 -q --no-pager 2>/dev/null | grep -q .; then \
           journalctl -u {unit} -o cat -q --no-pager --show-cursor {journal_from} | sed 's/^-- cursor: /{CURSOR}/'; \
         else size=$(wc -c < {file} 2>/dev/null || echo 0); off={off}; [ \"$size\" -ge \"$off\" ] || off=0; keep=0; \
           if [ \"$size\" -gt \"$off\" ] && [ \"$(tail -c +$size {file} | head -c 1 | wc -l)\" -eq 0 ]; then \
             s=$((size-off > {MAX_PARTIAL} ? size-{MAX_PARTIAL} : off)); \
             keep=$(tail -c +$((s+1)) {file} | head -c $((size-s)) | tail -n 1 | wc -c); \
             [ \"$keep\" -lt {MAX_PARTIAL} ] || keep=0; \
           fi; end=$((size-keep)); \
           if [ \"$end\" -gt \"$off\" ]; then tail -c +$((off+1)) {file} | head -c $((end-off)){backlog}; fi; \
           echo; echo \"{CURSOR}off:$end\"; fi"
    ))
}

/// The poll of a container's output: the window from the cursor (a remote
/// `date +%s.%N`) to now.
fn docker_poll(
    cli: &str,
    name: &str,
    cursor: Option<&str>,
    start: Start,
) -> anyhow::Result<String> {
    let c = quote(&container(name))?;
    let from = match cursor {
        Some(t) => format!("--since {}", quote(t)?),
        None => match start.since {
            Some(d) => format!("--since {}s", d.as_secs().max(1)),
            None => format!("--tail {}", start.lines),
        },
    };
    // The service's stderr comes through `docker logs`' own, hence `2>&1`;
    // asked only while the container exists, so the engine's "No such
    // container" (during a redeploy's swap) is not shown as the service's.
    Ok(format!(
        "now=$(date +%s.%N); if {cli} inspect {c} >/dev/null 2>&1; then {cli} logs {from} --until \"$now\" {c} 2>&1; fi; echo \"{CURSOR}$now\""
    ))
}

/// A poll's output: its lines, and the cursor its last marker line names.
/// Blank lines next to the marker are the marker's padding.
fn split_cursor(text: &str) -> (Vec<&str>, Option<String>) {
    let mut lines: Vec<&str> = text.lines().collect();
    let cursor = lines
        .iter()
        .rposition(|l| l.starts_with(CURSOR))
        .map(|i| lines.remove(i)[CURSOR.len()..].trim().to_string());
    if cursor.is_some() && lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    (lines, cursor)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file poll run by a real `sh` on a real file: a line still being
    /// written waits for its end, a truncated file starts over, and a line
    /// longer than MAX_PARTIAL goes out unfinished.
    #[test]
    fn a_file_poll_never_splits_a_line() {
        use std::io::Write as _;
        let root = tempfile::tempdir().unwrap();
        let prefix = root.path().display().to_string();
        let dir = root.path().join("var/log/journal");
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("svc.service.log");
        let start = Start {
            lines: 10,
            since: None,
            follow: true,
        };
        let poll = |cursor: Option<&str>| {
            let script = systemd_poll(&prefix, "svc", cursor, start).unwrap();
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            let text = String::from_utf8(out.stdout).unwrap();
            let (lines, next) = split_cursor(&text);
            let lines: Vec<String> = lines.into_iter().map(str::to_string).collect();
            (lines, next.unwrap())
        };
        let append = |bytes: &[u8]| {
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .unwrap();
            f.write_all(bytes).unwrap();
        };

        append(b"a\nb\npart");
        let (lines, cursor) = poll(None);
        assert_eq!(
            (lines, cursor.as_str()),
            (vec!["a".into(), "b".into()], "off:4")
        );
        let (lines, cursor) = poll(Some(&cursor));
        assert_eq!((lines, cursor.as_str()), (vec![], "off:4"), "still partial");
        append(b"ial\nc\n");
        let (lines, cursor) = poll(Some(&cursor));
        assert_eq!(
            (lines, cursor.as_str()),
            (vec!["partial".into(), "c".into()], "off:14")
        );

        std::fs::write(&file, "x\n").unwrap();
        let (lines, cursor) = poll(Some(&cursor));
        assert_eq!(
            (lines, cursor.as_str()),
            (vec!["x".into()], "off:2"),
            "truncated"
        );

        let long = vec![b'z'; MAX_PARTIAL + 10];
        append(&long);
        let (lines, cursor) = poll(Some(&cursor));
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0].len(),
            MAX_PARTIAL + 10,
            "an unending line goes out"
        );
        assert_eq!(cursor, format!("off:{}", 2 + MAX_PARTIAL + 10));
    }

    #[test]
    fn the_cursor_line_is_not_output() {
        let (lines, cursor) = split_cursor("a\nb\n\n-- soar-cursor: off:42\n");
        assert_eq!((lines, cursor.as_deref()), (vec!["a", "b"], Some("off:42")));
        let (lines, cursor) = split_cursor("x\n");
        assert_eq!((lines, cursor), (vec!["x"], None));
    }

    #[tokio::test]
    async fn a_local_file_is_followed_line_by_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service.log");
        std::fs::write(&path, "old 1\nold 2\nold 3\n").unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn({
            let path = path.clone();
            let start = Start {
                lines: 2,
                since: None,
                follow: true,
            };
            async move { local(&path, start, &tx, str::to_string).await }
        });
        assert_eq!(rx.recv().await.unwrap(), "old 2");
        assert_eq!(rx.recv().await.unwrap(), "old 3");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut f, b"new, half").unwrap();
        std::io::Write::write_all(&mut f, b" done\n").unwrap();
        assert_eq!(rx.recv().await.unwrap(), "new, half done");
        // A line that never ends is passed on in MAX_PARTIAL pieces.
        std::io::Write::write_all(&mut f, &vec![b'x'; MAX_PARTIAL + 10]).unwrap();
        assert_eq!(rx.recv().await.unwrap().len(), MAX_PARTIAL);
        std::io::Write::write_all(&mut f, b"\n").unwrap();
        assert_eq!(rx.recv().await.unwrap(), "x".repeat(10));
        task.abort();
    }
}
