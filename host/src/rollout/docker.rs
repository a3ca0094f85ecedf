//! Docker images as releases: the host's Docker engine as the service
//! manager.
//!
//! A `docker` artifact goes through the same rollout as every other kind
//! ([`super::deploy`]): the per-host lock, `releases/<id>/` with its
//! `.soar-digest` (so an unchanged artifact is found and nothing is sent),
//! the SSH broker's verified upload, `shared/env` (mode 0600), the switch
//! of `current`, the health check through the transport, and the automatic
//! switch back on failure. Only the service manager differs: where systemd
//! would (re)start a unit, [`Docker`] makes sure the image of the release
//! `current` points at exists and replaces the service's container with
//! one running it.
//!
//! On a host, for service `web` and release `20260101T000000Z-abcd1234`:
//! ```text
//! releases/<id>/web.tar     an image archive (`docker save`), `docker load`-ed,
//! releases/<id>/Dockerfile  a build context, `docker build`-t on the host, or
//! releases/<id>/image.ref   a registry reference, `docker pull`-ed ([`registry`])
//! image soar-web:<id>       one tag per release; tags of releases no longer
//!                           on the host are removed after each rollout
//! container soar-web        --restart always, --env-file <root>/shared/env,
//!                           -p <publish>:<port>:<container port>
//! ```
//! Images are made when a release is started, not when it is uploaded, so
//! a rollback (automatic or `soar rollback`) to a release whose image was
//! removed by hand loads or builds it again from its release directory.
//!
//! The container is replaced, not run beside the old one (they share the
//! published port): like `systemctl restart` for the other kinds, the old
//! one gets SIGTERM and up to 10 s to finish, then the new one starts, so
//! there is a short gap. Containers run with `--init` (Docker's tini as
//! PID 1): a process that installs no SIGTERM handler then stops on SIGTERM
//! as it would under systemd, instead of being ignored as PID 1 and killed
//! only after the grace period. Output goes to the engine's logging driver (the host's
//! choice); `soar logs` is `docker logs --tail N`.
//!
//! The env file: Docker's `--env-file` reads `KEY=value` lines literally
//! (no quotes, no escapes), unlike systemd's `EnvironmentFile=`, so a
//! docker release writes `shared/env` in Docker's format
//! ([`render_env`]), under the same rules for names and values.

use std::time::Duration;

use anyhow::Context as _;

use super::service::{ServiceManager, ServiceSpec};
use super::transport::{ExecOutput, Transport};
use super::{env_file, registry};
use crate::config::DockerSettings;
use crate::shell::quote;

/// Housekeeping commands (inspect, run, rm, tag).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
/// `docker load` of a large archive, `docker build` on the host.
const IMAGE_TIMEOUT: Duration = Duration::from_secs(1800);
/// Seconds a container has between SIGTERM and SIGKILL when it is stopped
/// or replaced (Docker's own default).
const STOP_GRACE_SECS: u32 = 10;

/// The name of the service's container (and the repository of its images).
pub fn container(service: &str) -> String {
    format!("soar-{service}")
}

/// The image of one release: `soar-<service>:<release>`.
pub fn image(service: &str, release: &str) -> String {
    format!("{}:{release}", container(service))
}

/// `shared/env` in Docker's `--env-file` format: `KEY=value` lines, read
/// literally. Names and values follow the same rules as for systemd (no
/// newline can be represented in either).
pub fn render_env(vars: &[(String, String)]) -> anyhow::Result<String> {
    env_file::render(vars)?;
    Ok(vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect())
}

/// The Docker engine of one host, reached through a [`Transport`].
#[derive(Clone)]
pub struct Docker<T> {
    /// Where the `docker` CLI runs.
    pub transport: T,
    /// `[artifact]`'s docker keys: the CLI, where to publish, the port
    /// inside the container.
    pub settings: DockerSettings,
    /// Whether this manager runs processes beside the service rather than
    /// containers ([`ServiceManager::beside`]): the `proxy` switch's nginx
    /// on a docker host, which has no systemd unit to run in, is a
    /// detached process ([`super::switch::Detached`]).
    beside: bool,
}

impl<T: Transport> Docker<T> {
    /// The engine reached through `transport`.
    pub fn new(transport: T, settings: DockerSettings) -> Self {
        Self {
            transport,
            settings,
            beside: false,
        }
    }

    /// The processes a proxy switch runs beside the containers.
    fn detached(&self) -> super::switch::Detached<T>
    where
        T: Clone,
    {
        super::switch::Detached {
            transport: self.transport.clone(),
        }
    }

    fn cli(&self) -> &str {
        &self.settings.command
    }

    async fn exec(&self, command: &str, timeout: Duration) -> anyhow::Result<ExecOutput> {
        self.transport.exec(command, timeout).await
    }

    /// The `docker run` line of `release` (for [`ServiceManager::restart`]).
    pub fn run_command(
        &self,
        spec: &ServiceSpec,
        release: &str,
    ) -> Result<String, crate::shell::NulByte> {
        self.run_line(spec, &spec.name, &self.settings.publish, release)
    }

    /// `docker run` of `image_of`'s image of `release` as `spec`'s
    /// container, its port published on `publish`.
    fn run_line(
        &self,
        spec: &ServiceSpec,
        image_of: &str,
        publish: &str,
        release: &str,
    ) -> Result<String, crate::shell::NulByte> {
        let inside = self.settings.container_port.unwrap_or(spec.port);
        let port_env = match self.settings.container_port {
            // --env-file sets PORT to the service port; -e wins over it.
            Some(p) => format!(" -e PORT={p}"),
            None => String::new(),
        };
        Ok(format!(
            "{cli} run -d --name {name} --init --restart always --env-file {env}{port_env} -p {publish}:{port}:{inside} \
             --label soar.service={service} --label soar.release={release_q} {image}",
            cli = self.cli(),
            name = quote(&container(&spec.name))?,
            env = quote(&format!("{}/shared/env", spec.root))?,
            publish = publish,
            port = spec.port,
            service = quote(&spec.name)?,
            release_q = quote(release)?,
            image = quote(&image(image_of, release))?,
        ))
    }

    /// Fail with what to do when the host has no usable Docker engine.
    async fn check_engine(&self) -> anyhow::Result<()> {
        let out = self
            .exec(
                &format!("{} version --format '{{{{.Server.Version}}}}'", self.cli()),
                STEP_TIMEOUT,
            )
            .await?;
        if out.status != 0 || out.stdout.trim().is_empty() {
            anyhow::bail!(
                "cannot use the Docker engine on {} with `{}`: {}\n\
                 install it (Debian/Ubuntu: apt-get install docker.io), start it, and let the SSH user use it \
                 (root, or the docker group); or set `artifact.docker_command` (e.g. \"sudo docker\")",
                self.transport.describe(),
                self.cli(),
                last_lines(&format!("{}{}", out.stdout, out.stderr), 3)
            );
        }
        Ok(())
    }

    /// Make sure `soar-<service>:<release>` exists: build it from the
    /// release's Dockerfile, pull the image its `image.ref` names, or load
    /// it from its archive and tag it. One command finds out which.
    pub async fn ensure_image(&self, spec: &ServiceSpec, release: &str) -> anyhow::Result<()> {
        let image = image(&spec.name, release);
        let dir = format!("{}/releases/{release}", spec.root);
        let probe = format!(
            "if {cli} image inspect {image} >/dev/null 2>&1; then echo have; \
             elif [ -f {dockerfile} ]; then echo build; \
             elif [ -f {reference} ]; then echo pull; cat {reference}; \
             else echo load; fi",
            cli = self.cli(),
            image = quote(&image)?,
            dockerfile = quote(&format!("{dir}/Dockerfile"))?,
            reference = quote(&format!("{dir}/{}", registry::REFERENCE_FILE))?,
        );
        let out = self
            .exec(&probe, STEP_TIMEOUT)
            .await?
            .check("looking for the release's image")?;
        let mut lines = out.stdout.lines().map(str::trim);
        match lines.next() {
            Some("have") => Ok(()),
            Some("build") => self.build(&dir, &image).await,
            Some("pull") => {
                let reference = lines.next().filter(|r| !r.is_empty()).with_context(|| {
                    format!("{dir}/{} names no image", registry::REFERENCE_FILE)
                })?;
                registry::pull(
                    &self.transport,
                    self.cli(),
                    &spec.root,
                    reference,
                    &image,
                    self.settings.image.as_ref(),
                )
                .await
            }
            _ => self.load(&dir, &image).await,
        }
    }

    async fn build(&self, dir: &str, image: &str) -> anyhow::Result<()> {
        let out = self
            .exec(
                &format!(
                    "{} build -t {} {} 2>&1",
                    self.cli(),
                    quote(image)?,
                    quote(dir)?
                ),
                IMAGE_TIMEOUT,
            )
            .await?;
        if out.status != 0 {
            anyhow::bail!(
                "docker build of {image} on {} failed (exit {}):\n{}",
                self.transport.describe(),
                out.status,
                indent(&last_lines(&format!("{}{}", out.stdout, out.stderr), 30))
            );
        }
        Ok(())
    }

    async fn load(&self, dir: &str, image: &str) -> anyhow::Result<()> {
        let listing = self
            .exec(&format!("ls -1 {}", quote(dir)?), STEP_TIMEOUT)
            .await?
            .check("listing the release directory")?;
        let files: Vec<&str> = listing.stdout.lines().filter(|l| !l.is_empty()).collect();
        let [file] = files.as_slice() else {
            anyhow::bail!(
                "release directory {dir} holds {} files and no Dockerfile: a docker artifact is one image archive or a build context",
                files.len()
            );
        };
        let archive = format!("{dir}/{file}");
        // The names the archive will tag, to remove those that did not exist
        // before: the host keeps only soar's own tags.
        let manifest = self
            .exec(
                &format!("tar -xOf {} manifest.json 2>/dev/null", quote(&archive)?),
                STEP_TIMEOUT,
            )
            .await?;
        let entries: Vec<serde_json::Value> = serde_json::from_str(&manifest.stdout)
            .ok()
            .filter(|_| manifest.status == 0)
            .unwrap_or_default();
        if entries.len() > 1 {
            anyhow::bail!(
                "{file} holds {} images; a docker artifact is one image (`docker save` one name)",
                entries.len()
            );
        }
        let tags: Vec<String> = entries
            .iter()
            .flat_map(|e| e["RepoTags"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect();
        let mut new_tags = Vec::new();
        for t in &tags {
            let out = self
                .exec(
                    &format!("{} image inspect {} >/dev/null 2>&1", self.cli(), quote(t)?),
                    STEP_TIMEOUT,
                )
                .await?;
            if out.status != 0 && t != image {
                new_tags.push(t.clone());
            }
        }
        let out = self
            .exec(
                &format!("{} load -i {}", self.cli(), quote(&archive)?),
                IMAGE_TIMEOUT,
            )
            .await?;
        if out.status != 0 {
            anyhow::bail!(
                "docker load of {file} on {} failed (exit {}): {}",
                self.transport.describe(),
                out.status,
                last_lines(&format!("{}{}", out.stdout, out.stderr), 5)
            );
        }
        let loaded = loaded_refs(&out.stdout);
        let Some(source) = loaded.first() else {
            anyhow::bail!(
                "docker load of {file} named no image: {}",
                last_lines(&out.stdout, 3)
            );
        };
        self.exec(
            &format!("{} tag {} {}", self.cli(), quote(source)?, quote(image)?),
            STEP_TIMEOUT,
        )
        .await?
        .check("tagging the loaded image")?;
        for t in new_tags {
            // Untagging only: the image stays under soar's tag.
            let _ = self
                .exec(
                    &format!("{} rmi {} >/dev/null 2>&1", self.cli(), quote(&t)?),
                    STEP_TIMEOUT,
                )
                .await;
        }
        Ok(())
    }

    /// Tags of the service's images on the host.
    async fn tags(&self, spec: &ServiceSpec) -> anyhow::Result<Vec<String>> {
        let out = self
            .exec(
                &format!(
                    "{} images --format '{{{{.Tag}}}}' {}",
                    self.cli(),
                    quote(&container(&spec.name))?
                ),
                STEP_TIMEOUT,
            )
            .await?
            .check("listing the service's images")?;
        Ok(out
            .stdout
            .lines()
            .map(str::trim)
            .filter(|t| !t.is_empty() && *t != "<none>")
            .map(str::to_string)
            .collect())
    }

    async fn remove_images(&self, spec: &ServiceSpec, tags: &[String]) -> anyhow::Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let images = tags
            .iter()
            .map(|t| quote(&image(&spec.name, t)))
            .collect::<Result<Vec<_>, _>>()?;
        self.exec(
            &format!("{} rmi {}", self.cli(), images.join(" ")),
            STEP_TIMEOUT,
        )
        .await?
        .check("removing the service's images")?;
        Ok(())
    }

    /// Remove the images of releases no longer on the host (the rollout
    /// prunes release directories beyond `keep_releases`, keeping current
    /// and previous), so the host keeps exactly one image per release.
    pub async fn prune_images(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        let tags = self.tags(spec).await?;
        if tags.is_empty() {
            return Ok(());
        }
        let out = self
            .exec(
                &format!(
                    "ls -1 {} 2>/dev/null || true",
                    quote(&format!("{}/releases", spec.root))?
                ),
                STEP_TIMEOUT,
            )
            .await?;
        let kept: Vec<&str> = out.stdout.lines().map(str::trim).collect();
        let doomed: Vec<String> = tags
            .into_iter()
            .filter(|t| !kept.contains(&t.as_str()))
            .collect();
        self.remove_images(spec, &doomed).await
    }

    /// Remove `spec`'s container, if there is one.
    pub async fn remove_container(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        let name = quote(&container(&spec.name))?;
        self.exec(
            &format!(
                "if {cli} inspect {name} >/dev/null 2>&1; then {cli} rm -f {name} >/dev/null; fi",
                cli = self.cli()
            ),
            STEP_TIMEOUT,
        )
        .await?
        .check("removing the container")?;
        Ok(())
    }

    /// Remove the container and every image of the service (`soar destroy`).
    pub async fn uninstall(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        self.remove_container(spec).await?;
        let tags = self.tags(spec).await?;
        self.remove_images(spec, &tags).await
    }
}

impl<T: Transport + Clone> ServiceManager for Docker<T> {
    /// Run the image of the release `current` points at, making it first
    /// when needed, in place of the service's container.
    ///
    /// A colour of the `proxy` switch (`<service>-blue` under
    /// `<root>/blue`, [`super::switch`]) runs as a container of its own
    /// (`soar-<service>-blue`) beside the live one, on its own port
    /// published on loopback only (nginx on the host is its one client),
    /// from the service's image of the release: one image per release
    /// whichever colour runs it, pruned as the restart switch's are.
    async fn restart(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        if self.beside {
            return self.detached().restart(spec).await;
        }
        self.check_engine().await?;
        let release = super::current(&self.transport, &spec.root)
            .await?
            .with_context(|| format!("{} has no current release to run", spec.name))?;
        let (base, publish) = match super::switch::colour_of(spec) {
            Some(base) => (base, "127.0.0.1"),
            None => (spec.clone(), self.settings.publish.as_str()),
        };
        self.ensure_image(&base, &release).await?;
        let out = self
            .exec(
                &format!(
                    "{cli} stop -t {grace} {name} >/dev/null 2>&1; {cli} rm -f {name} >/dev/null 2>&1; {run}",
                    cli = self.cli(),
                    grace = STOP_GRACE_SECS,
                    name = quote(&container(&spec.name))?,
                    run = self.run_line(spec, &base.name, publish, &release)?
                ),
                STEP_TIMEOUT,
            )
            .await?;
        if out.status != 0 {
            anyhow::bail!(
                "docker run of {} failed (exit {}): {}",
                image(&base.name, &release),
                out.status,
                last_lines(&out.stderr, 5)
            );
        }
        Ok(())
    }

    /// Stop the container and take its restart policy away, so a restart
    /// of the engine does not bring a stopped release back; it stays for
    /// `docker logs` until the next release replaces it.
    async fn stop(&self, spec: &ServiceSpec) -> anyhow::Result<()> {
        if self.beside {
            return self.detached().stop(spec).await;
        }
        let name = quote(&container(&spec.name))?;
        self.exec(
            &format!(
                "if {cli} inspect {name} >/dev/null 2>&1; then {cli} update --restart=no {name} >/dev/null && {cli} stop -t {grace} {name} >/dev/null; fi",
                cli = self.cli(),
                grace = STOP_GRACE_SECS
            ),
            STEP_TIMEOUT,
        )
        .await?
        .check("stopping the container")?;
        Ok(())
    }

    async fn is_running(&self, spec: &ServiceSpec) -> anyhow::Result<bool> {
        if self.beside {
            return self.detached().is_running(spec).await;
        }
        let out = self
            .exec(
                &format!(
                    "{} inspect -f '{{{{.State.Running}}}}' {} 2>/dev/null",
                    self.cli(),
                    quote(&container(&spec.name))?
                ),
                STEP_TIMEOUT,
            )
            .await?;
        Ok(out.status == 0 && out.stdout.trim() == "true")
    }

    async fn logs(&self, spec: &ServiceSpec, lines: usize) -> anyhow::Result<String> {
        let name = container(&spec.name);
        let out = self
            .exec(
                &format!("{} logs --tail {lines} {} 2>&1", self.cli(), quote(&name)?),
                STEP_TIMEOUT,
            )
            .await?;
        if out.status != 0 {
            anyhow::bail!(
                "no logs of container {name} on {}: {}",
                self.transport.describe(),
                last_lines(&out.stdout, 2)
            );
        }
        Ok(out.stdout)
    }

    fn beside(&self) -> Self {
        Self {
            beside: true,
            ..self.clone()
        }
    }
}

/// The image references `docker load` reports: `Loaded image: NAME` or
/// `Loaded image ID: sha256:...` lines.
fn loaded_refs(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("Loaded image ID: ")
                .or_else(|| l.trim().strip_prefix("Loaded image: "))
        })
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .collect()
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::local::LocalTransport;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: "web".into(),
            root: "/srv/x/opt/web".into(),
            command: String::new(),
            port: 8080,
        }
    }

    #[test]
    fn run_line() {
        let d = Docker::new(LocalTransport, DockerSettings::default());
        assert_eq!(
            d.run_command(&spec(), "20260101T000000Z-abcd1234").unwrap(),
            "docker run -d --name soar-web --init --restart always --env-file /srv/x/opt/web/shared/env -p 0.0.0.0:8080:8080 \
             --label soar.service=web --label soar.release=20260101T000000Z-abcd1234 soar-web:20260101T000000Z-abcd1234"
        );
        let d = Docker::new(
            LocalTransport,
            DockerSettings {
                command: "sudo docker".into(),
                publish: "127.0.0.1".into(),
                container_port: Some(80),
                ..DockerSettings::default()
            },
        );
        let line = d.run_command(&spec(), "r1").unwrap();
        assert!(line.starts_with("sudo docker run -d"), "{line}");
        assert!(line.contains(" -e PORT=80 -p 127.0.0.1:8080:80 "), "{line}");
    }

    #[test]
    fn env_file_is_literal() {
        let vars = vec![
            ("A".to_string(), r#"x "y" \z $HOME"#.to_string()),
            ("PORT".into(), "8080".into()),
        ];
        assert_eq!(
            render_env(&vars).unwrap(),
            "A=x \"y\" \\z $HOME\nPORT=8080\n"
        );
        assert!(render_env(&[("A".into(), "a\nb".into())]).is_err());
        assert!(render_env(&[("1A".into(), "x".into())]).is_err());
    }

    #[test]
    fn load_output() {
        assert_eq!(
            loaded_refs("Loaded image: app:latest\nLoaded image ID: sha256:abc\n"),
            ["app:latest", "sha256:abc"]
        );
        assert!(loaded_refs("nothing").is_empty());
    }
}
