//! Managed resources on PostgreSQL (see the SQLite twin in `state::resources`).

use anyhow::Context;

use super::{Postgres, bump_serial};
use crate::state::ResourceRecord;

impl Postgres {
    /// Insert or replace the resource, bumping the serial, in one transaction.
    pub(crate) fn upsert_resource(&self, resource: &ResourceRecord) -> anyhow::Result<()> {
        let attributes = serde_json::to_string(&resource.attributes)
            .context("serializing resource attributes")?;
        self.write(|tx, project| {
            tx.execute(
                "INSERT INTO soar.resources
                     (project, env, kind, name, provider, id, attributes, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (project, env, kind, name) DO UPDATE SET
                    provider = excluded.provider,
                    id = excluded.id,
                    attributes = excluded.attributes,
                    updated_at = excluded.updated_at",
                &[
                    &project,
                    &resource.env,
                    &resource.kind,
                    &resource.name,
                    &resource.provider,
                    &resource.id,
                    &attributes,
                    &resource.updated_at,
                ],
            )?;
            bump_serial(tx, project, &resource.env)?;
            Ok(())
        })
        .with_context(|| {
            format!(
                "recording resource {}/{} in `{}`",
                resource.kind, resource.name, resource.env
            )
        })
    }

    /// Forget the resource; whether it was recorded.
    pub(crate) fn remove_resource(
        &self,
        env: &str,
        kind: &str,
        name: &str,
    ) -> anyhow::Result<bool> {
        self.write(|tx, project| {
            let removed = tx.execute(
                "DELETE FROM soar.resources
                 WHERE project = $1 AND env = $2 AND kind = $3 AND name = $4",
                &[&project, &env, &kind, &name],
            )? > 0;
            if removed {
                bump_serial(tx, project, env)?;
            }
            Ok(removed)
        })
        .with_context(|| format!("removing resource {kind}/{name} from `{env}`"))
    }

    /// The environment's resources, sorted by kind then name.
    pub(crate) fn resources(&self, env: &str) -> anyhow::Result<Vec<ResourceRecord>> {
        self.read(|c, project| {
            let rows = c.query(
                "SELECT env, provider, kind, name, id, attributes, updated_at
                 FROM soar.resources WHERE project = $1 AND env = $2
                 ORDER BY kind COLLATE \"C\", name COLLATE \"C\"",
                &[&project, &env],
            )?;
            rows.iter()
                .map(|row| {
                    let kind: String = row.get(2);
                    let name: String = row.get(3);
                    let attributes: String = row.get(5);
                    let attributes = serde_json::from_str(&attributes).with_context(|| {
                        format!("resource {kind}/{name} has corrupt attributes")
                    })?;
                    Ok(ResourceRecord {
                        env: row.get(0),
                        provider: row.get(1),
                        kind,
                        name,
                        id: row.get(4),
                        attributes,
                        updated_at: row.get(6),
                    })
                })
                .collect()
        })
    }
}
