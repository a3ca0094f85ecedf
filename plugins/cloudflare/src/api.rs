//! The Cloudflare v4 envelope: `{success, errors, messages, result}`.

use sha2::{Digest as _, Sha256};
use soar_sdk::prelude::*;

/// The API token's credential name.
pub const TOKEN: &str = "cloudflare";

/// `{api}/accounts/{account_id}`.
pub fn account_url(ctx: &Context, account_id: &str) -> PluginResult<String> {
    Ok(format!("{}/accounts/{account_id}", ctx.endpoint("api")?))
}

/// `result` of a successful envelope; an API error otherwise.
pub fn result(resp: Response) -> PluginResult<Value> {
    let resp = resp.error_for_status()?;
    let v: Value = resp.json()?;
    if v.get("success") == Some(&Value::Bool(false)) {
        return Err(PluginError::Api(resp.api_error()));
    }
    Ok(v.get("result").cloned().unwrap_or(Value::Null))
}

/// `GET url` with the API token; `None` on 404.
pub fn get_optional(url: &str) -> PluginResult<Option<Value>> {
    let resp = Request::get(url).credential(TOKEN).send()?;
    if resp.status == 404 {
        return Ok(None);
    }
    result(resp).map(Some)
}

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// Minimal JSON string escaping for hand-built bodies.
pub fn json_str(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}
