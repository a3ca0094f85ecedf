//! Stateful fakes of cloud APIs as real HTTP servers on 127.0.0.1, shaped
//! after the official API documents in `../shared/apis/`, with switches for
//! rate limits, server errors, slow and dropped responses.

pub mod cloudflare;
pub mod digitalocean;
pub mod openwhisk;
pub mod vmapi;
