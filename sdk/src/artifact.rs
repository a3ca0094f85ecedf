//! The artifact being deployed. Contents stay on the host; read them in
//! ranges, have the host digest them, or reference them in request bodies
//! with [`Segment::File`](crate::http::Segment).

pub use crate::bindings::soar::plugin::artifacts::{DigestAlgorithm, DigestInput};
use crate::{Artifact, PluginError};

/// The artifact of the current command, if it deploys one.
pub fn current() -> Option<Artifact> {
    crate::host::artifacts::current()
}

/// Read a whole (small) artifact file; the host serves at most 1 MiB a call.
pub fn read_to_end(path: &str) -> Result<Vec<u8>, PluginError> {
    const CHUNK: u32 = 1 << 20;
    let mut out = Vec::new();
    loop {
        let chunk = crate::host::artifacts::read(path, out.len() as u64, CHUNK)
            .map_err(PluginError::Other)?;
        let done = chunk.len() < CHUNK as usize;
        out.extend_from_slice(&chunk);
        if done {
            return Ok(out);
        }
    }
}

/// A host-computed digest of an artifact file, lowercase hex.
pub fn digest(
    path: &str,
    algorithm: DigestAlgorithm,
    input: DigestInput,
) -> Result<String, PluginError> {
    crate::host::artifacts::digest(path, algorithm, &input).map_err(PluginError::Other)
}
