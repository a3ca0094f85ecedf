//! A Server-Sent Events parser (the WHATWG "event stream" format), fed
//! bytes as they arrive and handing back whole messages.
//!
//! Only what a client of `soar serve` needs: the `event`, `data` and `id`
//! fields, comments (the server's keep-alives) skipped, any of `\n`,
//! `\r\n` or `\r` ending a line. A message is dispatched at the blank line
//! that ends it, so a message cut across two reads is never seen half.

/// One dispatched message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its `event:` field (`message` when it has none).
    pub event: String,
    /// Its `data:` lines, joined by `\n`.
    pub data: String,
    /// Its `id:` field, if it had one (what `Last-Event-ID` resumes after).
    pub id: Option<String>,
}

/// Most bytes one message may take; a server that sends more without a
/// blank line is not speaking SSE (or is hostile), and the stream is
/// refused rather than buffered without end.
pub const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// The parser: feed it chunks with [`Parser::feed`].
#[derive(Debug, Default)]
pub struct Parser {
    /// Bytes of a line not ended yet.
    partial: Vec<u8>,
    /// The last chunk ended in `\r`: a `\n` starting the next one belongs
    /// to that line ending.
    after_cr: bool,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
    /// Bytes in the message being read, for [`MAX_MESSAGE`].
    size: usize,
}

/// The stream broke the format's bounds.
#[derive(Debug, thiserror::Error)]
#[error(
    "a Server-Sent Events message over {MAX_MESSAGE} bytes: the server is not sending soar events"
)]
pub struct TooLarge;

impl Parser {
    /// Take `chunk`; the messages it completed, in order.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Message>, TooLarge> {
        let mut out = Vec::new();
        let mut rest = chunk;
        if self.after_cr && rest.first() == Some(&b'\n') {
            rest = &rest[1..];
        }
        self.after_cr = false;
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            self.partial.extend_from_slice(&rest[..end]);
            let line = std::mem::take(&mut self.partial);
            if let Some(message) = self.line(&String::from_utf8_lossy(&line)) {
                out.push(message);
            }
            let was_cr = rest[end] == b'\r';
            rest = &rest[end + 1..];
            if was_cr {
                match rest.first() {
                    Some(b'\n') => rest = &rest[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
        }
        self.partial.extend_from_slice(rest);
        self.size += chunk.len();
        if self.size > MAX_MESSAGE || self.partial.len() > MAX_MESSAGE {
            return Err(TooLarge);
        }
        Ok(out)
    }

    /// One line; a message when it is the blank line ending one.
    fn line(&mut self, line: &str) -> Option<Message> {
        if line.is_empty() {
            self.size = 0;
            let data = self.data.take();
            let event = self.event.take();
            let id = self.id.take();
            // A message without data is not dispatched (the spec's rule).
            return data.map(|data| Message {
                event: event.unwrap_or_else(|| "message".into()),
                data,
                id,
            });
        }
        if line.starts_with(':') {
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_string()),
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> Vec<Message> {
        let mut p = Parser::default();
        chunks.iter().flat_map(|c| p.feed(c).unwrap()).collect()
    }

    fn msg(event: &str, data: &str, id: Option<&str>) -> Message {
        Message {
            event: event.into(),
            data: data.into(),
            id: id.map(Into::into),
        }
    }

    #[test]
    fn messages_with_fields_comments_and_defaults() {
        let got = all(&[
            b": keep-alive\n\nid: 1\nevent: progress\ndata: {\"a\":1}\n\ndata: x\ndata:y\n\nevent: end\n\n",
        ]);
        assert_eq!(
            got,
            [
                msg("progress", "{\"a\":1}", Some("1")),
                msg("message", "x\ny", None)
            ]
        );
    }

    #[test]
    fn a_message_split_anywhere_is_seen_whole_and_once() {
        let text = b"id: 7\r\nevent: progress\r\ndata: {\"type\":\"deployed\"}\r\n\r\nevent: end\rdata: {}\r\r";
        let whole = all(&[text]);
        assert_eq!(whole.len(), 2, "{whole:?}");
        for cut in 0..text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(all(&[a, b]), whole, "cut at {cut}");
        }
        // Byte by byte, too.
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(all(&bytes), whole);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut p = Parser::default();
        let chunk = vec![b'a'; 1024 * 1024];
        let mut refused = false;
        for _ in 0..8 {
            if p.feed(&chunk).is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }
}
