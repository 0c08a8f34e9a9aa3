//! The client commands (`send`, `inbox`, `status`, `modems`, `doctor`,
//! `demo`) as the real binary, against the real daemon (`smsgate run`)
//! driving `smsgate sim` modems on pseudo-terminals, through the real
//! socket. Waits are bounded polls of observable state.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use common::daemon::{Gate, Sim, BIN, WAIT};

/// `smsgate sim` (2 modems) and, unless `sim_only`, `smsgate run`
/// discovering them (the shared harness in `tests/common/daemon.rs`).
struct Gateway {
    sim: Sim,
    gate: Gate,
}

impl Gateway {
    /// Just the simulator (the socket path leads nowhere).
    fn sim_only() -> Gateway {
        Gateway {
            sim: Sim::start(2, &["--report-delay", "200ms"]),
            gate: Gate::new(),
        }
    }

    /// The simulator and the daemon, both modems ready.
    fn start() -> Gateway {
        let mut g = Gateway::sim_only();
        g.gate.write_config(&format!(
            "[discovery]\ndir = \"{}\"\n[privacy]\npolicy = \"open\"\n",
            g.sim.dir().display()
        ));
        g.gate.start(&[]);
        g.gate.wait_modems_ready(2);
        g
    }

    fn dir(&self) -> &std::path::Path {
        self.gate.dir.path()
    }

    fn socket(&self) -> PathBuf {
        self.gate.socket()
    }

    fn sim_dir(&self) -> PathBuf {
        self.sim.dir().to_path_buf()
    }

    /// `smsgate <args> --socket <ours>`.
    fn cli(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn sim_ctl(&self, args: &[&str]) -> Vec<Value> {
        self.sim.ctl(args)
    }

    fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        common::wait_for(WAIT, what, || f().then_some(()))
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

fn ids(out: &Output) -> Vec<i64> {
    text(&out.stdout)
        .lines()
        .map(|l| {
            l.split_whitespace()
                .next()
                .and_then(|w| w.parse().ok())
                .unwrap_or_else(|| panic!("not an id line: {l:?}"))
        })
        .collect()
}

#[test]
fn send_prints_an_id_and_exits_0() {
    let g = Gateway::start();
    let out = g.cli(&["send", "--to", "+4930123456", "--text", "hello"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    assert_eq!(ids(&out).len(), 1);
    // The network gets it.
    g.eventually("the message in the outbox", || {
        g.sim_ctl(&["outbox"])
            .iter()
            .any(|m| m["to"] == "+4930123456" && m["text"] == "hello")
    });
}

#[test]
fn send_refuses_a_huge_text_per_recipient_and_json_shows_the_normalised_number() {
    let g = Gateway::start();
    let huge = "x".repeat(70 * 1024);
    let out = g.cli(&[
        "send",
        "--to",
        "+4930111111",
        "--to",
        "+4930222222",
        "--text",
        &huge,
    ]);
    // Refused in the client for each recipient; the connection survives.
    assert_eq!(code(&out), 1, "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert_eq!(err.matches("text_too_long").count(), 2, "{err}");
    assert!(!err.contains("lost"), "{err}");
    // A fine recipient after a refused one still goes out.
    let out = g.cli(&[
        "send",
        "--json",
        "--to",
        "+49 30 123456",
        "--text",
        "spaced",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["to"], "+4930123456", "{v}");
    assert!(v["message"].is_i64(), "{v}");
}

#[test]
fn send_usage_errors_exit_2() {
    let socket = "/nonexistent/smsgate.sock";
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(["send", "--socket", socket, "--to", "+4930123456"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let out = run(&["--text", ""]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("empty text"),
        "{}",
        text(&out.stderr)
    );
    // Empty stdin is the same mistake.
    let out = run(&[]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("--allow-empty"),
        "{}",
        text(&out.stderr)
    );
    // With --allow-empty it goes on (to the missing daemon: 69).
    assert_eq!(code(&run(&["--text", "", "--allow-empty"])), 69);
    // --timeout means nothing without --wait.
    let out = run(&["--text", "x", "--timeout", "5"]);
    assert_eq!(code(&out), 2);
    assert!(
        text(&out.stderr).contains("--wait"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn send_several_recipients_and_text_from_stdin() {
    let g = Gateway::start();
    let mut child = Command::new(BIN)
        .args([
            "send",
            "--to",
            "+4930111111",
            "--to",
            "+4930222222",
            "--socket",
        ])
        .arg(g.socket())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"from stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let ids = ids(&out);
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    g.eventually("both in the outbox", || {
        let outbox = g.sim_ctl(&["outbox"]);
        ["+4930111111", "+4930222222"].iter().all(|to| {
            outbox
                .iter()
                .any(|m| m["to"] == *to && m["text"] == "from stdin")
        })
    });
}

#[test]
fn send_wait_sent_and_delivered_print_the_final_state() {
    let g = Gateway::start();
    let out = g.cli(&[
        "send",
        "--to",
        "+4930123457",
        "--text",
        "w",
        "--wait",
        "sent",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    // Scripts do `id=$(smsgate send ... --wait sent)`: stdout is the id
    // alone; the final state goes to stderr.
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    let id: i64 = stdout.trim().parse().expect("stdout is only the id");
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("message {id}: sent"))
            || stderr.contains(&format!("message {id}: delivered")),
        "{stderr}"
    );

    let out = g.cli(&[
        "send",
        "--to",
        "+4930124567",
        "--text",
        "d",
        "--wait",
        "delivered",
        "--json",
    ]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["state"], "delivered");
    assert_eq!(v["to"], "+4930124567");

    // status of the first one, as JSON and for people.
    let out = g.cli(&["status", &id.to_string(), "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["message"], id);
    assert!(
        matches!(v["state"].as_str(), Some("sent" | "delivered")),
        "{v}"
    );
    let out = g.cli(&["status", &id.to_string()]);
    assert!(text(&out.stdout).starts_with(&format!("message {id} to +4930123457: ")));
}

#[test]
fn invalid_number_is_rejected_with_a_message() {
    let g = Gateway::start();
    let out = g.cli(&["send", "--to", "not-a-number", "--text", "x"]);
    assert_eq!(code(&out), 1);
    assert!(out.stdout.is_empty());
    let err = text(&out.stderr);
    assert!(
        err.contains("invalid_number") && err.contains("not-a-number"),
        "{err}"
    );
}

#[test]
fn no_daemon_exits_69_naming_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    for args in [
        &["send", "--to", "+4930", "--text", "x"][..],
        &["inbox", "--json"],
        &["status"],
        &["modems"],
    ] {
        let out = Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(&socket)
            .output()
            .unwrap();
        assert_eq!(code(&out), 69, "{args:?}");
        let err = text(&out.stderr);
        assert!(err.contains(&socket.display().to_string()), "{err}");
        assert!(err.contains("daemon"), "{err}");
    }
    // SMSGATE_SOCKET works as well as --socket.
    let out = Command::new(BIN)
        .args(["modems"])
        .env("SMSGATE_SOCKET", &socket)
        .output()
        .unwrap();
    assert_eq!(code(&out), 69);
    assert!(text(&out.stderr).contains(&socket.display().to_string()));
}

#[test]
fn inbox_json_lines_have_the_fields_and_ack_empties_it() {
    let g = Gateway::start();
    g.sim_ctl(&[
        "inject", "--modem", "0", "--from", "+4930999", "--text", "first",
    ]);
    g.sim_ctl(&[
        "inject", "--modem", "1", "--from", "+4930888", "--text", "second",
    ]);
    let mut lines = Vec::new();
    g.eventually("two inbound messages", || {
        let out = g.cli(&["inbox", "--json"]);
        assert_eq!(code(&out), 0, "{}", text(&out.stderr));
        lines = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect();
        lines.len() == 2
    });
    for l in &lines {
        for k in ["id", "from", "text", "time", "modem"] {
            assert!(!l[k].is_null(), "{k} missing in {l}");
        }
    }
    let texts: Vec<&str> = lines.iter().filter_map(|l| l["text"].as_str()).collect();
    assert!(
        texts.contains(&"first") && texts.contains(&"second"),
        "{texts:?}"
    );
    // Human lines, then --ack: the backlog is empty afterwards.
    let out = g.cli(&["inbox", "--ack"]);
    assert_eq!(code(&out), 0);
    assert_eq!(text(&out.stdout).lines().count(), 2);
    assert!(text(&out.stdout).contains("+4930999"));
    let out = g.cli(&["inbox", "--json"]);
    assert_eq!(code(&out), 0);
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn inbox_shows_control_characters_escaped_and_json_exact() {
    let g = Gateway::start();
    let evil = "\u{1b}[31mred\rfake\u{202e}txt";
    g.sim_ctl(&[
        "inject", "--modem", "0", "--from", "+4930999", "--text", evil, "--ucs2",
    ]);
    let mut exact = Value::Null;
    g.eventually("the inbound message", || {
        let out = g.cli(&["inbox", "--json"]);
        exact = text(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["from"] == "+4930999")
            .unwrap_or(Value::Null);
        !exact.is_null()
    });
    // --json keeps the text exact.
    assert_eq!(exact["text"], evil);
    // Human output shows it, harmlessly.
    let out = g.cli(&["inbox"]);
    let shown = text(&out.stdout);
    assert!(
        !shown.contains(['\u{1b}', '\r', '\u{202e}']),
        "raw control characters reached stdout: {shown:?}"
    );
    assert!(shown.contains("\\x1b[31mred\\rfake\\u{202e}txt"), "{shown}");
}

#[test]
fn inbox_follow_prints_new_messages() {
    let g = Gateway::start();
    let mut child = Command::new(BIN)
        .args(["inbox", "--json", "--follow", "--socket"])
        .arg(g.socket())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The subscription is in place once the daemon counts a client.
    g.eventually("the follower connected", || {
        let out = g.cli(&["status", "--json"]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        v["bus_clients"].as_u64().unwrap_or(0) >= 2
    });
    g.sim_ctl(&[
        "inject", "--modem", "0", "--from", "+4930777", "--text", "live",
    ]);
    let line = common::first_stdout_line(&mut child, WAIT);
    let _ = child.kill();
    let _ = child.wait();
    let v: Value = serde_json::from_str(&line.expect("no line from inbox --follow")).unwrap();
    assert_eq!(v["text"], "live");
    assert_eq!(v["from"], "+4930777");
}

#[test]
fn modems_json_and_table() {
    let g = Gateway::start();
    let out = g.cli(&["modems", "--json"]);
    assert_eq!(code(&out), 0);
    let list: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list.len(), 2);
    for m in &list {
        for k in [
            "name",
            "model",
            "imei",
            "operator",
            "signal",
            "registration",
            "queued",
            "sent_today",
        ] {
            assert!(!m[k].is_null(), "{k} missing in {m}");
        }
    }
    let out = g.cli(&["modems"]);
    let table = text(&out.stdout);
    let mut rows = table.lines();
    let header = rows.next().unwrap();
    for col in [
        "NAME",
        "MODEL",
        "IMEI",
        "OPERATOR",
        "SIGNAL",
        "REGISTRATION",
        "QUEUE",
        "SENT TODAY",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert_eq!(rows.filter(|r| r.contains("ready")).count(), 2, "{table}");
}

#[test]
fn status_without_id_shows_stats_and_unknown_id_fails() {
    let g = Gateway::start();
    let out = g.cli(&["status", "--json"]);
    assert_eq!(code(&out), 0, "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v.is_object() && v.get("parts_queued").is_some(), "{v}");
    let out = g.cli(&["status"]);
    assert!(text(&out.stdout).contains("parts_queued: "));
    let out = g.cli(&["status", "99999"]);
    assert_eq!(code(&out), 1);
    assert!(
        text(&out.stderr).contains("not_found"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn batch_with_one_bad_row() {
    let g = Gateway::start();
    let csv = g.dir().join("batch.csv");
    std::fs::write(
        &csv,
        "to,text,key\n+4930501,\"one, with a comma\",b1\nbogus,two,b2\n+4930503,three,b3\n",
    )
    .unwrap();
    let out = g.cli(&["send", "--batch", csv.to_str().unwrap()]);
    assert_eq!(code(&out), 1);
    assert_eq!(ids(&out).len(), 2);
    let err = text(&out.stderr);
    assert!(
        err.contains("line 3") && err.contains("invalid_number"),
        "{err}"
    );
    g.eventually("both good rows in the outbox", || {
        let outbox = g.sim_ctl(&["outbox"]);
        outbox.iter().any(|m| m["text"] == "one, with a comma")
            && outbox.iter().any(|m| m["text"] == "three")
    });
    // Same keys again: nothing new is created (idempotency), same ids.
    let again = g.cli(&["send", "--batch", csv.to_str().unwrap()]);
    assert_eq!(ids(&again), ids(&out));
}

#[test]
fn doctor_checks_ports_and_the_daemon() {
    let g = Gateway::start();
    let port = g.sim_dir().join("modem0");
    let out = g.cli(&["doctor", "--port", port.to_str().unwrap()]);
    let report = text(&out.stdout);
    assert_eq!(code(&out), 0, "{report}");
    assert!(report.contains("reachable"), "{report}");
    assert!(report.contains("modem modem0"), "{report}");
    // Per-modem state comes from the daemon: state, registration, signal.
    let line = report
        .lines()
        .find(|l| l.contains("modem modem0"))
        .unwrap_or_default();
    assert!(line.starts_with("ok"), "{report}");
    assert!(
        line.contains("ready") && line.contains("signal"),
        "{report}"
    );
    // The daemon holds the port: the doctor neither talks AT over it nor
    // checks it as a free port.
    assert!(!report.contains("AT: answers"), "{report}");
    assert!(
        report.contains("the daemon's: reported by it above"),
        "{report}"
    );
    assert!(
        !report.contains(&format!("port {}:", port.display())),
        "{report}"
    );
}

#[test]
fn doctor_probes_a_free_port_and_fails_without_daemon() {
    let g = Gateway::sim_only();
    let port = g.sim_dir().join("modem1");
    let args = [
        "doctor",
        "--port",
        port.to_str().unwrap(),
        "--port",
        "/nonexistent/ttyUSB7",
    ];
    let out = g.cli(&args);
    let report = text(&out.stdout);
    assert_eq!(code(&out), 1, "{report}");
    for want in [
        "AT: answers OK",
        "PIN: READY",
        "registration: home",
        "SMSC: +",
        "storage:",
        "FAIL  port /nonexistent/ttyUSB7",
        "FAIL  daemon",
    ] {
        assert!(report.contains(want), "{want} missing:\n{report}");
    }

    // The same checks as JSON lines, for scripts: every line an object,
    // the last one the summary, the same exit code.
    let out = g.cli(&[&args[..], &["--json"]].concat());
    let report = text(&out.stdout);
    assert_eq!(code(&out), 1, "{report}");
    let lines: Vec<serde_json::Value> = report
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let (summary, checks) = lines.split_last().unwrap();
    assert!(checks.iter().any(|c| c["level"] == "fail"
        && c["name"] == "port /nonexistent/ttyUSB7"
        && c["hint"].is_string()));
    assert!(checks
        .iter()
        .any(|c| c["level"] == "ok" && c["detail"] == "answers OK"));
    let fails = checks.iter().filter(|c| c["level"] == "fail").count();
    assert_eq!(summary["summary"]["fail"], fails, "{summary}");
    assert_eq!(summary["summary"]["checks"], checks.len(), "{summary}");
}

/// The same command as `nobody` (uid 65534), where the tests run as root.
fn as_nobody(g: &Gateway, args: &[&str]) -> Option<Output> {
    use std::os::unix::process::CommandExt;
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIPPED: a refused peer needs root to run a client as another user");
        return None;
    }
    Some(
        Command::new(BIN)
            .args(args)
            .arg("--socket")
            .arg(g.socket())
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap(),
    )
}

#[test]
fn refused_users_exit_77() {
    use std::os::unix::fs::PermissionsExt;
    let g = Gateway::start();
    // The socket's permissions refuse `nobody`.
    let Some(out) = as_nobody(&g, &["modems"]) else {
        return;
    };
    assert_eq!(code(&out), 77, "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains(&g.socket().display().to_string()));
    // With the file open to all, the daemon's access list refuses it.
    let mode = |p: &std::path::Path, m| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode(g.dir(), 0o755);
    mode(&g.socket(), 0o666);
    let out = as_nobody(&g, &["send", "--to", "+4930", "--text", "x"]).unwrap();
    assert_eq!(code(&out), 77, "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("may not use"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn demo_exits_0() {
    let out = Command::new(BIN).arg("demo").output().unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(code(&out), 0, "{stdout}\n{}", text(&out.stderr));
    for want in [
        "network received it",
        "Delivery report",
        "inbound event on the bus",
        "What happened",
    ] {
        assert!(stdout.contains(want), "{want} missing:\n{stdout}");
    }
}

#[test]
fn demo_works_with_a_tmpdir_too_long_for_sockets() {
    let base = tempfile::tempdir().unwrap();
    let long = base.path().join("d".repeat(100));
    std::fs::create_dir(&long).unwrap();
    let out = Command::new(BIN)
        .arg("demo")
        .env("TMPDIR", &long)
        .output()
        .unwrap();
    assert_eq!(
        code(&out),
        0,
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(
        text(&out.stderr).contains("too long"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(BIN)
        .args(["send", "--text", "no recipient"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
    let out = Command::new(BIN)
        .args(["send", "--to", "+1", "--wait", "soon"])
        .output()
        .unwrap();
    assert_eq!(code(&out), 2);
}

#[test]
fn run_under_journald_reports_a_start_error_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("smsgate.toml");
    for (section, cause) in [
        (
            format!(
                "[bus]\nsocket = \"/proc/nope/x.sock\"\n[store]\npath = \"{}\"\n",
                dir.path().join("s.db").display()
            ),
            "/proc/nope",
        ),
        (
            format!(
                "[bus]\nsocket = \"{}\"\n[store]\npath = \"/proc/nope/s.db\"\n",
                dir.path().join("x.sock").display()
            ),
            "/proc/nope",
        ),
    ] {
        std::fs::write(&config, format!("{section}[discovery]\nenabled = false\n")).unwrap();
        for journald in [true, false] {
            let mut cmd = Command::new(BIN);
            cmd.args(["run", "--config"]).arg(&config);
            cmd.env_remove("JOURNAL_STREAM").env("SMSGATE_LOG", "info");
            if journald {
                cmd.env("JOURNAL_STREAM", "8:1234");
            }
            let out = cmd.stdin(Stdio::null()).output().unwrap();
            assert_eq!(code(&out), 1, "{}", text(&out.stderr));
            let err = text(&out.stderr);
            let lines = err.lines().filter(|l| l.contains(cause)).count();
            // On a terminal the plain `smsgate: ...` line is always there
            // (a layer may have logged the cause too); in the journal, once.
            if journald {
                assert_eq!(lines, 1, "{err}");
            } else {
                assert!(
                    err.lines().any(|l| l.starts_with("smsgate: ")) && lines >= 1,
                    "{err}"
                );
            }
        }
    }
}

#[test]
fn sigterm_during_a_reload_that_stops_modems_shuts_down_cleanly() {
    use nix::sys::signal::Signal;
    let mut g = Gateway::start();
    // The new config drops discovery: the reload stops both modems.
    g.gate
        .write_config("[discovery]\nenabled = false\n[privacy]\npolicy = \"open\"\n");
    g.gate.signal(Signal::SIGHUP);
    let status = g.gate.stop(Signal::SIGTERM);
    assert_eq!(status.code(), Some(0), "{}", g.gate.log());
}
