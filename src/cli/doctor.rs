//! `smsgate doctor`: checks the host, the modems and the daemon, one line
//! per check (`ok`, `warn`, `fail`) with a hint for what to do.
//!
//! Everything is read-only except the AT probe, which asks a port that no
//! process holds a few harmless questions (`AT`, `+CPIN?`, `+CREG?`,
//! `+CSCA?`, `+CPMS?`) with short timeouts. A port another process holds
//! (the daemon, ModemManager) is never opened: two programs talking AT on
//! one port garble each other's answers.

use std::ffi::CString;
use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Duration;

use clap::Args;

use nix::unistd::{getgrouplist, AccessFlags, Gid, Group, Uid, User};
use serde_json::Value;

use super::client::{printable, Client, ClientError, SocketArg};
use crate::at::commands::{PinQuery, Raw, RegistrationQuery, SmscQuery, StorageQuery};
use crate::at::urc::{PinState, RegKind, RegStatus};
use crate::at::{Link, LinkConfig};
use crate::modem::timed::Timed;

/// How long each AT question may take: a live modem answers in
/// milliseconds; a dead port should not hold the doctor up.
const AT_TIMEOUT: Duration = Duration::from_secs(2);

/// Arguments of `smsgate doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// `--socket PATH` (or `SMSGATE_SOCKET`): where the daemon listens.
    #[command(flatten)]
    pub socket: SocketArg,
    /// Check these ports [default: the links in --discovery-dir, /dev/ttyUSB*, /dev/ttyACM*, and the daemon's modems].
    #[arg(long = "port", value_name = "DEV")]
    pub ports: Vec<PathBuf>,
    /// Where udev puts the modems' stable links.
    #[arg(long, value_name = "DIR", default_value = "/dev/smsgate")]
    pub discovery_dir: PathBuf,
    /// Skip the AT probe of free ports.
    #[arg(long)]
    pub no_probe: bool,
    /// One JSON object per check (`level`, `name`, `detail`, `hint`), then
    /// a summary object, for scripts and monitoring.
    #[arg(long)]
    pub json: bool,
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Fine.
    Ok,
    /// Works, but worth a look.
    Warn,
    /// Broken: smsgate cannot work like this.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Verdict.
    pub level: Level,
    /// What was checked (`port /dev/ttyUSB2`, `group dialout`, ...).
    pub name: String,
    /// What was found.
    pub detail: String,
    /// What to do about it (warn/fail).
    pub hint: Option<String>,
}

impl Check {
    fn new(level: Level, name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            level,
            name: name.into(),
            detail: detail.into(),
            hint: None,
        }
    }
    fn hint(mut self, hint: impl Into<String>) -> Check {
        self.hint = Some(hint.into());
        self
    }
    /// The check as one JSON object (`--json`).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "level": match self.level {
                Level::Ok => "ok",
                Level::Warn => "warn",
                Level::Fail => "fail",
            },
            "name": self.name,
            "detail": self.detail,
            "hint": self.hint,
        })
    }

    /// The line(s) printed for this check. Name, detail and hint may
    /// quote a modem or the daemon, so control characters are escaped.
    pub fn render(&self) -> String {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let mut s = format!(
            "{tag}  {}: {}",
            printable(&self.name),
            printable(&self.detail)
        );
        if let Some(h) = &self.hint {
            s.push_str(&format!("\n      hint: {}", printable(h)));
        }
        s
    }
}

/// Runs `smsgate doctor`: exit 0 unless a check failed.
pub fn run(args: DoctorArgs) -> ExitCode {
    let json = args.json;
    let checks = doctor(&args, &mut |c| {
        if json {
            println!("{}", c.to_json());
        } else {
            println!("{}", c.render());
        }
    });
    let fails = checks.iter().filter(|c| c.level == Level::Fail).count();
    let warns = checks.iter().filter(|c| c.level == Level::Warn).count();
    let oks = checks.len() - fails - warns;
    if json {
        println!(
            "{}",
            serde_json::json!({"summary": {"checks": checks.len(), "ok": oks, "warn": warns, "fail": fails}})
        );
    } else {
        println!(
            "{} checks: {oks} ok, {warns} warn, {fails} fail",
            checks.len()
        );
    }
    ExitCode::from(if fails > 0 { 1 } else { 0 })
}

/// Runs every check, handing each to `show` as soon as it is known.
pub fn doctor(args: &DoctorArgs, show: &mut dyn FnMut(&Check)) -> Vec<Check> {
    let mut all = Vec::new();
    let mut push = |c: Check, all: &mut Vec<Check>| {
        show(&c);
        all.push(c);
    };
    for c in user_checks() {
        push(c, &mut all);
    }
    for c in modem_manager() {
        push(c, &mut all);
    }
    // The daemon first: its modems tell which ports are its own.
    let (daemon_checks, daemon_ports) = daemon(&args.socket.socket);
    for c in daemon_checks {
        push(c, &mut all);
    }
    let mut ports = if args.ports.is_empty() {
        candidate_ports(&args.discovery_dir)
    } else {
        args.ports.clone()
    };
    ports.sort();
    ports.dedup();
    // The daemon's own ports were reported through it (above): opening
    // them would garble its AT conversation, and their holder is known.
    let theirs: Vec<PathBuf> = daemon_ports.iter().map(|p| resolve(p)).collect();
    let mut skipped = 0;
    ports.retain(|p| {
        let mine = !theirs.contains(&resolve(p));
        skipped += usize::from(!mine);
        mine
    });
    if !args.ports.is_empty() && skipped > 0 {
        push(
            Check::new(
                Level::Ok,
                "ports",
                format!("{skipped} of the named ports are the daemon's: reported by it above"),
            ),
            &mut all,
        );
    }
    let service = service_user();
    if ports.is_empty() && daemon_ports.is_empty() {
        push(
            Check::new(Level::Warn, "ports", "no modem port found").hint(format!(
                "plug a modem in; udev links appear in {}; or name one with --port",
                args.discovery_dir.display()
            )),
            &mut all,
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    for port in ports {
        for c in port_checks(
            &port,
            args.no_probe,
            runtime.as_ref().ok(),
            service.as_ref(),
        ) {
            push(c, &mut all);
        }
    }
    all
}

/// The current user and the groups that open serial ports and the socket.
fn user_checks() -> Vec<Check> {
    let uid = Uid::current();
    let name = User::from_uid(uid)
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    if uid.is_root() {
        return vec![Check::new(
            Level::Ok,
            "user",
            format!("{name} (root: no group needed)"),
        )];
    }
    let mine: Vec<Gid> = nix::unistd::getgroups().unwrap_or_default();
    let mut out = vec![Check::new(Level::Ok, "user", name.clone())];
    for (group, why) in [
        ("dialout", "open the modems' serial ports"),
        ("smsgate", "use the daemon's socket"),
    ] {
        out.push(match Group::from_name(group) {
            Ok(Some(g)) if mine.contains(&g.gid) || Gid::current() == g.gid => Check::new(
                Level::Ok,
                format!("group {group}"),
                format!("{name} is a member"),
            ),
            Ok(Some(_)) => Check::new(
                Level::Warn,
                format!("group {group}"),
                format!("{name} is not a member: cannot {why}"),
            )
            .hint(format!(
                "sudo usermod -aG {group} {name}, then log in again"
            )),
            _ => Check::new(
                Level::Ok,
                format!("group {group}"),
                "does not exist on this host",
            ),
        });
    }
    out
}

/// Process ids whose command name is `comm`.
fn processes_named(comm: &str) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| process_name(*pid).as_deref() == Some(comm))
        .collect()
}

fn process_name(pid: u32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Whether ModemManager runs (it probes every new serial port with AT
/// commands and keeps them open, fighting any other program).
fn modem_manager() -> Vec<Check> {
    let systemd = Command::new("systemctl")
        .args(["is-active", "ModemManager"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let pids = processes_named("ModemManager");
    let active = systemd.as_deref() == Some("active") || !pids.is_empty();
    if active {
        vec![Check::new(
            Level::Warn,
            "ModemManager",
            format!("running (pid {pids:?})"),
        )
        .hint(
            "install smsgate's udev rules (ID_MM_DEVICE_IGNORE) so it leaves the modems alone, \
             or `systemctl disable --now ModemManager`",
        )]
    } else {
        vec![Check::new(Level::Ok, "ModemManager", "not running")]
    }
}

/// The links in the discovery directory, then USB serial ports.
fn candidate_ports(dir: &Path) -> Vec<PathBuf> {
    // The daemon's own notion of a modem entry (a tty, not the sockets
    // or dangling links beside it).
    let mut out: Vec<PathBuf> = crate::daemon::discovery::scan(dir)
        .map(|found| found.into_iter().collect())
        .unwrap_or_default();
    if let Ok(d) = fs::read_dir("/dev") {
        out.extend(d.flatten().map(|e| e.path()).filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ttyUSB") || n.starts_with("ttyACM"))
        }));
    }
    out
}

/// Processes (pid, name) holding `real` (a resolved device path) open.
fn holders(real: &Path) -> Vec<(u32, String)> {
    let me = std::process::id();
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for pid in dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
    {
        if pid == me {
            continue;
        }
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        if fds
            .flatten()
            .any(|fd| fs::read_link(fd.path()).is_ok_and(|t| t == real))
            && !is_simulator(pid)
        {
            out.push((pid, process_name(pid).unwrap_or_else(|| "?".into())));
        }
    }
    out
}

/// Whether `pid` is `smsgate sim`: it keeps the slave side of its ptys
/// open, and is the modem rather than a competitor for it.
fn is_simulator(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let mut args = c.split(|b| *b == 0);
        let prog = args.next().unwrap_or_default();
        prog.ends_with(b"smsgate") && args.next() == Some(b"sim".as_slice())
    })
}

/// The name of a file's group (its number when it has none).
fn group_of(meta: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    Group::from_gid(Gid::from_raw(meta.gid()))
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| meta.gid().to_string())
}

/// A port path with its links resolved, for comparing ports.
fn resolve(p: &Path) -> PathBuf {
    fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The user the packaged daemon runs as (`smsgate`), when it exists.
fn service_user() -> Option<User> {
    User::from_name("smsgate").ok().flatten()
}

/// Whether `uid` with `groups` may read and write a file with `meta`, by
/// its mode bits (owner, else group, else other), as the kernel decides
/// for a non-root process.
fn may_read_write(meta: &fs::Metadata, uid: Uid, groups: &[Gid]) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode();
    let bits = if meta.uid() == uid.as_raw() {
        mode >> 6
    } else if groups.iter().any(|g| g.as_raw() == meta.gid()) {
        mode >> 3
    } else {
        mode
    };
    bits & 0o6 == 0o6
}

/// UUCP-style lock files (`/var/lock/LCK..ttyUSB2`) that minicom, gammu
/// and others leave: the pid inside, and whether it still runs.
fn lock_file(real: &Path) -> Option<Check> {
    let base = real.file_name()?.to_str()?;
    for dir in ["/var/lock", "/run/lock"] {
        let path = Path::new(dir).join(format!("LCK..{base}"));
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        let pid: Option<u32> = text.trim().parse().ok();
        let name = format!("lock {}", path.display());
        return Some(match pid.and_then(|p| process_name(p).map(|n| (p, n))) {
            Some((p, n)) => Check::new(Level::Warn, name, format!("held by {n} (pid {p})"))
                .hint("that program uses the modem; stop it before smsgate can"),
            None => Check::new(Level::Warn, name, "stale (its process is gone)")
                .hint(format!("sudo rm {}", path.display())),
        });
    }
    None
}

/// Node, permissions, holders, lock file and AT answers of one port.
fn port_checks(
    port: &Path,
    no_probe: bool,
    rt: Option<&tokio::runtime::Runtime>,
    service: Option<&User>,
) -> Vec<Check> {
    let name = format!("port {}", port.display());
    let meta = match fs::metadata(port) {
        Ok(m) => m,
        Err(e) => {
            return vec![Check::new(Level::Fail, name, format!("cannot stat: {e}"))
                .hint("is the modem plugged in? (`lsusb`, `dmesg | tail`)")]
        }
    };
    if !meta.file_type().is_char_device() {
        return vec![Check::new(Level::Fail, name, "not a character device")
            .hint("point --port or [[modem]] port at the modem's tty")];
    }
    let real = fs::canonicalize(port).unwrap_or_else(|_| port.to_path_buf());
    let mut out = Vec::new();
    // Root may open anything; what matters is whether the service user,
    // which the daemon runs as, may.
    if let Some(user) = service.filter(|_| Uid::current().is_root()) {
        use std::os::unix::fs::MetadataExt;
        let groups = CString::new(user.name.clone())
            .ok()
            .and_then(|n| getgrouplist(&n, user.gid).ok())
            .unwrap_or_default();
        if !may_read_write(&meta, user.uid, &groups) {
            let group = group_of(&meta);
            out.push(
                Check::new(
                    Level::Fail,
                    name,
                    format!(
                        "the service user {} has no read/write access (group {group}, mode {:o})",
                        user.name,
                        meta.mode() & 0o777
                    ),
                )
                .hint(format!(
                    "sudo usermod -aG {group} {}, or install smsgate's udev rules",
                    user.name
                )),
            );
            return out;
        }
    }
    if let Err(e) = nix::unistd::access(port, AccessFlags::R_OK | AccessFlags::W_OK) {
        use std::os::unix::fs::MetadataExt;
        let group = group_of(&meta);
        out.push(
            Check::new(
                Level::Fail,
                name.clone(),
                format!(
                    "no read/write access ({e}; group {group}, mode {:o})",
                    meta.mode() & 0o777
                ),
            )
            .hint(format!(
                "add your user to group {group}, or run as the smsgate service user"
            )),
        );
        return out;
    }
    let who = match service.filter(|_| Uid::current().is_root()) {
        Some(u) => format!(" by the service user {}", u.name),
        None => String::new(),
    };
    out.push(Check::new(
        Level::Ok,
        name.clone(),
        format!("{} is read/writable{who}", real.display()),
    ));
    let held = holders(&real);
    for (pid, comm) in &held {
        out.push(if comm == "ModemManager" {
            Check::new(Level::Fail, name.clone(), format!("held by ModemManager (pid {pid})"))
                .hint("ModemManager must ignore smsgate's modems: install the udev rules (ID_MM_DEVICE_IGNORE)")
        } else if comm.starts_with("smsgate") {
            Check::new(Level::Ok, name.clone(), format!("in use by {comm} (pid {pid}); not probed"))
        } else {
            Check::new(Level::Warn, name.clone(), format!("held by {comm} (pid {pid})"))
                .hint("another program uses this port; stop it")
        });
    }
    out.extend(lock_file(&real));
    if no_probe || !held.is_empty() {
        return out;
    }
    match rt {
        Some(rt) => out.extend(rt.block_on(probe(port, &name))),
        None => out.push(Check::new(Level::Warn, name, "no runtime for the AT probe")),
    }
    out
}

/// Asks the modem a few questions (27.007 §8.3 `+CPIN?`, §7.2 `+CREG?`,
/// 27.005 §3.3.1 `+CSCA?`, §3.2.2 `+CPMS?`).
async fn probe(port: &Path, name: &str) -> Vec<Check> {
    let builder = tokio_serial::new(port.to_string_lossy(), 115_200);
    let serial = match tokio_serial::SerialPortBuilderExt::open_native_async(builder) {
        Ok(p) => p,
        Err(e) => {
            return vec![Check::new(Level::Fail, name, format!("cannot open: {e}"))
                .hint("check permissions and that no other program holds it")]
        }
    };
    let link = Link::spawn(
        serial,
        LinkConfig::new(format!("doctor:{}", port.display())),
    );
    let mut out = Vec::new();
    if let Err(e) = link
        .send(&Raw {
            text: "AT".into(),
            timeout: AT_TIMEOUT,
        })
        .await
    {
        out.push(
            Check::new(Level::Fail, format!("{name} AT"), format!("no answer: {e}")).hint(
                "is this the modem's AT interface? Many modems have several ttys; try the others",
            ),
        );
        return out;
    }
    out.push(Check::new(Level::Ok, format!("{name} AT"), "answers OK"));
    out.push(match link.send(&Timed(PinQuery, AT_TIMEOUT)).await {
        Ok(PinState::Ready) => Check::new(Level::Ok, format!("{name} PIN"), "READY"),
        Ok(PinState::SimPin) => Check::new(Level::Warn, format!("{name} PIN"), "SIM PIN required")
            .hint("set [[modem]] pin or [modems] pins.\"<ICCID>\" in the config"),
        Ok(PinState::SimPuk) => Check::new(
            Level::Fail,
            format!("{name} PIN"),
            "SIM PUK required: the PIN was entered wrong too often",
        )
        .hint("unlock the SIM with its PUK in a phone"),
        Ok(other) => Check::new(Level::Fail, format!("{name} PIN"), format!("{other:?}")),
        Err(e) => {
            Check::new(Level::Fail, format!("{name} PIN"), e.to_string()).hint("is a SIM inserted?")
        }
    });
    out.push(
        match link
            .send(&Timed(RegistrationQuery(RegKind::Cs), AT_TIMEOUT))
            .await
        {
            Ok((_, r)) => match r.stat {
                RegStatus::Home | RegStatus::Roaming => Check::new(
                    Level::Ok,
                    format!("{name} registration"),
                    format!("{:?}", r.stat).to_lowercase(),
                ),
                RegStatus::Denied => Check::new(
                    Level::Fail,
                    format!("{name} registration"),
                    "denied by the network",
                )
                .hint("is the SIM active and allowed on this network?"),
                other => Check::new(
                    Level::Warn,
                    format!("{name} registration"),
                    format!("{other:?}"),
                )
                .hint("check the antenna and coverage; registration may take a minute"),
            },
            Err(e) => Check::new(Level::Warn, format!("{name} registration"), e.to_string()),
        },
    );
    out.push(match link.send(&Timed(SmscQuery, AT_TIMEOUT)).await {
        Ok(s) => Check::new(Level::Ok, format!("{name} SMSC"), s.number),
        Err(e) => Check::new(Level::Warn, format!("{name} SMSC"), e.to_string())
            .hint("set [modems] smsc or [[modem]] smsc to your operator's SMS centre"),
    });
    out.push(match link.send(&Timed(StorageQuery, AT_TIMEOUT)).await {
        Ok(mems) => {
            let parts: Vec<String> = mems
                .iter()
                .flatten()
                .map(|u| format!("{} {}/{}", u.storage.name(), u.used, u.total))
                .collect();
            let full = mems.iter().flatten().any(|u| u.used >= u.total);
            if full {
                Check::new(Level::Warn, format!("{name} storage"), parts.join(", "))
                    .hint("storage full: new messages wait at the SMSC until smsgate reads and deletes them")
            } else {
                Check::new(Level::Ok, format!("{name} storage"), parts.join(", "))
            }
        }
        Err(e) => Check::new(Level::Warn, format!("{name} storage"), e.to_string()),
    });
    out
}

/// Whether the daemon answers, and what it says about its modems; also
/// returns the ports it uses.
fn daemon(socket: &Path) -> (Vec<Check>, Vec<PathBuf>) {
    let name = format!("daemon {}", socket.display());
    let mut client = match Client::connect(socket) {
        Ok(c) => c,
        Err(e) => {
            let hint = match &e {
                ClientError::NotAllowed { .. } => {
                    "join the socket's group (smsgate) or ask for [bus] allow_users"
                }
                _ => "start it: `systemctl start smsgate` (or `smsgate run --config FILE`)",
            };
            return (
                vec![Check::new(Level::Fail, name, e.to_string()).hint(hint)],
                Vec::new(),
            );
        }
    };
    let server = client.hello()["server"].as_str().unwrap_or("?").to_string();
    let mut out = vec![Check::new(
        Level::Ok,
        name.clone(),
        format!("reachable ({server})"),
    )];
    let modems = match super::modems::fetch(&mut client) {
        Ok(m) => m,
        Err(e) => {
            out.push(Check::new(
                Level::Fail,
                name,
                format!("`modems` failed: {e}"),
            ));
            return (out, Vec::new());
        }
    };
    if modems.is_empty() {
        out.push(
            Check::new(Level::Warn, "daemon modems", "none")
                .hint("no modem found: see the port checks below, [[modem]] in the config and [discovery] dir"),
        );
    }
    let mut ports = Vec::new();
    for m in &modems {
        if let Some(p) = m["port"].as_str() {
            ports.push(PathBuf::from(p));
        }
        out.push(modem_check(m));
    }
    (out, ports)
}

/// One modem as the daemon sees it: ready is ok; a SIM waiting for its
/// PIN or PUK, or a full message storage, is what an operator must act
/// on; any other state is still coming up or recovering.
pub fn modem_check(m: &Value) -> Check {
    let s = |k: &str| m[k].as_str().unwrap_or("-").to_string();
    let label = format!("modem {} ({})", s("name"), s("port"));
    let state = m["state"].as_str().unwrap_or("unknown");
    let detail = format!("{state} {}", describe(m));
    let detail = detail.trim_end().to_string();
    let full = storage(m).is_some_and(|(used, total)| total > 0 && used >= total);
    // The state's own detail (which PIN, which rung); the last error is
    // in `detail` already.
    let why = m["detail"]
        .as_str()
        .filter(|d| !d.is_empty() && *d != state);
    match state {
        "ready" if full => Check::new(Level::Warn, label, detail).hint(
            "message storage full: new messages wait at the SMSC until smsgate reads and deletes them",
        ),
        "ready" => Check::new(Level::Ok, label, detail),
        "sim-locked" => Check::new(Level::Fail, label, detail).hint(match why {
            Some(w) => format!(
                "{w}; set [[modem]] pin or [modems] pins.\"<ICCID>\" (a PUK needs a phone)"
            ),
            None => "set [[modem]] pin or [modems] pins.\"<ICCID>\" (a PUK needs a phone)".into(),
        }),
        _ => Check::new(Level::Warn, label, detail).hint(match why {
            Some(w) => format!("{w}; see `smsgate modems` and the daemon's log"),
            None => "still coming up, or see `smsgate modems` and the daemon's log".into(),
        }),
    }
}

/// `storage_used`/`storage_total` when the daemon's modem view has them.
fn storage(m: &Value) -> Option<(u64, u64)> {
    Some((m["storage_used"].as_u64()?, m["storage_total"].as_u64()?))
}

fn describe(m: &Value) -> String {
    let mut parts = Vec::new();
    for k in ["operator", "registration"] {
        if let Some(v) = m[k].as_str() {
            parts.push(v.to_string());
        }
    }
    if m["signal"].is_u64() {
        parts.push(format!("signal {}", super::modems::signal(m)));
    }
    if let Some((used, total)) = storage(m) {
        parts.push(format!("storage {used}/{total}"));
    }
    if let Some(e) = m["last_error"].as_str().filter(|e| !e.is_empty()) {
        parts.push(format!("last error: {e}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("({})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_missing_port_fails_with_a_hint() {
        let c = port_checks(Path::new("/nonexistent/ttyUSB9"), true, None, None);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].level, Level::Fail);
        assert!(c[0].render().contains("hint:"));
    }

    #[test]
    fn a_regular_file_is_not_a_port() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let c = port_checks(f.path(), true, None, None);
        assert_eq!(c[0].level, Level::Fail);
        assert!(c[0].detail.contains("character device"));
    }

    #[test]
    fn holders_find_our_own_open_files() {
        // /proc/self is skipped; a child holding a file is found.
        let f = tempfile::NamedTempFile::new().unwrap();
        let real = fs::canonicalize(f.path()).unwrap();
        let mut child = Command::new("sleep")
            .arg("5")
            .stdin(fs::File::open(&real).unwrap())
            .spawn()
            .unwrap();
        // The child may need a moment to exec; its fd 0 is set before.
        let found = holders(&real);
        child.kill().unwrap();
        let _ = child.wait();
        assert!(found.iter().any(|(p, _)| *p == child.id()), "{found:?}");
    }

    #[test]
    fn discovery_entries_are_ttys_only() {
        let d = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/dev/null", d.path().join("modem0")).unwrap();
        std::os::unix::fs::symlink("/nonexistent", d.path().join("gone")).unwrap();
        fs::write(d.path().join("sim.sock"), "").unwrap();
        let ports = candidate_ports(d.path());
        assert!(ports.contains(&d.path().join("modem0")));
        assert!(!ports
            .iter()
            .any(|p| p.starts_with(d.path()) && p != &d.path().join("modem0")));
    }

    #[test]
    fn modems_are_judged_from_the_daemons_view() {
        let ready = json!({"name":"left","port":"/dev/smsgate/a","state":"ready",
            "operator":"Test","registration":"home","signal":20});
        let c = modem_check(&ready);
        assert_eq!(c.level, Level::Ok);
        assert_eq!(c.name, "modem left (/dev/smsgate/a)");
        assert_eq!(c.detail, "ready (Test, home, signal 20 (-73 dBm))");
        // Storage fill, when the daemon reports it.
        let mut full = ready.clone();
        full["storage_used"] = 30.into();
        full["storage_total"] = 30.into();
        let c = modem_check(&full);
        assert_eq!(c.level, Level::Warn);
        assert!(c.detail.contains("storage 30/30"), "{}", c.detail);
        let locked = json!({"name":"x","port":"/dev/p","state":"sim-locked",
            "detail":"SIM PUK required","last_error":"+CME ERROR: 12"});
        let c = modem_check(&locked);
        assert_eq!(c.level, Level::Fail);
        assert!(c.detail.contains("+CME ERROR: 12"), "{}", c.detail);
        assert!(c.hint.as_deref().unwrap_or("").contains("SIM PUK"), "{c:?}");
        let coming = modem_check(&json!({"name":"y","state":"registering"}));
        assert_eq!(coming.level, Level::Warn);
        // A modem's odd operator name cannot drive the terminal.
        let mut odd = ready.clone();
        odd["operator"] = "\u{1b}[2J".into();
        assert!(modem_check(&odd).render().contains("\\x1b[2J"));
    }

    #[test]
    fn access_follows_owner_group_other_bits() {
        use std::os::unix::fs::PermissionsExt;
        let f = tempfile::NamedTempFile::new().unwrap();
        let meta = |mode| {
            fs::set_permissions(f.path(), fs::Permissions::from_mode(mode)).unwrap();
            fs::metadata(f.path()).unwrap()
        };
        let owner = Uid::current();
        let other = Uid::from_raw(owner.as_raw() + 12345);
        let gid = {
            use std::os::unix::fs::MetadataExt;
            Gid::from_raw(fs::metadata(f.path()).unwrap().gid())
        };
        assert!(may_read_write(&meta(0o600), owner, &[]));
        assert!(!may_read_write(&meta(0o600), other, &[gid]));
        assert!(may_read_write(&meta(0o660), other, &[gid]));
        assert!(!may_read_write(&meta(0o640), other, &[gid]));
        assert!(!may_read_write(&meta(0o660), other, &[]));
        assert!(may_read_write(&meta(0o666), other, &[]));
    }

    #[test]
    fn an_unreachable_daemon_fails() {
        let (c, ports) = daemon(Path::new("/nonexistent/smsgate.sock"));
        assert_eq!(c[0].level, Level::Fail);
        assert!(c[0].detail.contains("/nonexistent/smsgate.sock"));
        assert!(ports.is_empty());
    }
}
