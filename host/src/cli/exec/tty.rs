//! The local terminal for `soar exec --interactive`: its size and type for
//! the remote pseudo-terminal, and raw mode while the session runs (so
//! keys such as Ctrl-C and arrows reach the remote program, as with `ssh
//! -t`), restored however the session ends.

use std::io::IsTerminal as _;
use std::os::fd::AsRawFd as _;

use crate::broker::ssh::Pty;

/// Standard input in raw mode until dropped.
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    /// Put standard input in raw mode; an error when it is not a terminal.
    pub fn enter() -> anyhow::Result<Self> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            anyhow::bail!(
                "--interactive needs a terminal on standard input (run it from a shell, or drop --interactive to run a command without one)"
            );
        }
        let fd = stdin.as_raw_fd();
        // SAFETY: `termios` is plain data that tcgetattr fills in; `fd` is
        // this process's open standard input.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            anyhow::bail!(
                "reading the terminal's settings: {}",
                std::io::Error::last_os_error()
            );
        }
        let mut raw = saved;
        // SAFETY: `raw` is a valid termios copied from the terminal's.
        unsafe { libc::cfmakeraw(&mut raw) };
        // SAFETY: `fd` is a terminal and `raw` a valid termios.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            anyhow::bail!(
                "switching the terminal to raw mode: {}",
                std::io::Error::last_os_error()
            );
        }
        Ok(Self { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: restores the settings read from this same terminal.
        unsafe { libc::tcsetattr(std::io::stdin().as_raw_fd(), libc::TCSANOW, &self.saved) };
    }
}

/// The remote pseudo-terminal: this terminal's `$TERM` and size (80x24
/// when the size cannot be read).
pub fn pty() -> Pty {
    // SAFETY: `winsize` is plain data that TIOCGWINSZ fills in.
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer given.
    let ok = unsafe { libc::ioctl(std::io::stdout().as_raw_fd(), libc::TIOCGWINSZ, &mut ws) } == 0;
    let (cols, rows) = if ok && ws.ws_col > 0 && ws.ws_row > 0 {
        (u32::from(ws.ws_col), u32::from(ws.ws_row))
    } else {
        (80, 24)
    };
    Pty {
        term: std::env::var("TERM")
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| "xterm-256color".into()),
        cols,
        rows,
    }
}
