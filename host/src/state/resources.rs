//! The resources Soar manages, per environment: what the providers created and
//! what they reported about it, so plans diff against it and `destroy` knows
//! what to remove.

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::sqlite::{Sqlite, bump_serial};

/// One managed resource, keyed by `(env, kind, name)`.
///
/// `kind` and `name` are Soar's names for it (stable across re-creation);
/// `id` is the provider's identifier once it exists. `attributes` is what the
/// provider reported: non-secret by contract (the brokers scrub secrets
/// before anything reaches the engine).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceRecord {
    /// The environment it belongs to.
    pub env: String,
    /// The plugin that manages it (`digitalocean`, `local`, ...).
    pub provider: String,
    /// Soar's kind for it (`vm`, `dns-record`, ...).
    pub kind: String,
    /// Soar's name for it, unique per kind in the environment.
    pub name: String,
    /// The provider's id, once the resource exists.
    pub id: Option<String>,
    /// What the provider reported about it (never secrets).
    pub attributes: serde_json::Value,
    /// Unix milliseconds of the last write.
    pub updated_at: i64,
}

impl Sqlite {
    /// Insert or replace the resource `(env, kind, name)`, bumping the
    /// environment's serial, in one transaction.
    pub fn upsert_resource(&self, resource: &ResourceRecord) -> anyhow::Result<()> {
        let attributes = serde_json::to_string(&resource.attributes)
            .context("serializing resource attributes")?;
        self.write(|tx| {
            tx.execute(
                "INSERT INTO resources (env, kind, name, provider, id, attributes, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (env, kind, name) DO UPDATE SET
                    provider = excluded.provider,
                    id = excluded.id,
                    attributes = excluded.attributes,
                    updated_at = excluded.updated_at",
                rusqlite::params![
                    resource.env,
                    resource.kind,
                    resource.name,
                    resource.provider,
                    resource.id,
                    attributes,
                    resource.updated_at,
                ],
            )?;
            bump_serial(tx, &resource.env)?;
            Ok(())
        })
        .with_context(|| {
            format!(
                "recording resource {}/{} in `{}`",
                resource.kind, resource.name, resource.env
            )
        })
    }

    /// Forget the resource; returns whether it was recorded. Bumps the serial
    /// only when something was removed.
    pub fn remove_resource(&self, env: &str, kind: &str, name: &str) -> anyhow::Result<bool> {
        self.write(|tx| {
            let removed = tx.execute(
                "DELETE FROM resources WHERE env = ?1 AND kind = ?2 AND name = ?3",
                [env, kind, name],
            )? > 0;
            if removed {
                bump_serial(tx, env)?;
            }
            Ok(removed)
        })
        .with_context(|| format!("removing resource {kind}/{name} from `{env}`"))
    }

    /// The environment's resources, sorted by kind then name.
    pub fn resources(&self, env: &str) -> anyhow::Result<Vec<ResourceRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT env, provider, kind, name, id, attributes, updated_at
             FROM resources WHERE env = ?1 ORDER BY kind, name",
        )?;
        let rows = stmt.query_map([env], |row| {
            Ok((
                ResourceRecord {
                    env: row.get(0)?,
                    provider: row.get(1)?,
                    kind: row.get(2)?,
                    name: row.get(3)?,
                    id: row.get(4)?,
                    attributes: serde_json::Value::Null,
                    updated_at: row.get(6)?,
                },
                row.get::<_, String>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (mut record, attributes) = row?;
            record.attributes = serde_json::from_str(&attributes).with_context(|| {
                format!(
                    "resource {}/{} has corrupt attributes",
                    record.kind, record.name
                )
            })?;
            out.push(record);
        }
        Ok(out)
    }
}
