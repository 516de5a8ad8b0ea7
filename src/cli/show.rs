//! How the CLI shows results to people (JSON output is the serialized value itself).

use crate::error::{Error, Result};
use crate::model::{PathCheck, Volume};
use crate::ops::report::PoolStatus;

/// Prints one pool's status for people: attached, drifting or skipped volumes
/// (`all`: every volume).
pub fn print_pool(pool: &PoolStatus, all: bool) {
    let attached = pool
        .volumes
        .iter()
        .filter(|v| !v.attachments.is_empty())
        .count();
    let drifting = pool.volumes.iter().filter(|v| v.drift).count();
    let availability = match &pool.error {
        Some(e) => format!(" [unavailable: {e}]"),
        None => String::new(),
    };
    println!(
        "pool {} ({}){availability}: {} volumes, {attached} attached, {drifting} drifting",
        pool.name,
        pool.location,
        pool.volumes.len()
    );
    for v in &pool.volumes {
        if !(all || v.drift || !v.attachments.is_empty() || v.note.is_some()) {
            continue;
        }
        let current = v.current.as_deref().unwrap_or("-");
        let desired = v.desired.as_deref().unwrap_or("-");
        let flag = if v.drift { "  DRIFT" } else { "" };
        let node = match v.active {
            Some(true) => format!("  node={}", v.path),
            Some(false) => "  inactive".into(),
            None => String::new(),
        };
        let note = v
            .note
            .as_deref()
            .map(|n| format!("  ({n})"))
            .unwrap_or_default();
        println!(
            "  {}  [{}]{node}  current={current}  desired={desired}{flag}{note}",
            v.volume, v.state
        );
    }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(Error::failed)?;
    println!("{text}");
    Ok(())
}

/// Prints volumes as the picker lists them: name, capacity, allocation, format, used by.
pub fn print_volumes(volumes: &[Volume]) {
    let size = |b: Option<u64>| b.map_or("-".to_string(), |b| b.to_string());
    println!(
        "{:<40} {:>14} {:>14} {:<6} used by",
        "name", "capacity", "allocation", "format"
    );
    for v in volumes {
        println!(
            "{:<40} {:>14} {:>14} {:<6} {}",
            v.name,
            size(v.capacity),
            size(v.allocation),
            v.format.as_deref().unwrap_or("-"),
            v.used_by.join(", ")
        );
    }
}

/// The progress line of a long scan: drawn on stderr when it is a terminal, once the
/// scan has taken a second (a short scan draws nothing), never with `--quiet` or
/// `--json`.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
}

impl Progress {
    /// A progress line, hidden if `quiet` or stderr is not a terminal.
    pub fn new(quiet: bool) -> Progress {
        let shown = !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
        let bar = shown.then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::hidden(),
            );
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .expect("a valid template"),
            );
            bar
        });
        Progress {
            bar,
            started: std::time::Instant::now(),
        }
    }

    /// `entries` of `pool` examined so far.
    pub fn update(&self, pool: &str, entries: u64) {
        let Some(bar) = &self.bar else {
            return;
        };
        if bar.is_hidden() && self.started.elapsed() >= std::time::Duration::from_secs(1) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
        }
        bar.set_message(format!("pool {pool}: {entries} entries"));
    }

    /// Clears the line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Prints what `verify` found: one line per finding, then what was checked.
pub fn print_verification(v: &crate::ops::verify::Verification) {
    for f in &v.findings {
        println!("{}", crate::escape_controls(&f.message));
    }
    for u in &v.unchecked {
        println!("not verified: {}", crate::escape_controls(u));
    }
    println!(
        "verified {} volume(s) with {} distinct label(s) against {} guest(s) ({}): \
         {} finding(s); {} held volume(s) open to every guest by their shared or ro holds",
        v.volumes,
        v.labels,
        v.guests,
        v.policy,
        v.findings.len(),
        v.open_to_all
    );
}

/// Prints a path check for people: one line per component, then the verdict.
pub fn print_check(check: &PathCheck) {
    println!(
        "emulator {} as {} (SELinux: {})",
        check.emulator, check.process_label, check.selinux
    );
    for s in &check.steps {
        let list = |ok: &[String], no: &[String]| {
            let mut parts: Vec<String> = ok.iter().map(|p| format!("+{p}")).collect();
            parts.extend(no.iter().map(|p| format!("-{p}")));
            parts.join(" ")
        };
        println!(
            "  {:<50} {:<7} {:<45} dac[{}] selinux[{}]",
            s.path,
            s.kind,
            s.label.as_deref().unwrap_or("-"),
            list(&s.dac_allowed, &s.dac_denied),
            list(&s.selinux_allowed, &s.selinux_denied)
        );
    }
    match (&check.blocked_at, &check.reason) {
        (Some(at), Some(why)) => {
            println!("blocked at {at}: {why}");
            if let Some(fix) = &check.fix {
                println!("fix: {fix}");
            }
        }
        _ => println!("reachable"),
    }
}

/// Prints `cluster status`: a line for the cluster, then one per host.
pub fn print_cluster(status: &crate::cluster::admin::ClusterStatus) {
    println!(
        "cluster: {} host(s), {} guest(s), {} pair(s) in use (etcd {}, revision {}; this host: {})",
        status.hosts.len(),
        status.guests,
        status.pairs_in_use,
        status.endpoints.join(", "),
        status.revision,
        status.this_host
    );
    println!(
        "{:<24} {:<6} {:<12} {:>11} {:>8}",
        "HOST", "ALIVE", "AGENT", "ATTACHMENTS", "BACKING"
    );
    for h in &status.hosts {
        let agent = h
            .agent
            .as_ref()
            .map_or("-".to_string(), |a| format!("pid {}", a.pid));
        let note = if !h.alive && h.attachments + h.backing > 0 {
            format!(
                "  holds without a live agent: once fenced, `svirt-pool cluster evict {}`",
                h.host
            )
        } else {
            String::new()
        };
        println!(
            "{:<24} {:<6} {:<12} {:>11} {:>8}{note}",
            h.host,
            if h.alive { "yes" } else { "no" },
            agent,
            h.attachments,
            h.backing
        );
    }
}
