//! The host imports of `soar:plugin@0.1.0`, for components built against it.
//!
//! Each function converts its arguments to the current contract, calls the
//! current import (runtime/imports.rs, which forwards to the brokers, the one
//! enforcement point), and converts the answer back. A 0.1.0 plugin thus gets
//! exactly the checks, caps and audit trail a current one does; only the
//! shapes differ. The conversions live in `soar_contract::v0_1::convert`.

use super::sandbox::HostState;
use crate::contract::soar::plugin as current;
use crate::contract::v0_1::convert;
use crate::contract::v0_1::soar::plugin::{artifacts, clock, http, log, progress, ssh, types};

type HostResult<T> = wasmtime::Result<T>;

impl types::Host for HostState {}

impl http::Host for HostState {
    async fn send(
        &mut self,
        req: http::Request,
    ) -> HostResult<Result<http::Response, http::Error>> {
        let answer = current::http::Host::send(self, convert::request(req, vec![])).await?;
        Ok(answer.map(convert::response).map_err(convert::http_error))
    }

    async fn send_issuing(
        &mut self,
        req: http::Request,
        issued: Vec<http::IssuedCredential>,
    ) -> HostResult<Result<http::Response, http::Error>> {
        let answer = current::http::Host::send(self, convert::request(req, issued)).await?;
        Ok(answer.map(convert::response).map_err(convert::http_error))
    }

    async fn secret_names(&mut self) -> HostResult<Vec<String>> {
        current::http::Host::secret_names(self).await
    }

    async fn credential_claims(&mut self, credential: String) -> HostResult<Option<String>> {
        current::http::Host::credential_claims(self, credential).await
    }
}

impl ssh::Host for HostState {
    async fn exec(
        &mut self,
        target: ssh::Target,
        command: String,
        timeout_ms: Option<u32>,
    ) -> HostResult<Result<ssh::Output, ssh::Error>> {
        let target = convert::ssh_target(target);
        let answer = current::ssh::Host::exec(self, target, command, timeout_ms).await?;
        Ok(answer.map(convert::ssh_output).map_err(convert::ssh_error))
    }

    async fn upload(
        &mut self,
        target: ssh::Target,
        file: String,
        remote_path: String,
        mode: u32,
    ) -> HostResult<Result<u64, ssh::Error>> {
        let target = convert::ssh_target(target);
        let answer = current::ssh::Host::upload(self, target, file, remote_path, mode).await?;
        Ok(answer.map_err(convert::ssh_error))
    }
}

impl artifacts::Host for HostState {
    async fn current(&mut self) -> HostResult<Option<types::Artifact>> {
        let artifact = current::artifacts::Host::current(self).await?;
        Ok(artifact.as_ref().map(convert::artifact))
    }

    async fn read(
        &mut self,
        path: String,
        offset: u64,
        len: u32,
    ) -> HostResult<Result<Vec<u8>, String>> {
        current::artifacts::Host::read(self, path, offset, len).await
    }

    async fn digest(
        &mut self,
        path: String,
        algorithm: artifacts::DigestAlgorithm,
        input: artifacts::DigestInput,
    ) -> HostResult<Result<String, String>> {
        let (algorithm, input) = convert::digest_request(algorithm, input);
        current::artifacts::Host::digest(self, path, algorithm, input).await
    }
}

impl log::Host for HostState {
    async fn log(
        &mut self,
        level: log::Level,
        message: String,
        fields: Vec<(String, String)>,
    ) -> HostResult<()> {
        current::log::Host::log(self, convert::log_level(level), message, fields).await
    }
}

impl progress::Host for HostState {
    async fn report(&mut self, task: String, done: u64, total: Option<u64>) -> HostResult<()> {
        current::progress::Host::report(self, task, done, total).await
    }
}

impl clock::Host for HostState {
    async fn now_ms(&mut self) -> HostResult<u64> {
        current::clock::Host::now_ms(self).await
    }

    async fn sleep(&mut self, ms: u64) -> HostResult<()> {
        current::clock::Host::sleep(self, ms).await
    }
}
