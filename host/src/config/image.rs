//! `[artifact] image`: a Docker image in a registry, which the hosts pull
//! instead of receiving a `docker save` archive over SSH.
//!
//! The reference is checked here with Docker's own grammar (distribution's
//! `reference` package, simplified to what soar needs): an optional
//! registry host, a lowercase repository path, an optional tag and an
//! optional `sha256` digest. The registry host decides where `docker
//! login` goes; Docker's rule is that the first path component is a
//! registry when it contains a `.` or a `:` or is `localhost`, and Docker
//! Hub otherwise.

use super::diagnostics::Report;
use super::fields::Section;
use super::{ArtifactSpec, is_env_var_name};

/// The variable the registry password is read from when
/// `registry_password_env` is not set.
pub const DEFAULT_PASSWORD_ENV: &str = "SOAR_REGISTRY_PASSWORD";

/// Docker Hub's name for `docker login`.
const DOCKER_HUB: &str = "docker.io";

/// An image the hosts pull, and how they log in to its registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryImage {
    /// The reference as written (`ghcr.io/acme/web:1.4`).
    pub reference: String,
    /// The registry `docker login` talks to (`ghcr.io`, `127.0.0.1:5000`,
    /// `docker.io` for Docker Hub).
    pub registry: String,
    /// The registry user (`registry_user`); `None` pulls anonymously, with
    /// no login.
    pub user: Option<String>,
    /// The environment variable holding the password or token
    /// (`registry_password_env`). The value is read by the host at deploy
    /// time and never written anywhere by soar.
    pub password_env: String,
}

/// Parse an image reference; `Err` says what is wrong with it, for a
/// diagnostic at the `image` key.
pub fn parse_reference(reference: &str) -> Result<RegistryImage, String> {
    let r = reference.trim();
    if r != reference || r.is_empty() || r.chars().any(char::is_whitespace) {
        return Err("an image reference has no spaces".into());
    }
    let (name, digest) = match r.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (r, None),
    };
    if let Some(d) = digest {
        let hex = d.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64 || !hex.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(format!(
                "the digest '{d}' is not sha256: followed by 64 lowercase hex digits"
            ));
        }
    }
    let (registry, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest)
        }
        _ => (DOCKER_HUB.to_string(), name),
    };
    check_registry(&registry)?;
    // A tag is after the last `:` of the path (the registry's port is not
    // part of it).
    let (repository, tag) = match path.rsplit_once(':') {
        Some((repo, tag)) => (repo, Some(tag)),
        None => (path, None),
    };
    if let Some(t) = tag {
        let ok = t.len() <= 128
            && t.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && t.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok {
            return Err(format!(
                "the tag '{t}' is not a Docker tag (letters, digits, `_`, `.` and `-`, at most 128)"
            ));
        }
    }
    for component in repository.split('/') {
        let ok = !component.is_empty()
            && component
                .chars()
                .all(|c| matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
            && component.starts_with(|c: char| c.is_ascii_alphanumeric())
            && component.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !ok {
            return Err(format!(
                "the repository '{repository}' is not a Docker repository name (lowercase letters, digits and `._-` between slashes)"
            ));
        }
    }
    Ok(RegistryImage {
        reference: reference.to_string(),
        registry,
        user: None,
        password_env: DEFAULT_PASSWORD_ENV.to_string(),
    })
}

/// Read `image`, `registry_user` and `registry_password_env` of
/// `[artifact]` (`s`) into `spec`; `kind` is the artifact's kind as written,
/// when it is valid.
pub(super) fn read(
    s: &Section<'_>,
    kind: Option<&str>,
    spec: &mut ArtifactSpec,
    r: &mut Report<'_>,
) {
    let image = s.string("image", "image = \"ghcr.io/acme/web:1.4\"", r);
    let user = s.string("registry_user", "registry_user = \"deploy\"", r);
    let password_env = s.string(
        "registry_password_env",
        &format!("registry_password_env = \"{DEFAULT_PASSWORD_ENV}\""),
        r,
    );
    let Some(image) = image else {
        for key in ["registry_user", "registry_password_env"] {
            if let (Some((k, _)), None) = (s.get(key), s.get("image")) {
                r.error(
                    k.span().start,
                    format!("`artifact.{key}` is the login to the registry of `artifact.image`, and there is no `image`"),
                    Some(format!("remove `{key}`, or name the image the hosts pull: image = \"ghcr.io/acme/web:1.4\"")),
                );
            }
        }
        return;
    };
    if let Some(kind) = kind.filter(|k| *k != "docker") {
        r.error(
            image.span().start,
            format!("`artifact.image` only applies to kind = \"docker\", and this artifact is \"{kind}\""),
            Some("remove `image`, or set kind = \"docker\"".to_string()),
        );
        return;
    }
    if s.get("path").is_some() {
        r.error(
            image.span().start,
            "`artifact.image` and `artifact.path` both say where the image comes from: the hosts either pull `image` from its registry or receive `path` over SSH",
            Some("keep one of them (with `image`, `build` builds the image and soar pushes it)".to_string()),
        );
        return;
    }
    let mut parsed = match parse_reference(image.get_ref()) {
        Ok(p) => p,
        Err(why) => {
            r.error(
                image.span().start,
                format!("`artifact.image` = \"{}\": {why}", image.get_ref()),
                Some("write [registry/]repository[:tag][@sha256:digest], e.g. image = \"ghcr.io/acme/web:1.4\"".to_string()),
            );
            return;
        }
    };
    if let Some(env) = password_env {
        if !is_env_var_name(env.get_ref()) {
            r.error(
                env.span().start,
                format!("`artifact.registry_password_env` must name an environment variable (A-Z, 0-9, _), not \"{}\"", env.get_ref()),
                Some(format!("write registry_password_env = \"{DEFAULT_PASSWORD_ENV}\" and export the password there; it never goes in soar.toml")),
            );
        } else if user.is_none() {
            r.error(
                env.span().start,
                "`artifact.registry_password_env` needs `registry_user`: `docker login` takes a user and a password",
                Some("add registry_user = \"deploy\" (for GHCR, your GitHub user name)".to_string()),
            );
        }
        parsed.password_env = env.into_inner();
    }
    parsed.user = user.map(|u| u.into_inner());
    spec.docker.image = Some(parsed);
}

fn check_registry(registry: &str) -> Result<(), String> {
    let (host, port) = match registry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (registry, None),
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    if host_ok && port_ok {
        Ok(())
    } else {
        Err(format!(
            "the registry '{registry}' is not a host name with an optional port"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_by_dockers_rule() {
        let cases = [
            ("ghcr.io/acme/web:1.4", "ghcr.io"),
            ("127.0.0.1:5000/web", "127.0.0.1:5000"),
            ("localhost/web:dev", "localhost"),
            ("acme/web:1", "docker.io"),
            ("nginx", "docker.io"),
        ];
        for (reference, registry) in cases {
            let parsed = parse_reference(reference).unwrap();
            assert_eq!(parsed.registry, registry, "{reference}");
            assert_eq!(parsed.reference, reference);
            assert_eq!(parsed.password_env, DEFAULT_PASSWORD_ENV);
        }
        let pinned = format!("ghcr.io/acme/web:1@sha256:{}", "a".repeat(64));
        assert!(parse_reference(&pinned).is_ok());
    }

    #[test]
    fn bad_references_say_which_part() {
        let cases = [
            ("ghcr.io/Acme/web", "repository"),
            ("web:bad/tag", "registry"),
            ("web:-x", "tag"),
            ("web@sha256:abc", "digest"),
            ("host:99999/web", "registry"),
            (" web", "spaces"),
            ("ghcr.io//web", "repository"),
        ];
        for (reference, part) in cases {
            let err = parse_reference(reference).expect_err(reference);
            assert!(err.contains(part), "{reference}: {err}");
        }
    }
}
