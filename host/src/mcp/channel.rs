//! The protocol's channel: this process's stdin and stdout, and nothing
//! else may touch them.
//!
//! Over stdio, stdout *is* the protocol: one stray line on it — a
//! `println!` deep in some library, a hook's or a child's inherited output —
//! is a JSON-RPC frame the client cannot parse, and most clients drop the
//! connection on that. Rather than trust every code path (and every child
//! process) never to write there, [`take`] moves the two streams to private
//! descriptors, closed on exec so no child inherits them, and points fd 1 at
//! stderr and fd 0 at `/dev/null`. Whatever prints to stdout afterwards
//! lands in the client's log of our stderr; whatever reads stdin gets EOF
//! instead of stealing protocol bytes.

use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};

use anyhow::Context as _;

/// The protocol's two ends, as async files.
pub struct Channel {
    /// Requests and notifications from the client (the original stdin).
    pub input: tokio::fs::File,
    /// Responses to the client (the original stdout).
    pub output: tokio::fs::File,
}

/// Take stdin and stdout for the protocol (see the module documentation).
/// Call once, before anything else can print.
pub fn take() -> anyhow::Result<Channel> {
    // `try_clone_to_owned` duplicates with F_DUPFD_CLOEXEC: children of
    // this process never hold the protocol's pipes (a supervisor that did
    // would keep the client from ever seeing EOF).
    let input = std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stdin for the MCP channel")?;
    let output = std::io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .context("duplicating stdout for the MCP channel")?;
    let null = std::fs::File::open("/dev/null").context("opening /dev/null")?;
    redirect(&null, 0).context("pointing stdin at /dev/null")?;
    redirect(&std::io::stderr(), 1).context("pointing stdout at stderr")?;
    Ok(Channel {
        input: file(input),
        output: file(output),
    })
}

/// Make descriptor `target` a copy of `from`.
fn redirect(from: &impl std::os::fd::AsFd, target: i32) -> std::io::Result<()> {
    let from = from.as_fd().as_raw_fd();
    // SAFETY: dup2 on two descriptors this process holds open; `target` is
    // 0 or 1, which std's stdin and stdout handles keep using — after this
    // call they refer to the new file, which is the point.
    if unsafe { libc::dup2(from, target) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A descriptor as a tokio file. Pipes, sockets and files all work: tokio
/// reads and writes a `File` on its blocking pool, as it does for stdio.
fn file(fd: OwnedFd) -> tokio::fs::File {
    tokio::fs::File::from_std(std::fs::File::from(fd))
}
