//! A tiny HTTP service to deploy: `GET /` greets, `GET /health` says ok.
//! Every answer names the directory it was served from (`x-served-from`),
//! so you can see which release (and which host) answered.
//! Standard library plus `socket2`, so it builds in seconds on a fresh
//! machine.
//!
//! Environment: `PORT` (default 8080), `GREETING`, `BIND_ADDR` (default
//! `127.0.0.1`; `0.0.0.0` in a container image), and `REUSE_PORT=1` to share
//! the port with other instances (SO_REUSEPORT: several test "hosts" on one
//! machine, or an overlap during a restart).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello from Soar".into());
    // 127.0.0.1 unless told otherwise: inside a container the published
    // port reaches the container's own interface, so images set
    // BIND_ADDR=0.0.0.0.
    let addr = std::env::var("BIND_ADDR").unwrap_or_else(|_| "127.0.0.1".into());
    let reuse = std::env::var("REUSE_PORT").is_ok_and(|v| v == "1");
    let listener = match listen(&addr, port.parse::<u16>().unwrap_or(8080), reuse) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hello: cannot listen on {addr}:{port}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("hello: listening on http://{addr}:{port}");
    for stream in listener.incoming().flatten() {
        let greeting = greeting.clone();
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, &greeting) {
                eprintln!("hello: {e}");
            }
        });
    }
}

/// Bind `addr:port`, with SO_REUSEPORT when asked.
fn listen(addr: &str, port: u16, reuse: bool) -> std::io::Result<TcpListener> {
    use std::net::ToSocketAddrs as _;
    let at = (addr, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other(format!("{addr} has no address")))?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(at),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    if reuse {
        socket.set_reuse_port(true)?;
    }
    socket.bind(&at.into())?;
    socket.listen(128)?;
    Ok(socket.into())
}

fn serve(mut stream: TcpStream, greeting: &str) -> std::io::Result<()> {
    let mut request_line = String::new();
    let mut reader = BufReader::new(stream.try_clone()?);
    reader.read_line(&mut request_line)?;
    // Drain the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, body) = match path {
        "/health" => ("200 OK", "ok\n".to_string()),
        "/" => ("200 OK", format!("{greeting}\n")),
        _ => ("404 Not Found", "not found\n".to_string()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nX-Served-From: {}\r\nConnection: close\r\n\r\n{body}",
        body.len(),
        std::env::current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    )
}
