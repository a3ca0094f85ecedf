//! Bearer tokens: `soar_<id>_<secret>`, shown once at creation and stored
//! only as a sha256 digest; checked in constant time. A token has a scope
//! (`read` < `deploy` < `admin`) and optionally one project it is limited to.

use std::fmt;

use rusqlite::{OptionalExtension as _, params};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use super::store::{Db, random_hex, rfc3339};
use crate::state::now_ms;

/// What a token may do; each scope includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read jobs, events, capabilities.
    Read,
    /// Also submit and cancel deploys.
    Deploy,
    /// Everything.
    Admin,
}

impl Scope {
    /// The scope as stored, shown and typed (`--scope read`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Deploy => "deploy",
            Scope::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Scope::Read),
            "deploy" => Some(Scope::Deploy),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a request is, once its token checked out.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's public id (the part between `soar_` and the secret).
    pub id: String,
    /// The token's name, recorded as the `actor` of the jobs it submits.
    pub name: String,
    /// What the token may do.
    pub scope: Scope,
    /// The one project the token is limited to; `None` for all.
    pub project: Option<String>,
}

impl Principal {
    /// Whether this token may act on `project`.
    pub fn covers(&self, project: &str) -> bool {
        self.project.as_deref().is_none_or(|p| p == project)
    }
}

/// A token as `token list` shows it (never the secret, never the hash).
#[derive(Debug, Serialize)]
pub struct TokenInfo {
    /// The token's public id, which `token revoke` takes.
    pub id: String,
    /// The name given at creation (`token-<id>` by default).
    pub name: String,
    /// `read`, `deploy` or `admin`.
    pub scope: String,
    /// The one project the token is limited to; `None` for all.
    pub project: Option<String>,
    /// When the token was created (RFC 3339 UTC).
    pub created_at: String,
    /// When it was revoked; `None` while it is valid.
    pub revoked_at: Option<String>,
}

fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Equal without an early exit on the first difference.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Create a token; returns `(id, token)`. The token exists nowhere else.
pub fn create(
    db: &Db,
    scope: Scope,
    project: Option<&str>,
    name: Option<&str>,
) -> anyhow::Result<(String, String)> {
    let id = random_hex(6);
    let token = format!("soar_{id}_{}", random_hex(24));
    let name = name.map_or_else(|| format!("token-{id}"), str::to_string);
    anyhow::ensure!(
        !name.is_empty() && name.len() <= 64 && !name.chars().any(char::is_control),
        "a token name is 1-64 printable characters"
    );
    db.conn().execute(
        "INSERT INTO tokens (id, name, scope, project, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, name, scope.as_str(), project, digest(&token), now_ms()],
    )?;
    Ok((id, token))
}

/// The principal `token` stands for, or `None` (unknown, revoked, forged).
pub fn verify(db: &Db, token: &str) -> Option<Principal> {
    let mut parts = token.splitn(3, '_');
    let (Some("soar"), Some(id), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    let row: Option<(String, String, Option<String>, String)> = db
        .conn()
        .query_row(
            "SELECT name, scope, project, hash FROM tokens WHERE id = ?1 AND revoked_at IS NULL",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .ok()
        .flatten();
    let (name, scope, project, hash) = row?;
    if !ct_eq(digest(token).as_bytes(), hash.as_bytes()) {
        return None;
    }
    Some(Principal {
        id: id.to_string(),
        name,
        scope: Scope::parse(&scope)?,
        project,
    })
}

/// Every token, revoked ones included, oldest first.
pub fn list(db: &Db) -> anyhow::Result<Vec<TokenInfo>> {
    let conn = db.conn();
    let mut stmt = conn.prepare(
        "SELECT id, name, scope, project, created_at, revoked_at FROM tokens ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TokenInfo {
            id: r.get(0)?,
            name: r.get(1)?,
            scope: r.get(2)?,
            project: r.get(3)?,
            created_at: rfc3339(r.get(4)?),
            revoked_at: r.get::<_, Option<i64>>(5)?.map(rfc3339),
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revoke token `id`; false when there is no such live token.
pub fn revoke(db: &Db, id: &str) -> anyhow::Result<bool> {
    let n = db.conn().execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now_ms()],
    )?;
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path()).unwrap();
        let (id, token) = create(&db, Scope::Deploy, Some("app"), Some("ci")).unwrap();
        let p = verify(&db, &token).unwrap();
        assert_eq!((p.id.as_str(), p.name.as_str()), (id.as_str(), "ci"));
        assert_eq!(p.scope, Scope::Deploy);
        assert!(p.covers("app") && !p.covers("other"));
        let forged = format!("{}x", &token[..token.len() - 1]);
        assert!(verify(&db, &forged).is_none());
        assert!(verify(&db, "soar_nope_x").is_none());
        assert!(verify(&db, "").is_none());
        let stored: String = db
            .conn()
            .query_row("SELECT hash FROM tokens", [], |r| r.get(0))
            .unwrap();
        assert!(!stored.contains(&token));
        assert!(revoke(&db, &id).unwrap());
        assert!(!revoke(&db, &id).unwrap());
        assert!(verify(&db, &token).is_none());
        assert_eq!(list(&db).unwrap().len(), 1);
        assert!(Scope::Admin > Scope::Deploy && Scope::Deploy > Scope::Read);
    }
}
