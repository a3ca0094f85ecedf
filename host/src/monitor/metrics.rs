//! A service's numbers — up, restarts, uptime, CPU, resident memory — read
//! where they live: `/proc` for the local supervisor ([`super::proc`]),
//! `systemctl show` for a systemd unit, `docker inspect` / `docker stats`
//! for a container. A remote host is asked in one command, so a look costs
//! one SSH round trip on the broker's pooled connection.
//!
//! systemd without accounting reports `MemoryCurrent` and `CPUUsageNSec` as
//! `[not set]`; those (and a container's numbers) are then read from the
//! main process's `/proc/<pid>/stat` on the host, asked in the same command.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::proc::Stat;
use super::{Place, Service};
use crate::rollout::Manager;
use crate::rollout::docker::{Docker, container};
use crate::rollout::ssh::SshTransport;
use crate::rollout::systemd::Systemd;
use crate::rollout::transport::Transport as _;
use crate::shell::quote;

/// How long asking a host for its numbers may take.
const ASK_TIMEOUT: Duration = Duration::from_secs(15);

/// One service's numbers at one moment; `None` where the manager does not
/// say (a stopped service has no CPU time).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Whether the service's process runs (the manager's view, not the
    /// health check's).
    pub up: bool,
    /// Its main process on its host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Times the manager restarted it (since the supervisor, unit or
    /// container started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restarts: Option<u64>,
    /// Seconds since the running process started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<u64>,
    /// CPU time used by the running process (or unit), seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// Resident memory, bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
}

/// Read `svc`'s numbers from its manager.
pub async fn gather(svc: &Service) -> anyhow::Result<Metrics> {
    match &svc.place {
        Place::Local => {
            let root = std::path::PathBuf::from(&svc.spec.root);
            let name = svc.spec.name.clone();
            Ok(tokio::task::spawn_blocking(move || super::proc::local(&root, &name)).await?)
        }
        Place::Ssh(r) => remote(&r.manager, &svc.spec.name).await,
    }
}

/// The numbers of service `name` run by `manager` on a remote host.
pub async fn remote(manager: &Manager, name: &str) -> anyhow::Result<Metrics> {
    match manager {
        Manager::Systemd(sd) => systemd(sd, name).await,
        Manager::Docker(d) => docker(d, name).await,
    }
}

/// The lines that report the host's uptime, clock and page size, and the
/// `/proc/<pid>/stat` of the pid in shell variable `pid`.
const PROC_LINES: &str = "echo \"Uptime=$(cut -d' ' -f1 /proc/uptime)\"; \
     echo \"ClkTck=$(getconf CLK_TCK)\"; echo \"PageSize=$(getconf PAGESIZE)\"; \
     if [ -n \"$pid\" ] && [ \"$pid\" != 0 ] && [ -r /proc/$pid/stat ]; then echo \"Stat=$(cat /proc/$pid/stat)\"; fi; true";

/// A systemd unit's numbers (`systemctl show`).
pub async fn systemd(sd: &Systemd, name: &str) -> anyhow::Result<Metrics> {
    let unit = quote(name)?;
    let props = [
        "ActiveState",
        "MainPID",
        "NRestarts",
        "MemoryCurrent",
        "CPUUsageNSec",
        "ActiveEnterTimestampMonotonic",
    ]
    .map(|p| format!("-p {p}"))
    .join(" ");
    let script = format!(
        "out=$({ctl} show {unit} {props} 2>/dev/null); printf '%s\\n' \"$out\"; \
         pid=$(printf '%s\\n' \"$out\" | sed -n 's/^MainPID=//p'); {PROC_LINES}",
        ctl = sd.systemctl
    );
    let out = sd.transport.exec(&script, ASK_TIMEOUT).await?;
    Ok(from_systemd(&key_values(&out.stdout)))
}

/// The lines that report the CPU time and memory of the control group of
/// the pid in shell variable `pid` — a container's, so every process in it
/// counts, not only its init (`--init` makes that Docker's `tini`, whose
/// own numbers are nearly nothing). cgroup v1 (`cpuacct`, `memory`) or v2;
/// `Cgroup=yes` when the memory was found.
const CGROUP_LINES: &str = "v1c=$(sed -n 's/^[0-9]*:[^:]*cpuacct[^:]*://p' /proc/$pid/cgroup 2>/dev/null | head -n 1); \
     v1m=$(sed -n 's/^[0-9]*:[^:]*memory[^:]*://p' /proc/$pid/cgroup 2>/dev/null | head -n 1); \
     v2=$(sed -n 's/^0:://p' /proc/$pid/cgroup 2>/dev/null | head -n 1); \
     for d in \"/sys/fs/cgroup/cpuacct$v1c\" \"/sys/fs/cgroup/cpu,cpuacct$v1c\"; do \
       if [ -n \"$v1c\" ] && [ -r \"$d/cpuacct.usage\" ]; then echo \"CgroupCpuNs=$(cat \"$d/cpuacct.usage\")\"; break; fi; done; \
     d=\"/sys/fs/cgroup/memory$v1m\"; \
     if [ -n \"$v1m\" ] && [ -r \"$d/memory.usage_in_bytes\" ]; then echo Cgroup=yes; \
       echo \"CgroupMemory=$(cat \"$d/memory.usage_in_bytes\")\"; \
       echo \"CgroupInactiveFile=$(sed -n 's/^total_inactive_file //p' \"$d/memory.stat\")\"; fi; \
     d=\"/sys/fs/cgroup$v2\"; \
     if [ -n \"$v2\" ] && [ \"$v2\" != / ] && [ -r \"$d/memory.current\" ]; then echo Cgroup=yes; \
       echo \"CgroupMemory=$(cat \"$d/memory.current\")\"; \
       echo \"CgroupInactiveFile=$(sed -n 's/^inactive_file //p' \"$d/memory.stat\")\"; \
       echo \"CgroupCpuUsec=$(sed -n 's/^usage_usec //p' \"$d/cpu.stat\")\"; fi";

/// A container's numbers: `docker inspect` for its state and restarts, its
/// control group on the host for CPU and memory (as `docker stats` counts
/// them, without its second of sampling), and `docker stats --no-stream`
/// only where the control group cannot be read. Uptime is its init's, from
/// the host's `/proc`.
pub async fn docker(d: &Docker<SshTransport>, name: &str) -> anyhow::Result<Metrics> {
    let c = quote(&container(name))?;
    let cli = &d.settings.command;
    let script = format!(
        "{cli} inspect --format 'Running={{{{.State.Running}}}}\nPid={{{{.State.Pid}}}}\nRestartCount={{{{.RestartCount}}}}' {c} 2>/dev/null; \
         pid=$({cli} inspect --format '{{{{.State.Pid}}}}' {c} 2>/dev/null); \
         cg=$(if [ -n \"$pid\" ] && [ \"$pid\" != 0 ]; then {CGROUP_LINES}; fi 2>/dev/null); \
         printf '%s\\n' \"$cg\"; \
         case \"$cg\" in *Cgroup=yes*) ;; \
           *) echo \"Stats=$({cli} stats --no-stream --format '{{{{.MemUsage}}}}' {c} 2>/dev/null)\";; esac; \
         {PROC_LINES}"
    );
    let out = d.transport.exec(&script, ASK_TIMEOUT).await?;
    Ok(from_docker(&key_values(&out.stdout)))
}

/// `Key=value` lines as a map (later lines win).
pub fn key_values(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// A number systemd reports, or `None` for `[not set]`, empty, or the
/// "infinity" it uses for unset counters (`u64::MAX`).
fn number(kv: &BTreeMap<String, String>, key: &str) -> Option<u64> {
    kv.get(key)?.parse().ok().filter(|n| *n != u64::MAX)
}

/// What the host's `/proc` says of the process whose stat was reported.
fn from_proc(kv: &BTreeMap<String, String>, m: &mut Metrics) {
    let Some(stat) = kv.get("Stat").and_then(|s| Stat::parse(s)) else {
        return;
    };
    let tck = number(kv, "ClkTck").filter(|t| *t > 0).unwrap_or(100) as f64;
    let page = number(kv, "PageSize").unwrap_or(4096);
    m.cpu_seconds.get_or_insert(stat.cpu_ticks as f64 / tck);
    m.rss_bytes.get_or_insert(stat.rss_pages * page);
    let uptime: Option<f64> = kv.get("Uptime").and_then(|u| u.parse().ok());
    if let Some(up) = uptime {
        m.uptime_seconds
            .get_or_insert((up - stat.start_ticks as f64 / tck).max(0.0) as u64);
    }
}

/// Metrics from `systemctl show` and `/proc` lines.
pub fn from_systemd(kv: &BTreeMap<String, String>) -> Metrics {
    let up = kv.get("ActiveState").is_some_and(|s| s == "active");
    let pid = number(kv, "MainPID").filter(|p| *p != 0).map(|p| p as u32);
    let mut m = Metrics {
        up,
        pid: pid.filter(|_| up),
        restarts: number(kv, "NRestarts"),
        cpu_seconds: number(kv, "CPUUsageNSec").map(|ns| ns as f64 / 1e9),
        rss_bytes: number(kv, "MemoryCurrent"),
        uptime_seconds: None,
    };
    if let (Some(entered), Some(now)) = (
        number(kv, "ActiveEnterTimestampMonotonic").filter(|t| *t > 0),
        kv.get("Uptime").and_then(|u| u.parse::<f64>().ok()),
    ) {
        m.uptime_seconds = Some((now - entered as f64 / 1e6).max(0.0) as u64);
    }
    if up {
        from_proc(kv, &mut m);
    }
    m
}

/// Metrics from `docker inspect`, control group, `docker stats` and
/// `/proc` lines. The control group's numbers (every process of the
/// container) win over `/proc`'s (its init alone); memory is counted as
/// `docker stats` does: usage less the inactive page cache.
pub fn from_docker(kv: &BTreeMap<String, String>) -> Metrics {
    let up = kv.get("Running").is_some_and(|s| s == "true");
    let mut m = Metrics {
        up,
        pid: number(kv, "Pid")
            .filter(|p| *p != 0 && up)
            .map(|p| p as u32),
        restarts: number(kv, "RestartCount"),
        ..Metrics::default()
    };
    if up {
        m.cpu_seconds = number(kv, "CgroupCpuNs")
            .map(|ns| ns as f64 / 1e9)
            .or_else(|| number(kv, "CgroupCpuUsec").map(|us| us as f64 / 1e6));
        m.rss_bytes = number(kv, "CgroupMemory")
            .map(|b| b.saturating_sub(number(kv, "CgroupInactiveFile").unwrap_or(0)))
            .or_else(|| kv.get("Stats").and_then(|s| memory(s.split('/').next()?)));
        from_proc(kv, &mut m);
    }
    m
}

/// `12.5MiB` (docker's units) as bytes.
fn memory(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = text.split_at(split);
    let n: f64 = n.trim().parse().ok()?;
    let scale = match unit {
        "B" => 1.0,
        "KiB" | "kB" | "KB" => 1024.0,
        "MiB" | "MB" => 1024.0 * 1024.0,
        "GiB" | "GB" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * scale) as u64)
}

impl Metrics {
    /// One line for people: `up, pid 42, 1 restart(s), up 3m, cpu 0.4 s, rss 12.3 MiB`.
    pub fn summary(&self) -> String {
        if !self.up {
            return match self.restarts {
                Some(r) => format!("down ({r} restart(s))"),
                None => "down".into(),
            };
        }
        let mut parts = vec!["up".to_string()];
        parts.extend(self.pid.map(|p| format!("pid {p}")));
        parts.extend(self.restarts.map(|r| format!("{r} restart(s)")));
        parts.extend(self.uptime_seconds.map(|u| format!("up {}", duration(u))));
        parts.extend(self.cpu_seconds.map(|c| format!("cpu {c:.1} s")));
        parts.extend(self.rss_bytes.map(|b| format!("rss {}", bytes(b))));
        parts.join(", ")
    }
}

/// `3d4h`, `2h5m`, `4m10s`, `9s`.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s}s"),
        (0, _, _) => format!("{h}h{m}m"),
        _ => format!("{d}d{h}h"),
    }
}

/// `12.3 MiB`.
pub fn bytes(b: u64) -> String {
    let mib = b as f64 / (1024.0 * 1024.0);
    if mib >= 1024.0 {
        format!("{:.1} GiB", mib / 1024.0)
    } else {
        format!("{mib:.1} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_accounting_wins_and_proc_fills_the_gaps() {
        let text = "ActiveState=active\nMainPID=77\nNRestarts=2\nMemoryCurrent=[not set]\n\
                    CPUUsageNSec=1500000000\nActiveEnterTimestampMonotonic=90000000\n\
                    Uptime=100.5\nClkTck=100\nPageSize=4096\n\
                    Stat=77 (python3) S 1 77 77 0 -1 0 0 0 0 0 30 20 0 0 20 0 1 0 9000 0 100 0\n";
        let m = from_systemd(&key_values(text));
        assert_eq!(
            m,
            Metrics {
                up: true,
                pid: Some(77),
                restarts: Some(2),
                uptime_seconds: Some(10),
                cpu_seconds: Some(1.5),
                rss_bytes: Some(409600),
            }
        );
    }

    #[test]
    fn an_inactive_unit_is_down_without_process_numbers() {
        let m = from_systemd(&key_values("ActiveState=failed\nMainPID=0\nNRestarts=5\n"));
        assert!(!m.up);
        assert_eq!((m.pid, m.restarts, m.cpu_seconds), (None, Some(5), None));
        assert_eq!(m.summary(), "down (5 restart(s))");
    }

    #[test]
    fn a_containers_control_group_counts_all_its_processes() {
        // Docker's init (pid 5) has used 0.02 s and 155 pages; the
        // container as a whole 1.5 s and 12 MiB (of which 2 MiB cache).
        let m = from_docker(&key_values(
            "Running=true\nPid=5\nRestartCount=2\nCgroup=yes\nCgroupCpuNs=1500000000\n\
             CgroupMemory=12582912\nCgroupInactiveFile=2097152\n\
             Uptime=100.5\nClkTck=100\nPageSize=4096\n\
             Stat=5 (docker-init) S 1 5 5 0 -1 0 0 0 0 0 1 1 0 0 20 0 1 0 9000 0 155 0\n",
        ));
        assert_eq!(
            m,
            Metrics {
                up: true,
                pid: Some(5),
                restarts: Some(2),
                uptime_seconds: Some(10),
                cpu_seconds: Some(1.5),
                rss_bytes: Some(10485760),
            }
        );
        let v2 = from_docker(&key_values(
            "Running=true\nPid=5\nCgroup=yes\nCgroupCpuUsec=250000\nCgroupMemory=4096\nCgroupInactiveFile=\n",
        ));
        assert_eq!((v2.cpu_seconds, v2.rss_bytes), (Some(0.25), Some(4096)));
    }

    #[test]
    fn docker_numbers_with_stats_for_memory() {
        let m = from_docker(&key_values(
            "Running=true\nPid=5\nRestartCount=1\nStats=12.5MiB / 1.9GiB\n",
        ));
        assert!(m.up);
        assert_eq!(m.restarts, Some(1));
        assert_eq!(m.rss_bytes, Some(13107200));
    }

    #[test]
    fn durations_for_people() {
        assert_eq!(duration(9), "9s");
        assert_eq!(duration(250), "4m10s");
        assert_eq!(duration(7500), "2h5m");
        assert_eq!(duration(90000), "1d1h");
    }
}
