//! Commands whose output is shown as it arrives (`soar exec`), rather than
//! collected and returned at the end, and commands on a pseudo-terminal
//! (`soar exec --interactive`): same connection, host-key check, `sudo`
//! rule and journal record as [`SshBroker::exec`].

use std::time::{Duration, Instant};

use russh::ChannelMsg;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

use super::{HostSpec, SshBroker, SshError, clip};

/// Which of a command's outputs a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// What a streamed command ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// The remote exit status: 128 when a signal killed it, -1 when the
    /// channel closed before any status came.
    pub status: i32,
}

impl super::Exit for Exit {
    fn exit(&self) -> Option<i32> {
        Some(self.status)
    }
}

/// The pseudo-terminal an interactive command gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pty {
    /// `$TERM` (e.g. `xterm-256color`).
    pub term: String,
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
}

impl SshBroker {
    /// Run `command` on `host` within `timeout`, handing each chunk of its
    /// stdout and stderr to `sink` as it arrives. Nothing is read from
    /// stdin (it is closed at once).
    pub async fn exec_streaming(
        &self,
        who: &str,
        host: &HostSpec,
        command: &str,
        timeout: Duration,
        sink: &mut (dyn FnMut(Stream, &[u8]) + Send),
    ) -> Result<Exit, SshError> {
        let started = Instant::now();
        let work = async {
            let (mut out, write) = self.start(host, command).await?;
            write
                .eof()
                .await
                .map_err(|e| SshError::Failed(format!("on {}: {e}", host.describe())))?;
            let mut status = -1;
            loop {
                match out.read.wait().await {
                    Some(ChannelMsg::Data { data }) => sink(Stream::Stdout, &data),
                    Some(ChannelMsg::ExtendedData { data, ext: 1 }) => sink(Stream::Stderr, &data),
                    Some(ChannelMsg::ExitStatus { exit_status }) => status = exit_status as i32,
                    Some(ChannelMsg::ExitSignal { signal_name, .. }) => {
                        status = 128;
                        sink(
                            Stream::Stderr,
                            format!("killed by signal {signal_name:?}\n").as_bytes(),
                        );
                    }
                    Some(ChannelMsg::Close) | None => break,
                    Some(_) => {}
                }
            }
            if status == -1 {
                return Err(SshError::Failed(format!(
                    "the connection to {} was lost before `{}` finished",
                    host.describe(),
                    clip(command, 200)
                )));
            }
            Ok(Exit { status })
        };
        let r = tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| {
                Err(SshError::Timeout(format!(
                    "`{}` on {} did not finish within {} s",
                    clip(command, 200),
                    host.describe(),
                    timeout.as_secs()
                )))
            });
        self.record(who, host, command, &r, started);
        r
    }

    /// Run `command` on `host` on a pseudo-terminal: `input` (the user's
    /// terminal, in raw mode) goes to it, its output to `output`, until it
    /// exits. No timeout: a person is at the keyboard.
    pub async fn exec_interactive(
        &self,
        who: &str,
        host: &HostSpec,
        command: &str,
        pty: &Pty,
        mut input: impl AsyncRead + Unpin,
        mut output: impl AsyncWrite + Unpin,
    ) -> Result<Exit, SshError> {
        let started = Instant::now();
        let fail = |e: russh::Error| SshError::Failed(format!("on {}: {e}", host.describe()));
        let io = |e: std::io::Error| SshError::Failed(format!("the local terminal: {e}"));
        let work = async {
            let (mut out, write) = self.start_with(host, command, Some(pty)).await?;
            let mut buf = vec![0u8; 8 << 10];
            let mut input_open = true;
            let mut status = -1;
            loop {
                tokio::select! {
                    n = input.read(&mut buf), if input_open => match n.map_err(io)? {
                        0 => {
                            input_open = false;
                            write.eof().await.map_err(fail)?;
                        }
                        n => write.data_bytes(buf[..n].to_vec()).await.map_err(fail)?,
                    },
                    msg = out.read.wait() => match msg {
                        Some(ChannelMsg::Data { data }) | Some(ChannelMsg::ExtendedData { data, .. }) => {
                            output.write_all(&data).await.map_err(io)?;
                            output.flush().await.map_err(io)?;
                        }
                        Some(ChannelMsg::ExitStatus { exit_status }) => status = exit_status as i32,
                        Some(ChannelMsg::ExitSignal { .. }) => status = 128,
                        Some(ChannelMsg::Close) | None => break,
                        Some(_) => {}
                    },
                }
            }
            Ok(Exit { status })
        };
        let r = work.await;
        self.record(who, host, &format!("{command} [interactive]"), &r, started);
        r
    }
}
