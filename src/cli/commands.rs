//! The CLI subcommands: run the operation, print its result for people or as JSON.

use std::os::fd::OwnedFd;
use std::path::Path;

use super::show;
use crate::api::client::{SvirtPoolProxy, through_agent};
use crate::cli::{ClusterCommand, Command, GuestCommand, LibvirtCommand, VolumeCommand};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::model::{Guest, Labeled};
use crate::ops::{self, Caller, files, guests, lifecycle, listing, report, volumes};

/// A volume argument as the agent must see it: paths made absolute from our working
/// directory (the agent's is elsewhere); `VG/LV` names kept as they are.
fn volume_for_agent(settings: &Settings, volume: &Path) -> Result<String> {
    let is_lv = matches!(
        settings.locate(volume),
        Some(crate::config::Located::Lv { .. })
    );
    if volume.is_absolute() || is_lv {
        return Ok(ops::locate::volume_address(volume));
    }
    let cwd = std::env::current_dir().map_err(|e| Error::failed(format!("cwd: {e}")))?;
    Ok(ops::locate::volume_address(&cwd.join(volume)))
}

/// A guest as `guest show` prints it: its fields and what it holds, in one object.
#[derive(serde::Serialize)]
struct GuestShown {
    #[serde(flatten)]
    guest: Guest,
    attachments: Vec<crate::model::Attachment>,
}

/// Attach through the agent when one runs, else here.
fn attach(
    s: &Settings,
    guest: &str,
    volume: &Path,
    mode: crate::decide::labels::Mode,
) -> Result<Labeled> {
    let v = volume_for_agent(s, volume)?;
    through_agent(&s.api.socket, async |c| {
        Ok(c.attach(guest, &v, mode.as_str()).await?.map(|r| r.result))
    })
    .unwrap_or_else(|| volumes::attach(s, Caller::current(), guest, volume, mode))
}

/// Detach through the agent when one runs, else here.
fn detach(s: &Settings, guest: &str, volume: &Path) -> Result<Labeled> {
    let v = volume_for_agent(s, volume)?;
    through_agent(&s.api.socket, async |c| {
        Ok(c.detach(guest, &v).await?.map(|r| r.result))
    })
    .unwrap_or_else(|| volumes::detach(s, Caller::current(), guest, volume))
}

/// Opens `file` with the caller's own rights and imports it through the agent (the fd is
/// passed), or here when no agent runs.
fn import(s: &Settings, file: &Path, pool: &str, name: Option<&str>) -> Result<Labeled> {
    let name = match name {
        Some(n) => n.to_owned(),
        None => file
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Usage(format!("{}: give the volume a --name", file.display())))?
            .to_owned(),
    };
    let open = || -> Result<OwnedFd> {
        std::fs::File::open(file)
            .map(OwnedFd::from)
            .map_err(|e| Error::refused(format!("cannot open {}: {e}", file.display())))
    };
    let fd = open()?;
    through_agent(&s.api.socket, async |c| {
        Ok(c.import(pool, &name, vec![fd]).await?.map(|r| r.result))
    })
    .unwrap_or_else(|| files::import(s, Caller::current(), pool, &name, open()?))
}

/// Runs a libvirt hook call: reads the domain XML from stdin (bounded), does the work
/// through the agent when one answers, else here; gives up after the deadline.
fn libvirt_hook(s: &Settings, op: &str, subop: &str) -> Result<String> {
    use crate::libvirt::{domain, hook};
    if hook::action(op, subop, s.cluster.is_some()) == hook::Action::Nothing {
        return Ok(format!("{op} {subop}: nothing to do"));
    }
    let mut xml = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(std::io::stdin(), domain::MAX_XML_BYTES as u64 + 1),
        &mut xml,
    )
    .map_err(|e| Error::Usage(format!("reading the domain XML on stdin: {e}")))?;
    let (s, op, subop) = (s.clone(), op.to_owned(), subop.to_owned());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = through_agent(&s.api.socket, async |c| {
            Ok(c.libvirt_hook(&op, &subop, &xml).await?.map(|r| r.summary))
        })
        .unwrap_or_else(|| hook::run(&Default::default(), &s, &op, &subop, &xml));
        let _ = tx.send(result);
    });
    rx.recv_timeout(hook::DEADLINE).unwrap_or_else(|_| {
        Err(Error::failed(format!(
            "gave up after {} s (state lock or agent busy): the domain must not start",
            hook::DEADLINE.as_secs()
        )))
    })
}

/// How results are printed: `--json`, `--quiet`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Output {
    /// Print the result as JSON.
    pub json: bool,
    /// No progress line.
    pub quiet: bool,
}

impl Output {
    /// Prints `value` as JSON with `--json`, else the line `text`.
    fn say(self, value: serde_json::Value, text: impl FnOnce() -> String) -> Result<()> {
        if self.json {
            return show::print_json(&value);
        }
        println!("{}", text());
        Ok(())
    }
}

/// Runs one subcommand with validated settings.
pub fn run(command: Command, out: Output, settings: Settings) -> Result<()> {
    let s = &settings;
    let json = out.json;
    match command {
        Command::Agent => crate::agent::run(settings),
        Command::Scan => {
            let progress = show::Progress::new(out.quiet || json);
            let r = report::scan_with(s, &|pool, entries| progress.update(pool, entries))?;
            progress.finish();
            if json {
                show::print_json(&r)?;
            } else {
                for (name, summary) in &r.pools {
                    println!("pool {name}: {summary}");
                }
                println!("total: {}", r.total);
            }
            match r.errors.is_empty() {
                true => Ok(()),
                false => Err(Error::failed(r.errors.join("\n"))),
            }
        }
        Command::Cluster(ClusterCommand::Status) => {
            let status = crate::ops::cluster::status(s)?;
            if json {
                return show::print_json(&status);
            }
            super::show::print_cluster(&status);
            Ok(())
        }
        Command::Cluster(ClusterCommand::Evict { host }) => {
            let e = crate::ops::cluster::evict(s, &host)?;
            let value = serde_json::json!({
                "host": e.host, "holds": e.holds, "relabeled": e.relabeled,
            });
            out.say(value, || {
                format!(
                    "evicted host {}: {} hold(s) removed, {} shared file(s) relabeled",
                    e.host,
                    e.holds,
                    e.relabeled.len()
                )
            })
        }
        Command::Cluster(ClusterCommand::Import) => {
            let i = crate::ops::cluster::import(s)?;
            let value = serde_json::json!({ "guests": i.guests, "holds": i.holds });
            out.say(value, || {
                format!(
                    "imported {} guest(s) and {} hold(s) of shared pools into the cluster",
                    i.guests, i.holds
                )
            })
        }
        Command::Status { all } => {
            let pools = report::status(s)?;
            if json {
                return show::print_json(&serde_json::json!({ "pools": pools }));
            }
            pools.iter().for_each(|p| super::show::print_pool(p, all));
            Ok(())
        }
        Command::Verify { pool } => {
            let running: Vec<ops::verify::Running> =
                crate::libvirt::hook::running(&s.libvirt_status_dir)
                    .into_iter()
                    .map(|d| ops::verify::Running {
                        label: d.seclabel.and_then(|l| l.label),
                        uuid: d.uuid,
                        name: d.name,
                    })
                    .collect();
            let v = ops::verify::verify(s, pool.as_deref(), &running)?;
            if json {
                show::print_json(&v)?;
            } else {
                show::print_verification(&v);
            }
            match v.findings.len() {
                0 => Ok(()),
                n => Err(Error::refused(format!("verify: {n} finding(s)"))),
            }
        }
        Command::Guest(GuestCommand::Define { uuid, name }) => {
            let g = through_agent(&s.api.socket, async |c| {
                Ok(c.define_guest(&uuid, name.as_deref())
                    .await?
                    .map(|r| r.guest))
            })
            .unwrap_or_else(|| guests::define(s, Caller::current(), &uuid, name.as_deref()))?;
            show::print_json(&g)
        }
        Command::Guest(GuestCommand::Show { uuid }) => {
            let (guest, attachments) = guests::show(s, &uuid)?;
            show::print_json(&GuestShown { guest, attachments })
        }
        Command::Guest(GuestCommand::List) => show::print_json(&guests::list(s)?),
        Command::Guest(GuestCommand::Undefine { uuid, force }) => {
            let released = through_agent(&s.api.socket, async |c| {
                Ok(c.undefine_guest(&uuid, Some(force))
                    .await?
                    .map(|r| usize::try_from(r.released).unwrap_or(usize::MAX)))
            })
            .unwrap_or_else(|| guests::undefine(s, &uuid, force))?;
            let uuid = ops::parse_uuid(&uuid)?;
            let value = serde_json::json!({ "guest": uuid, "released": released });
            out.say(value, || {
                format!("undefined guest {uuid}; released {released} volume(s)")
            })
        }
        Command::Attach {
            guest,
            volume,
            mode,
        } => {
            let mode = mode.into();
            let r = attach(s, &guest, &volume, mode)?;
            let uuid = ops::parse_uuid(&guest)?;
            let value = serde_json::json!({ "guest": uuid, "mode": mode.as_str(), "result": r });
            out.say(value, || {
                let what = r.label.clone().or(r.note.clone()).unwrap_or_default();
                format!("attached {} to guest {uuid} ({mode}): {what}", r.volume)
            })
        }
        Command::Detach { guest, volume } => {
            let r = detach(s, &guest, &volume)?;
            let uuid = ops::parse_uuid(&guest)?;
            let value = serde_json::json!({ "guest": uuid, "result": r });
            out.say(value, || {
                let what = r.label.clone().or(r.note.clone()).unwrap_or_default();
                format!("detached {} from guest {uuid}: {what}", r.volume)
            })
        }
        Command::Release { guest } => {
            let released = through_agent(&s.api.socket, async |c| {
                Ok(c.release(&guest)
                    .await?
                    .map(|r| usize::try_from(r.released).unwrap_or(usize::MAX)))
            })
            .unwrap_or_else(|| volumes::release(s, Caller::current(), &guest))?;
            let uuid = ops::parse_uuid(&guest)?;
            let value = serde_json::json!({ "guest": uuid, "released": released });
            out.say(value, || {
                format!("released {released} volume(s) of guest {uuid}")
            })
        }
        Command::Import { file, pool, name } => {
            let r = import(s, &file, &pool, name.as_deref())?;
            let value = serde_json::json!({ "pool": pool, "result": r });
            out.say(value, || {
                let label = r.label.clone().unwrap_or_default();
                format!("imported {} into pool {pool}: {label}", r.volume)
            })
        }
        Command::CheckPath { path, guest } => {
            let cwd = std::env::current_dir().map_err(Error::failed)?;
            let check =
                ops::check_path::check(s, Caller::current(), &cwd.join(&path), guest.as_deref())?;
            if json {
                show::print_json(&check)?;
            } else {
                show::print_check(&check);
            }
            match check.reachable {
                true => Ok(()),
                false => Err(Error::refused(format!(
                    "{}: blocked at {}",
                    check.path,
                    check.blocked_at.unwrap_or_default()
                ))),
            }
        }
        Command::Volume(VolumeCommand::List {
            pool,
            after,
            limit,
            prefix,
            format,
            state,
        }) => {
            let filter = listing::Filter::new(prefix, format, state)
                .map_err(|e| Error::Usage(format!("--{e}")))?;
            let page = listing::page(
                s,
                Caller::current(),
                &pool,
                after.as_deref(),
                limit.max(1),
                &filter,
            )?;
            if json {
                return show::print_json(
                    &serde_json::json!({ "volumes": page.volumes, "next": page.next }),
                );
            }
            show::print_volumes(&page.volumes);
            if let Some(next) = page.next {
                println!("(more: --after {next})");
            }
            Ok(())
        }
        Command::Volume(VolumeCommand::Create {
            pool,
            name,
            format,
            capacity,
            backing,
        }) => {
            let r = through_agent(&s.api.socket, async |c| {
                Ok(
                    c.create_volume(&pool, &name, &format, capacity, backing.as_deref())
                        .await?
                        .map(|r| r.result),
                )
            })
            .unwrap_or_else(|| {
                let format = lifecycle::creatable_format(&format).ok_or_else(|| {
                    Error::Usage(format!("format {format:?}: {}", lifecycle::ONLY_CREATABLE))
                })?;
                let new = lifecycle::NewVolume {
                    name: &name,
                    format,
                    capacity,
                    backing: backing.as_deref(),
                };
                lifecycle::create(s, Caller::current(), &pool, &new)
            })?;
            let value = serde_json::json!({ "pool": pool, "result": r });
            out.say(value, || {
                let label = r.label.clone().unwrap_or_default();
                format!("created {} in pool {pool}: {label}", r.volume)
            })
        }
        Command::Volume(VolumeCommand::Delete { pool, name }) => {
            through_agent(&s.api.socket, async |c| c.delete_volume(&pool, &name).await)
                .unwrap_or_else(|| lifecycle::delete(s, Caller::current(), &pool, &name))?;
            let value = serde_json::json!({ "pool": pool, "deleted": name });
            out.say(value, || format!("deleted {name} from pool {pool}"))
        }
        Command::UdevHook => unreachable!("the udev hook runs without full settings"),
        Command::LibvirtHook {
            name: _,
            op,
            subop,
            extra: _,
        } => {
            let summary = libvirt_hook(s, &op, &subop)?;
            tracing::info!(%summary, "libvirt hook");
            Ok(())
        }
        Command::Libvirt(LibvirtCommand::Adopt { name, apply, xml }) => {
            use crate::libvirt::adopt;
            let a = adopt::adopt(s, &name, apply)?;
            if json {
                let value = serde_json::json!({
                    "domain": name, "changed": a.after != a.before, "applied": a.applied,
                    "before": a.before, "after": a.after,
                });
                return show::print_json(&value);
            }
            if xml {
                print!("{}", a.after);
            } else if a.after == a.before {
                println!("domain {name} is adopted already: nothing to change");
            } else {
                print!("{}", adopt::diff(s, &a.before, &a.after)?);
                match a.applied {
                    true => println!("defined the adopted domain {name} in libvirt"),
                    false => println!("(not applied: run again with --apply to define it)"),
                }
            }
            Ok(())
        }
        Command::Guest(GuestCommand::Seclabel { uuid }) => {
            let (g, _) = guests::show(s, &uuid)?;
            let process: crate::decide::context::Context =
                g.process_label.parse().map_err(Error::failed)?;
            let snippet = crate::libvirt::seclabel::snippet(&process);
            if json {
                return show::print_json(&serde_json::json!({ "seclabel": snippet }));
            }
            print!("{snippet}");
            Ok(())
        }
    }
}
