//! Request bodies assembled on the host: literal bytes from the plugin and
//! artifact files read here, so file contents never cross into the sandbox.

use base64::Engine as _;
use bytes::Bytes;

use std::collections::BTreeMap;

use super::error::{self, Error};
use crate::artifact::ArtifactSource;
use crate::contract::soar::plugin::http::{Body, Segment};
use crate::credentials::Secret;

/// Where body pieces that are not the plugin's own bytes come from.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    pub artifact: Option<&'a ArtifactSource>,
    /// Service secrets by name, for `secret` segments.
    pub secrets: &'a BTreeMap<String, Secret>,
}

/// One multipart part, ready to send.
#[derive(Debug, Clone)]
pub struct PreparedPart {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    bytes: Bytes,
}

/// A body ready to be sent (again, on retry).
#[derive(Debug, Clone)]
pub enum Prepared {
    Empty,
    Bytes {
        bytes: Bytes,
        content_type: Option<&'static str>,
    },
    Multipart(Vec<PreparedPart>),
}

/// Whether `body` splices in any service secret.
pub fn carries_secret(body: &Body) -> bool {
    let has_secret = |segs: &[Segment]| {
        segs.iter()
            .any(|s| matches!(s, Segment::Secret(_) | Segment::SecretJson(_)))
    };
    match body {
        Body::Segments(segs) => has_secret(segs),
        Body::Multipart(parts) => parts.iter().any(|p| has_secret(&p.content)),
        _ => false,
    }
}

/// The size `body` would have once assembled, from the artifact listing and
/// the secrets' lengths: nothing is read or allocated, so a request for
/// thousands of copies of a large file is refused before it costs memory.
/// Unknown files and secrets count as empty here; [`Prepared::build`]
/// reports them.
pub fn planned_size(body: &Body, sources: Sources<'_>) -> u64 {
    let segments = |segs: &[Segment]| -> u64 {
        segs.iter()
            .map(|s| match s {
                Segment::Bytes(b) => b.len() as u64,
                Segment::File(p) => sources.artifact.and_then(|a| a.size_of(p)).unwrap_or(0),
                Segment::FileBase64(p) => sources
                    .artifact
                    .and_then(|a| a.size_of(p))
                    .map_or(0, |n| n.div_ceil(3) * 4),
                Segment::Secret(n) | Segment::SecretJson(n) => sources
                    .secrets
                    .get(n)
                    .map_or(0, |s| 2 + 6 * s.expose().len() as u64),
            })
            .fold(0u64, u64::saturating_add)
    };
    match body {
        Body::Empty => 0,
        Body::Segments(segs) => segments(segs),
        Body::Form(fields) => fields
            .iter()
            .map(|(k, v)| 3 * (k.len() + v.len()) as u64 + 2)
            .fold(0u64, u64::saturating_add),
        Body::Multipart(parts) => parts
            .iter()
            .map(|p| {
                segments(&p.content)
                    .saturating_add(p.name.len() as u64)
                    .saturating_add(p.filename.as_ref().map_or(0, |f| f.len() as u64))
                    .saturating_add(p.content_type.as_ref().map_or(0, |c| c.len() as u64))
                    .saturating_add(200)
            })
            .fold(0u64, u64::saturating_add),
    }
}

impl Prepared {
    /// Assemble `body`, reading referenced artifact files and splicing
    /// secrets.
    pub fn build(body: &Body, sources: Sources<'_>) -> Result<Self, Error> {
        let prepared = match body {
            Body::Empty => Prepared::Empty,
            Body::Segments(segments) => Prepared::Bytes {
                bytes: concat(segments, sources)?,
                content_type: None,
            },
            Body::Form(fields) => {
                // `*` is encoded too: the WHATWG form encoding leaves it
                // bare, but AWS (and moto's signature check) expect the
                // RFC 3986 encoding that SigV4 canonicalizes.
                let encoded = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish()
                    .replace('*', "%2A");
                Prepared::Bytes {
                    bytes: Bytes::from(encoded),
                    content_type: Some("application/x-www-form-urlencoded; charset=utf-8"),
                }
            }
            Body::Multipart(parts) => Prepared::Multipart(
                parts
                    .iter()
                    .map(|p| {
                        Ok(PreparedPart {
                            name: p.name.clone(),
                            filename: p.filename.clone(),
                            content_type: p.content_type.clone(),
                            bytes: concat(&p.content, sources)?,
                        })
                    })
                    .collect::<Result<_, Error>>()?,
            ),
        };
        Ok(prepared)
    }

    /// The exact bytes sent, for signing; none for multipart (whose boundary
    /// is chosen per send).
    pub fn signable(&self) -> Option<&[u8]> {
        match self {
            Prepared::Empty => Some(&[]),
            Prepared::Bytes { bytes, .. } => Some(bytes),
            Prepared::Multipart(_) => None,
        }
    }

    /// The content type the host sets, if the body kind implies one.
    pub fn content_type(&self) -> Option<&'static str> {
        match self {
            Prepared::Bytes { content_type, .. } => *content_type,
            _ => None,
        }
    }

    /// Attach to a request; returns the builder and the bytes sent.
    pub fn attach(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<(reqwest::RequestBuilder, u64), Error> {
        Ok(match self {
            Prepared::Empty => (rb, 0),
            Prepared::Bytes { bytes, .. } => (rb.body(bytes.clone()), bytes.len() as u64),
            Prepared::Multipart(parts) => {
                let mut form = reqwest::multipart::Form::new();
                let mut sent = 0;
                for p in parts {
                    sent += p.bytes.len() as u64;
                    let mut part =
                        reqwest::multipart::Part::stream(reqwest::Body::from(p.bytes.clone()));
                    if let Some(f) = &p.filename {
                        part = part.file_name(f.clone());
                    }
                    if let Some(ct) = &p.content_type {
                        part = part.mime_str(ct).map_err(|_| {
                            error::invalid(format!(
                                "part '{}' has an invalid content type '{ct}'",
                                p.name
                            ))
                        })?;
                    }
                    form = form.part(p.name.clone(), part);
                }
                (rb.multipart(form), sent)
            }
        })
    }
}

fn concat(segments: &[Segment], sources: Sources<'_>) -> Result<Bytes, Error> {
    let file = |path: &str| -> Result<Vec<u8>, Error> {
        let artifact = sources.artifact.ok_or_else(|| {
            error::invalid(format!(
                "body references artifact file '{path}' but this command deploys no artifact"
            ))
        })?;
        artifact
            .read_all(path)
            .map_err(|e| error::invalid(format!("body references '{path}': {e}")))
    };
    let secret = |name: &str| -> Result<&Secret, Error> {
        sources.secrets.get(name).ok_or_else(|| {
            let known: Vec<&str> = sources.secrets.keys().map(String::as_str).collect();
            error::invalid(format!(
                "body references secret '{name}', which this environment does not configure (it has: {}); add it to [deploy] secrets in soar.toml",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ))
        })
    };
    if let [Segment::Bytes(b)] = segments {
        return Ok(Bytes::copy_from_slice(b));
    }
    let mut out = Vec::new();
    for s in segments {
        match s {
            Segment::Bytes(b) => out.extend_from_slice(b),
            Segment::File(path) => out.extend_from_slice(&file(path)?),
            Segment::FileBase64(path) => out.extend_from_slice(
                base64::engine::general_purpose::STANDARD
                    .encode(file(path)?)
                    .as_bytes(),
            ),
            Segment::Secret(name) => out.extend_from_slice(secret(name)?.expose().as_bytes()),
            Segment::SecretJson(name) => {
                let literal = serde_json::to_string(secret(name)?.expose())
                    .map_err(|e| error::invalid(e.to_string()))?;
                out.extend_from_slice(literal.as_bytes())
            }
        }
    }
    Ok(Bytes::from(out))
}
