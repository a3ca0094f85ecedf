//! Content types by file extension: for Pages assets (as wrangler's `mime`
//! lookup answers for common web files) and for Worker module parts.

/// The extension after the last `.` of the file name, without the dot
/// (`""` when none): what Pages appends to the base64 content when hashing.
pub fn extension(path: &str) -> &str {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        // A leading dot is a hidden file's name, not an extension (Node's extname).
        Some(i) if i > 0 => &name[i + 1..],
        _ => "",
    }
}

/// Content type of a Pages asset.
pub fn asset_type(path: &str) -> &'static str {
    match extension(path).to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" | "mjs" | "cjs" => "application/javascript",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "txt" => "text/plain",
        "md" => "text/markdown",
        "xml" => "application/xml",
        "csv" => "text/csv",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/vnd.microsoft.icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "zip" => "application/zip",
        _ => "application/octet-stream",
    }
}

/// Content type of a Worker module part, as wrangler sends them; `None`
/// for files that are not modules.
pub fn module_type(path: &str) -> Option<&'static str> {
    Some(match extension(path) {
        "js" | "mjs" => "application/javascript+module",
        "cjs" => "application/javascript",
        "wasm" => "application/wasm",
        "txt" | "html" | "sql" => "text/plain",
        "bin" => "application/octet-stream",
        "map" => "application/source-map",
        "py" => "text/x-python",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_as_node_extname() {
        assert_eq!(extension("a/b/index.html"), "html");
        assert_eq!(extension("a/.hidden"), "");
        assert_eq!(extension("LICENSE"), "");
        assert_eq!(extension("x.tar.gz"), "gz");
        assert_eq!(extension("dir.v2/file"), "");
    }
}
