//! Registration after a healthy deploy: POST the service and its endpoint to
//! a registry URL (the deployer-service seed's phase 6). Failures are
//! reported to the user and the audit trail, never swallowed.

use std::time::Duration;

use serde_json::json;

/// Announce `service` at `endpoint` to `url`.
pub async fn announce(
    url: &str,
    app: &str,
    env: &str,
    service: &str,
    endpoint: &str,
    release: &str,
) -> anyhow::Result<u16> {
    crate::tls::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let body = json!({ "app": app, "environment": env, "service": service, "endpoint": endpoint, "release": release });
    let resp = client
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("POST {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        let text: String = resp
            .text()
            .await
            .unwrap_or_default()
            .chars()
            .take(500)
            .collect();
        anyhow::bail!("POST {url} answered {status}: {text}");
    }
    Ok(status.as_u16())
}
