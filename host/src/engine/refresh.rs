//! `soar refresh`: rebuild the state's resource records from what the
//! provider reports. Providers find their resources by the `managed-by:soar`
//! and environment tags they put on them, so a lost or stale `.soar/` can be
//! recovered from the cloud itself.

use std::time::Duration;

use serde_json::json;

use super::Workspace;
use super::targets::SERVICE_KIND;
use crate::report::Event;
use crate::state::HolderInfo;

/// `soar refresh [--env]`.
pub async fn refresh_command(
    ws: &Workspace,
    env: Option<&str>,
    lock_timeout: Duration,
) -> anyhow::Result<i32> {
    let env = ws.environment(env)?;
    std::fs::create_dir_all(ws.state_dir())?;
    let _lock = ws.lock(&env.name, lock_timeout, &HolderInfo::current())?;
    let store = ws.state()?;
    let p = ws.prepare_existing(&env.name).await?;
    let reported = p.plugin.status(p.session.clone(), &p.ctx).await?;
    let mut kept = Vec::new();
    for status in &reported {
        let r = &status.resource;
        store.upsert_resource(&super::trail::record_of(env, r))?;
        kept.push((r.kind.clone(), r.name.clone()));
    }
    let mut removed = Vec::new();
    for r in store.resources(&env.name)? {
        // The service record (its allocated port) is Soar's own, not the provider's.
        if r.kind != SERVICE_KIND && !kept.contains(&(r.kind.clone(), r.name.clone())) {
            store.remove_resource(&env.name, &r.kind, &r.name)?;
            removed.push(format!("{} {}", r.kind, r.name));
        }
    }
    let resources: Vec<serde_json::Value> = kept
        .iter()
        .map(|(k, n)| json!({"kind": k, "name": n}))
        .collect();
    let event = Event::Refreshed {
        env: &env.name,
        resources: resources.into(),
        removed: &removed,
    };
    ws.out.result(&event, || {
        let mut text = format!(
            "Refreshed {} from provider {}: {} resource(s) reported.",
            env.name,
            env.provider,
            kept.len()
        );
        for (k, n) in &kept {
            text.push_str(&format!(
                "\n  = {} {}",
                crate::terminal::line(k),
                crate::terminal::line(n)
            ));
        }
        for r in &removed {
            text.push_str(&format!(
                "\n  - {} (no longer reported; removed from state)",
                crate::terminal::line(r)
            ));
        }
        text
    });
    Ok(0)
}
