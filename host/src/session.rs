//! What a plugin may reach during one command, assembled once and shared by
//! every invocation (each of which gets a fresh sandbox).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::artifact::ArtifactSource;
use crate::broker::http::policy::{Grants, Policy};
use crate::broker::http::{HttpBroker, HttpLimits};
use crate::broker::ssh::{SshBroker, SshSettings};
use crate::contract::Description;
use crate::credentials::{CredentialStore, SecretSource};
use crate::journal::Journal;

/// The brokers and artifact of one plugin for one command.
pub struct Session {
    /// The plugin's HTTP: its allow-list, credentials and redaction.
    pub http: HttpBroker,
    /// SSH for the rollout and the plugin's `ssh` import. Starts with
    /// default settings and no host a plugin may reach; the engine
    /// configures it and allows hosts ([`SshBroker::configure`],
    /// [`SshBroker::allow`]).
    pub ssh: Arc<SshBroker>,
    /// The artifact the plugin may upload; `None` for commands that deploy
    /// nothing.
    pub artifact: Option<Arc<ArtifactSource>>,
    /// Where every brokered call is recorded, redacted.
    pub journal: Arc<Journal>,
    /// Bars for the long tasks plugins report (drawn only on a terminal).
    pub progress: crate::report::progress::PluginProgress,
}

/// Inputs to a [`Session`] besides the plugin itself.
pub struct SessionConfig {
    /// What the user's config grants the plugin in this environment.
    pub grants: Grants,
    /// Environment variable per credential, when the user chose one.
    pub credential_env: BTreeMap<String, String>,
    /// Where credential values are read: the process environment in `soar`,
    /// a fixed map in tests.
    pub secrets: Box<dyn SecretSource>,
    /// The artifact the plugin may upload, if this command deploys one.
    pub artifact: Option<Arc<ArtifactSource>>,
    /// The command's journal, shared with the brokers.
    pub journal: Arc<Journal>,
    /// Timeouts and size caps for the plugin's HTTP.
    pub http_limits: HttpLimits,
}

impl Session {
    /// Compile the plugin's declared reach with the user's grants.
    pub fn new(description: &Description, config: SessionConfig) -> anyhow::Result<Self> {
        let caps = &description.capabilities;
        let policy =
            Policy::new(&description.name, caps, &config.grants).map_err(anyhow::Error::msg)?;
        let credentials = Arc::new(CredentialStore::new(
            &description.name,
            &caps.credentials,
            config.credential_env,
            config.secrets,
        ));
        let http = HttpBroker::new(
            &description.name,
            policy,
            credentials,
            config.artifact.clone(),
            config.journal.clone(),
            config.http_limits,
        );
        let seen = http.seen_addresses();
        Ok(Self {
            http,
            ssh: Arc::new(
                SshBroker::new(SshSettings::default(), config.journal.clone())
                    .with_plugin_declared(caps.ssh)
                    .with_seen_addresses(seen),
            ),
            artifact: config.artifact,
            journal: config.journal,
            progress: Default::default(),
        })
    }

    /// Hand the broker the environment's service secrets, for `secret`
    /// segments toward the provider's API. Values stay on the host.
    pub fn with_service_secrets(
        mut self,
        secrets: BTreeMap<String, crate::credentials::Secret>,
    ) -> Self {
        self.http.set_service_secrets(secrets);
        self
    }

    /// A session for calls that need no network (`describe`): nothing is
    /// declared, so nothing is reachable.
    pub fn offline(plugin: &str) -> anyhow::Result<Self> {
        let nothing = Description {
            name: plugin.to_string(),
            version: String::new(),
            summary: String::new(),
            artifacts: vec![],
            settings_schema: String::new(),
            capabilities: crate::contract::Capabilities {
                endpoints: vec![],
                extra_hosts: vec![],
                credentials: vec![],
                ssh: false,
            },
        };
        Self::new(
            &nothing,
            SessionConfig {
                grants: Grants::default(),
                credential_env: BTreeMap::new(),
                secrets: Box::new(crate::credentials::ProcessEnv),
                artifact: None,
                journal: Arc::new(Journal::default()),
                http_limits: HttpLimits::default(),
            },
        )
    }
}
