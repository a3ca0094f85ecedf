//! Registry images: hosts pull the release's image from a registry instead
//! of receiving a `docker save` archive over SSH.
//!
//! A release of `[artifact] image = "ghcr.io/acme/web:1.4"` is one small
//! file, `image.ref`, holding the image reference. It goes through the same
//! rollout as every other docker release (lock, `releases/<id>/`,
//! `.soar-digest`, switch, health check, rollback); when the release is
//! started, the host's engine pulls the reference and tags it
//! `soar-<service>:<release>` ([`pull`]), as it would load an archive.
//! When the project builds its own image (`[artifact] build`), soar pushes
//! it first ([`release_artifact`]) and the reference file pins the digest
//! the registry answered, so a rebuilt image is a new release even when
//! its tag did not change.
//!
//! The registry password is resolved by the host from the environment
//! variable `registry_password_env` names ([`Login::resolve`]), never from
//! soar.toml. It reaches `docker login --password-stdin` on stdin only:
//! locally through a pipe; on a host as a 0600 file under the service
//! root, written through the broker's stdin-carrying upload and removed by
//! the same command that reads it. `docker login` writes its credentials
//! into a throw-away `--config` directory that is removed when the pull
//! ends, so no host (and not this machine's `~/.docker`) keeps the login.
//! Errors are scrubbed of the password before anyone sees them.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;
use tokio::io::AsyncWriteExt as _;

use super::transport::Transport;
use crate::artifact::ArtifactSource;
use crate::config::{RegistryImage, parse_reference};
use crate::credentials::{ProcessEnv, Secret, SecretSource, scrub_str};
use crate::shell::quote;

/// The file of a registry release: the reference its hosts pull.
pub const REFERENCE_FILE: &str = "image.ref";

/// Where the password waits for `docker login` on a host, under the
/// service root (mode 0600, for one command).
const PASSWORD_FILE: &str = "shared/.registry-password";

/// `docker pull` of a large image.
const PULL_TIMEOUT: Duration = Duration::from_secs(1800);

/// A login to one registry: the user, and the password the host resolved.
pub struct Login {
    /// The registry `docker login` talks to.
    pub registry: String,
    /// The registry user.
    pub user: String,
    /// The password or token.
    pub password: Secret,
    /// The variable it was read from, for messages.
    pub env: String,
}

impl Login {
    /// The login `image` needs: `None` when it names no `registry_user`
    /// (an anonymous pull, or one the host's own `docker login` allows).
    pub fn resolve(
        image: &RegistryImage,
        source: &dyn SecretSource,
    ) -> anyhow::Result<Option<Self>> {
        let Some(user) = &image.user else {
            return Ok(None);
        };
        let password = source.var(&image.password_env).with_context(|| {
            format!(
                "registry {}: the password of user {user} is read from environment variable {}, which is not set; \
                 export it before deploying (it never goes in soar.toml)",
                image.registry, image.password_env
            )
        })?;
        Ok(Some(Self {
            registry: image.registry.clone(),
            user: user.clone(),
            password: Secret::new(password),
            env: image.password_env.clone(),
        }))
    }

    /// The one line a refused login becomes, with docker's last word.
    fn refused(&self, place: &str, output: &str) -> anyhow::Error {
        anyhow::anyhow!(
            "{}",
            self.scrub(&format!(
                "registry {} refused the login of user {} on {place}: check the password in environment variable {} ({})",
                self.registry,
                self.user,
                self.env,
                last_line(output)
            ))
        )
    }

    fn scrub(&self, text: &str) -> String {
        scrub_str(text, std::slice::from_ref(&self.password))
    }
}

/// The release artifact of a registry image: with `push` (the project
/// built the image), push it and pin the digest the registry answered;
/// then write the reference into `dir`/[`REFERENCE_FILE`].
pub async fn release_artifact(
    image: &RegistryImage,
    push: bool,
    dir: &Path,
) -> anyhow::Result<ArtifactSource> {
    // Resolved even when only the hosts log in: a missing password is
    // said here, before anything on a host changes.
    let login = Login::resolve(image, &ProcessEnv)?;
    let reference = if push {
        push_image(&image.reference, login.as_ref()).await?
    } else {
        image.reference.clone()
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(REFERENCE_FILE);
    std::fs::write(&file, format!("{reference}\n"))
        .with_context(|| format!("writing {}", file.display()))?;
    ArtifactSource::image_reference(&file)
}

/// `docker push` the built image with this machine's `docker` CLI (which
/// follows `DOCKER_HOST` as usual), logged in through a throw-away
/// `--config` directory when there is a login; the reference pinned to the
/// pushed digest (`name:tag@sha256:...`).
async fn push_image(reference: &str, login: Option<&Login>) -> anyhow::Result<String> {
    let config = tempfile::tempdir().context("creating a directory for the registry login")?;
    let config_args = |args: &[&str]| -> Vec<String> {
        let mut all = Vec::new();
        if login.is_some() {
            all.push("--config".to_string());
            all.push(config.path().to_string_lossy().into_owned());
        }
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    if let Some(l) = login {
        let args = config_args(&[
            "login",
            "--username",
            &l.user,
            "--password-stdin",
            &l.registry,
        ]);
        let out = local_docker(&args, Some(l.password.expose().as_bytes())).await?;
        if !out.status.success() {
            return Err(l.refused("this machine", &out.stderr));
        }
    }
    let out = local_docker(&config_args(&["push", reference]), None).await?;
    let said = format!("{}{}", out.stdout, out.stderr);
    let said = login.map_or(said.clone(), |l| l.scrub(&said));
    if !out.status.success() {
        anyhow::bail!(
            "docker push {reference} failed ({}): {}",
            out.status,
            last_line(&said)
        );
    }
    let digest = pushed_digest(&said).with_context(|| {
        format!(
            "docker push {reference} named no digest: {}",
            last_line(&said)
        )
    })?;
    Ok(pinned(reference, &digest))
}

/// What a local `docker` run printed.
struct LocalOutput {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

async fn local_docker(args: &[String], stdin: Option<&[u8]>) -> anyhow::Result<LocalOutput> {
    let mut child = tokio::process::Command::new("docker")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("running docker on this machine (install the Docker CLI to push images)")?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(bytes).await.context("writing to docker")?;
    }
    let out = tokio::time::timeout(PULL_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "docker {} did not finish within {} s",
                args.first().map_or("", String::as_str),
                PULL_TIMEOUT.as_secs()
            )
        })??;
    Ok(LocalOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// The digest `docker push` reports: `<tag>: digest: sha256:<hex> size: N`.
fn pushed_digest(output: &str) -> Option<String> {
    output.lines().rev().find_map(|l| {
        let (_, rest) = l.split_once("digest: ")?;
        let digest = rest.split_whitespace().next()?;
        (digest.starts_with("sha256:") && digest.len() == 71).then(|| digest.to_string())
    })
}

/// `reference` pinned to `digest` (a digest it already had is replaced).
fn pinned(reference: &str, digest: &str) -> String {
    let name = reference.split_once('@').map_or(reference, |(n, _)| n);
    format!("{name}@{digest}")
}

/// Pull `reference` with the host's engine (`cli`) and tag it `image`,
/// logging in to its registry first when `configured` (the project's
/// `[artifact] image`) is on the same registry and names a user. `root` is
/// the service root, where the password waits for `docker login`.
pub async fn pull<T: Transport>(
    t: &T,
    cli: &str,
    root: &str,
    reference: &str,
    image: &str,
    configured: Option<&RegistryImage>,
) -> anyhow::Result<()> {
    let registry = parse_reference(reference)
        .map_err(|why| anyhow::anyhow!("release image reference '{reference}': {why}"))?
        .registry;
    let login = match configured.filter(|c| c.registry == registry) {
        Some(c) => Login::resolve(c, &ProcessEnv)?,
        None => None,
    };
    let password = format!("{root}/{PASSWORD_FILE}");
    if let Some(l) = &login {
        t.put_bytes(l.password.expose().as_bytes(), &password, 0o600)
            .await
            .context("handing the registry password to the host")?;
    }
    let script = pull_script(cli, root, reference, image, login.as_ref())?;
    let out = t.exec(&script, PULL_TIMEOUT).await?;
    let said = format!("{}{}", out.stdout, out.stderr);
    match (out.status, &login) {
        (0, _) => Ok(()),
        (10, Some(l)) => Err(l.refused(&t.describe(), &said)),
        (status, l) => {
            let said = l.as_ref().map_or(said.clone(), |l| l.scrub(&said));
            anyhow::bail!(
                "docker pull {reference} on {} failed (exit {status}): {}",
                t.describe(),
                last_line(&said)
            )
        }
    }
}

/// The one command that logs in (exit 10 when refused), pulls, tags and
/// cleans up; the password file and the login directory are removed
/// whatever happens (`trap ... EXIT`).
fn pull_script(
    cli: &str,
    root: &str,
    reference: &str,
    image: &str,
    login: Option<&Login>,
) -> Result<String, crate::shell::NulByte> {
    let (r, i) = (quote(reference)?, quote(image)?);
    let mut script = format!(
        "umask 077; d=$(mktemp -d {dir}) || exit 1; trap 'rm -rf \"$d\" {pw}' EXIT; ",
        dir = quote(&format!("{root}/.soar-registry.XXXXXX"))?,
        pw = quote(&format!("{root}/{PASSWORD_FILE}"))?,
    );
    let config = if let Some(l) = login {
        script.push_str(&format!(
            "{cli} --config \"$d\" login --username {u} --password-stdin {reg} <{pw} >/dev/null 2>\"$d/err\" \
             || {{ tail -n 3 \"$d/err\" >&2; exit 10; }}; rm -f {pw}; ",
            u = quote(&l.user)?,
            reg = quote(&l.registry)?,
            pw = quote(&format!("{root}/{PASSWORD_FILE}"))?,
        ));
        " --config \"$d\""
    } else {
        ""
    };
    script.push_str(&format!(
        "had=0; {cli} image inspect {r} >/dev/null 2>&1 && had=1; \
         {cli}{config} pull -q {r} >/dev/null 2>\"$d/err\" || {{ tail -n 3 \"$d/err\" >&2; exit 11; }}; \
         {cli} tag {r} {i} || exit 12; \
         [ $had = 1 ] || {cli} rmi {r} >/dev/null 2>&1; exit 0"
    ));
    Ok(script)
}

fn last_line(text: &str) -> &str {
    text.trim().lines().last().unwrap_or("no output").trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login() -> Login {
        Login {
            registry: "127.0.0.1:5000".into(),
            user: "deploy".into(),
            password: Secret::new("hunter2-hunter2"),
            env: "REG_PW".into(),
        }
    }

    #[test]
    fn push_output_gives_the_pinned_reference() {
        let out = "The push refers to repository [127.0.0.1:5000/web]\n\
                   095a3250c973: Pushed\n\
                   v1: digest: sha256:bb907a0ea6ae15dd326129049e6ad0a8eab23c119c4972dca5bb97d3d04d1137 size: 524\n";
        let digest = pushed_digest(out).unwrap();
        assert_eq!(
            pinned("127.0.0.1:5000/web:v1", &digest),
            "127.0.0.1:5000/web:v1@sha256:bb907a0ea6ae15dd326129049e6ad0a8eab23c119c4972dca5bb97d3d04d1137"
        );
        assert_eq!(
            pinned(&format!("web@sha256:{}", "0".repeat(64)), &digest),
            format!("web@{digest}")
        );
        assert!(pushed_digest("no digest here").is_none());
    }

    #[test]
    fn the_password_is_never_in_the_command_or_an_error() {
        let l = login();
        let script = pull_script(
            "docker",
            "/srv/web",
            "127.0.0.1:5000/web:v1",
            "soar-web:r1",
            Some(&l),
        )
        .unwrap();
        assert!(!script.contains("hunter2"), "{script}");
        assert!(script.contains("--password-stdin"), "{script}");
        assert!(
            script.contains("</srv/web/shared/.registry-password"),
            "{script}"
        );
        let err = l.refused("ssh x", "Error: hunter2-hunter2 was wrong\n");
        let shown = format!("{err:#}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("REG_PW"), "{shown}");
        assert_eq!(shown.lines().count(), 1, "{shown}");
        let anonymous = pull_script("docker", "/srv/web", "web:v1", "soar-web:r1", None).unwrap();
        assert!(!anonymous.contains("login"), "{anonymous}");
    }

    #[test]
    fn a_missing_password_names_its_variable() {
        struct Empty;
        impl SecretSource for Empty {
            fn var(&self, _: &str) -> Option<String> {
                None
            }
        }
        let mut image = parse_reference("127.0.0.1:5000/web:v1").unwrap();
        assert!(Login::resolve(&image, &Empty).unwrap().is_none());
        image.user = Some("deploy".into());
        let err = Login::resolve(&image, &Empty).err().unwrap().to_string();
        assert!(err.contains("SOAR_REGISTRY_PASSWORD"), "{err}");
        assert!(err.contains("is not set"), "{err}");
    }
}
