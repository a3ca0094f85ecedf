//! The EC2 Query API: form-encoded POSTs signed by the host, XML answers.

use soar_sdk::prelude::*;

/// The API version every call names.
pub const VERSION: &str = "2016-11-15";

/// Call `action` in `region` with `params`; returns the response XML.
pub fn call(
    ctx: &Context,
    region: &str,
    action: &str,
    params: &[(String, String)],
) -> Result<String, PluginError> {
    let endpoint = ctx.endpoint("ec2")?;
    let base = if endpoint == "https://ec2.us-east-1.amazonaws.com" {
        format!("https://ec2.{region}.amazonaws.com")
    } else {
        endpoint
    };
    let mut form = vec![
        ("Action".to_string(), action.to_string()),
        ("Version".to_string(), VERSION.to_string()),
    ];
    form.extend_from_slice(params);
    let resp = Request::post(format!("{base}/"))
        .credential("aws")
        .region(region)
        .form(form)
        .send()?;
    let body = resp.text();
    if resp.is_success() {
        return Ok(body);
    }
    Err(PluginError::Api(parse_error(resp.status, &body)))
}

/// Read `<Response><Errors><Error><Code/><Message/>` (or `<ErrorResponse>`).
pub fn parse_error(status: u16, xml: &str) -> soar_sdk::ApiError {
    let doc = roxmltree::Document::parse(xml).ok();
    let text = |name: &str| {
        doc.as_ref()
            .and_then(|d| d.descendants().find(|n| n.has_tag_name(name)))
            .and_then(|n| n.text())
            .map(str::to_string)
    };
    soar_sdk::ApiError {
        status,
        code: text("Code").unwrap_or_else(|| format!("http_{status}")),
        message: text("Message").unwrap_or_else(|| xml.chars().take(300).collect()),
        request_id: text("RequestID").or_else(|| text("RequestId")),
    }
}

/// One line for an error.
pub fn render(e: &PluginError) -> String {
    match e {
        PluginError::Api(a) => format!("{}: {}", a.code, a.message),
        PluginError::Transport(m) | PluginError::Other(m) => m.clone(),
        PluginError::InvalidConfig(d) => d
            .iter()
            .map(|d| d.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
    }
}
