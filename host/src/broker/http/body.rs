//! Request bodies assembled on the host: literal bytes from the plugin and
//! artifact files read here, so file contents never cross into the sandbox.

use base64::Engine as _;
use bytes::Bytes;

use crate::artifact::ArtifactSource;
use crate::runtime::bindings::soar::plugin::http::{Body, Error, Segment};

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

impl Prepared {
    /// Assemble `body`, reading referenced artifact files.
    pub fn build(body: &Body, artifact: Option<&ArtifactSource>) -> Result<Self, Error> {
        Ok(match body {
            Body::Empty => Prepared::Empty,
            Body::Segments(segments) => Prepared::Bytes {
                bytes: concat(segments, artifact)?,
                content_type: None,
            },
            Body::Form(fields) => {
                let encoded = url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(fields)
                    .finish();
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
                            bytes: concat(&p.content, artifact)?,
                        })
                    })
                    .collect::<Result<_, Error>>()?,
            ),
        })
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
                            Error::Invalid(format!(
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

fn concat(segments: &[Segment], artifact: Option<&ArtifactSource>) -> Result<Bytes, Error> {
    let file = |path: &str| -> Result<Vec<u8>, Error> {
        let artifact = artifact.ok_or_else(|| {
            Error::Invalid(format!(
                "body references artifact file '{path}' but this command deploys no artifact"
            ))
        })?;
        artifact
            .read_all(path)
            .map_err(|e| Error::Invalid(format!("body references '{path}': {e}")))
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
        }
    }
    Ok(Bytes::from(out))
}
