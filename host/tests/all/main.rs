//! Soar's integration tests, as modules of one test binary.
//!
//! Every suite used to be its own file under `host/tests/`, so Cargo built
//! one binary per file and linked wasmtime, russh and reqwest into each of
//! them: most of the suite's build time went into those links. Here the
//! suites are modules of a single binary (the layout of wasmtime's
//! `tests/all` and cargo's `tests/testsuite`), so the host is linked into a
//! test binary once, and fixtures shared by several suites live once, in
//! [`support`].
//!
//! A suite is selected by its module path:
//! `cargo test -p soar --test all hostile::` runs the hostile-plugin suite,
//! `cargo test -p soar --test all -- --exact secrets::the_token_never_reaches_the_plugin`
//! one test.
//!
//! All tests share one process and run on parallel threads, so a test must
//! not change process-wide state (environment variables, the current
//! directory, signal handlers): what a child `soar` needs goes on its
//! [`std::process::Command`], and tests that need a process of their own
//! re-run this binary with `--exact` (see [`support::this_test`]).

mod support;

mod aws_iam_policy;
mod aws_spot;
mod canary;
mod cloudflare;
mod config_errors;
mod contract_versions;
mod dashboard;
mod digitalocean;
mod do_functions;
mod do_paging;
mod do_sshd;
mod docker_metrics;
mod docker_rollout;
mod e2e_local;
mod env_locks;
mod exec;
mod hostile;
mod hostile_caps;
mod hostile_secrets;
mod hostile_terminal;
mod logs_follow;
mod mcp;
mod metrics;
mod monitor;
mod monitor_ssh;
mod plugin_conformance;
mod plugin_install;
mod refresh;
mod registry;
mod remote;
mod retries;
mod round_trips;
mod secrets;
mod serve;
mod serve_pg;
mod served;
mod sigv4_moto;
mod spot_zero_config;
mod ssh_config;
mod ssh_faults;
mod ssh_rollout;
mod state_lock;
mod state_pg;
mod state_pg_tls;
mod state_push_pull;
mod status_drift;
mod upload_progress;
mod validate_settings;
mod wrangler_fake;
mod zero_downtime;
