//! `smsgate run` from outside: the real binary, the real bus socket (a
//! tiny JSON-lines client), `smsgate sim` for modems on real
//! pseudo-terminals, real signals and a fake systemd notify socket.
//!
//! Every wait polls with a deadline until the expected state shows; no
//! test relies on a sleep for correctness.

mod common;

use common::daemon::*;

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

fn run_with(config: &str) -> (Option<i32>, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        path,
        dir,
    )
}

#[test]
fn bad_configs_exit_78_and_name_the_key_and_the_file() {
    for (config, key, line) in [
        (
            "[bus]\nsocket = \"/tmp/x.sock\"\nsockett = \"/x\"\n",
            "bus.sockett",
            3,
        ),
        ("[discovery]\nenabled = \"yes\"\n", "discovery.enabled", 2),
        (
            "[[modem]]\nport = \"/dev/ttyUSB0\"\npin = \"12\"\n",
            "modem.pin",
            3,
        ),
        ("[store]\npath = \"relative.db\"\n", "store.path", 2),
        ("[limits]\nper_minute = 0\n", "limits.per_minute", 2),
        // A typo in a flattened table: the key's own line, not the header's.
        (
            "[bus]\nsocket = \"/tmp/x.sock\"\n\n[limits]\nper_minute = 5\nper_minut = 3\n",
            "limits.per_minut",
            6,
        ),
        (
            "# comment\n\n[limits]\n\"per_minut\" = 3\n",
            "limits.per_minut",
            4,
        ),
    ] {
        let (code, stderr, path, _dir) = run_with(config);
        assert_eq!(code, Some(78), "{config}: {stderr}");
        assert!(stderr.contains(key), "{config}: {stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{config}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("line {line}")),
            "{config}: want line {line}: {stderr}"
        );
    }
    let out = Command::new(BIN)
        .args(["run", "--config", "/nonexistent/smsgate.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/smsgate.toml"));
}

#[test]
fn check_config_accepts_the_documented_example() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/smsgate.toml");
    let out = Command::new(BIN)
        .args(["run", "--check-config", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sends_and_receives_through_the_socket_with_modems_from_the_sim_dir() {
    let sim = Sim::start(2, &[]);
    let mut gate = Gate::new();
    gate.write_watching(&sim, "");
    gate.start(&[]);
    let modems = gate.wait_modems_ready(2);
    let mut imeis: Vec<&str> = modems.iter().map(|m| m["imei"].as_str().unwrap()).collect();
    imeis.sort();
    let mut want = vec![sim.imei(0), sim.imei(1)];
    want.sort();
    assert_eq!(imeis, want);

    let mut events = gate.client();
    let sub = events.request(json!({"op": "subscribe", "events": ["inbound"]}));
    assert_eq!(sub["ok"], true, "{sub}");

    // Outbound to the outside world: it leaves through a modem.
    let mut c = gate.client();
    let id = c.send(OUTSIDE, "out to the world");
    wait_for("the message to be sent", || {
        (c.state(id) == "sent").then_some(())
    });
    let out = sim.outbox();
    assert_eq!(
        out.iter()
            .filter(|m| m["text"] == "out to the world" && m["to"] == OUTSIDE)
            .count(),
        1,
        "{out:?}"
    );

    // Inbound from the outside world arrives as an event.
    sim.ctl(&[
        "inject",
        "--modem",
        "0",
        "--from",
        OUTSIDE,
        "--text",
        "hello gateway",
    ]);
    let ev = events.read().unwrap();
    assert_eq!(ev["event"], "inbound", "{ev}");
    assert_eq!(ev["text"], "hello gateway", "{ev}");
    assert_eq!(ev["modem"], sim.imei(0).as_str(), "{ev}");

    // Modem to modem through the simulated network: out of one, into the other.
    let to = sim.number(1);
    let id = c.send(&to, "between modems");
    wait_for("the message to be sent", || {
        (c.state(id) == "sent").then_some(())
    });
    let ev = events.read().unwrap();
    assert_eq!(ev["text"], "between modems", "{ev}");
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
    assert!(!gate.socket().exists(), "socket removed at shutdown");
}

#[test]
fn hotplug_links_appear_and_vanish() {
    let sim = Sim::start(2, &[]);
    let mut gate = Gate::new();
    let watched = gate.dir.path().join("dev");
    gate.write_config(&format!(
        "[discovery]\ndir = \"{}\"\nrescan_secs = 1\n",
        watched.display()
    ));
    gate.start(&[]);
    // The directory does not exist yet: no modems, no error.
    assert!(gate.modems().is_empty());
    std::fs::create_dir(&watched).unwrap();
    let tty0 = sim.ready["modems"][0]["tty"].as_str().unwrap().to_string();
    let tty1 = sim.ready["modems"][1]["tty"].as_str().unwrap().to_string();
    std::os::unix::fs::symlink(&tty0, watched.join("left")).unwrap();
    std::fs::write(watched.join("not-a-modem"), b"").unwrap();
    let m = gate.wait_modems_ready(1);
    assert_eq!(m[0]["name"], "left");
    assert_eq!(m[0]["imei"], sim.imei(0).as_str());
    std::os::unix::fs::symlink(&tty1, watched.join("right")).unwrap();
    gate.wait_modems_ready(2);
    std::fs::remove_file(watched.join("left")).unwrap();
    let m = wait_for("the left modem to go", || {
        let m = gate.modems();
        (m.len() == 1).then_some(m)
    });
    assert_eq!(m[0]["name"], "right");
    // Work still flows through the remaining modem.
    let mut c = gate.client();
    let id = c.send(OUTSIDE, "after unplug");
    wait_for("the message to be sent", || {
        (c.state(id) == "sent").then_some(())
    });
    assert_eq!(gate.stop(Signal::SIGINT).code(), Some(0));
}

#[test]
fn a_configured_port_in_the_watched_dir_runs_once_with_its_settings() {
    let sim = Sim::start(2, &[]);
    let mut gate = Gate::new();
    gate.write_config(&format!(
        "[discovery]\ndir = \"{dir}\"\nrescan_secs = 1\n[[modem]]\nport = \"{dir}/modem0\"\nname = \"pinned\"\n",
        dir = sim.dir().display()
    ));
    gate.start(&[]);
    let m = gate.wait_modems_ready(2);
    let mut names: Vec<&str> = m.iter().map(|m| m["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["modem1", "pinned"]);

    // Without its entry the port goes back to discovery.
    gate.write_watching(&sim, "");
    gate.signal(Signal::SIGHUP);
    wait_for("modem0 to be discovered", || {
        let m = gate.modems();
        let mut names: Vec<String> = m
            .iter()
            .map(|m| m["name"].as_str().unwrap().into())
            .collect();
        names.sort();
        (names == ["modem0", "modem1"]).then_some(())
    });
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
}

#[test]
fn sighup_reload_adds_and_removes_modems_and_a_bad_config_keeps_the_old_one() {
    let sim = Sim::start(2, &[]);
    let mut gate = Gate::new();
    let link = |k: usize| sim.dir().join(format!("modem{k}"));
    let one = format!(
        "[discovery]\nenabled = false\n[[modem]]\nport = \"{}\"\nname = \"first\"\n",
        link(0).display()
    );
    gate.write_config(&one);
    gate.start(&[]);
    let m = gate.wait_modems_ready(1);
    assert_eq!(m[0]["name"], "first");
    let mut kept = gate.client();

    gate.write_config(&format!(
        "{one}[[modem]]\nport = \"{}\"\nname = \"second\"\n",
        link(1).display()
    ));
    gate.signal(Signal::SIGHUP);
    let m = gate.wait_modems_ready(2);
    let mut names: Vec<&str> = m.iter().map(|m| m["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["first", "second"]);
    // The client connected before the reload is still served.
    let r = kept.request(json!({"op": "stats"}));
    assert_eq!(r["ok"], true, "{r}");

    // A broken file is refused; the daemon keeps running as before.
    std::fs::write(gate.config_path(), "[bus]\nsockett = 1\n").unwrap();
    gate.signal(Signal::SIGHUP);
    wait_for("the refusal in the log", || {
        gate.log().contains("reload refused").then_some(())
    });
    assert_eq!(gate.wait_modems_ready(2).len(), 2);

    // Removing an entry stops its modem; the other keeps running.
    gate.write_config(&one);
    gate.signal(Signal::SIGHUP);
    let m = wait_for("the second modem to stop", || {
        let m = gate.modems();
        (m.len() == 1).then_some(m)
    });
    assert_eq!(m[0]["name"], "first");
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
}

#[test]
fn sigterm_mid_flight_loses_nothing() {
    // Slow modems: every final result takes 300 ms, so sends are in
    // flight when the signal comes.
    let sim = Sim::start(2, &["--latency", "300ms"]);
    let mut gate = Gate::new();
    gate.write_watching(&sim, "");
    gate.start(&[]);
    gate.wait_modems_ready(2);
    let mut c = gate.client();
    let texts: Vec<String> = (0..12).map(|i| format!("flight {i}")).collect();
    let ids: Vec<i64> = texts.iter().map(|t| c.send(OUTSIDE, t)).collect();
    drop(c);
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0), "{}", gate.log());
    assert!(!gate.socket().exists());

    // Whatever was not sent before the signal is sent after a restart.
    gate.start(&[]);
    let mut c = gate.client();
    for id in &ids {
        wait_for(&format!("message {id} sent"), || {
            (c.state(*id) == "sent").then_some(())
        });
    }
    let out = sim.outbox();
    for t in &texts {
        let n = out.iter().filter(|m| m["text"] == t.as_str()).count();
        // At most once more: a part in flight at the signal may have left
        // before it was requeued (flagged maybe-sent).
        assert!((1..=2).contains(&n), "{t} left {n} times: {out:?}");
    }
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
}

#[test]
fn second_sigterm_exits_at_once_and_loses_nothing() {
    // A hung modem: the send in flight never finishes, so the graceful
    // shutdown would wait out its grace; the second signal cuts it short.
    let sim = Sim::start(1, &[]);
    let mut gate = Gate::new();
    gate.write_watching(&sim, "");
    gate.start(&[]);
    gate.wait_modems_ready(1);
    sim.ctl(&["hang", "--modem", "0"]);
    let mut c = gate.client();
    let ids: Vec<i64> = (0..4)
        .map(|i| c.send(OUTSIDE, &format!("cut {i}")))
        .collect();
    // Wait until a send is on the wire, then stop twice.
    wait_for("a send in flight", || {
        let r = c.request(json!({"op": "stats"}));
        (r["stats"]["parts_sending"].as_u64() > Some(0)).then_some(())
    });
    drop(c);
    gate.signal(Signal::SIGTERM);
    wait_for("the shutdown to begin", || {
        gate.log().contains("shutting down").then_some(())
    });
    let st = gate.stop(Signal::SIGTERM);
    assert_eq!(st.code(), Some(143), "{}", gate.log());

    sim.ctl(&["hang", "--modem", "0", "--off"]);
    gate.start(&[]);
    let mut c = gate.client();
    for id in &ids {
        wait_for(&format!("message {id} sent"), || {
            (c.state(*id) == "sent").then_some(())
        });
    }
    let out = sim.outbox();
    for i in 0..4 {
        let t = format!("cut {i}");
        let n = out.iter().filter(|m| m["text"] == t.as_str()).count();
        assert!((1..=2).contains(&n), "{t} left {n} times: {out:?}");
    }
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
}

#[test]
fn sd_notify_ready_status_watchdog_stopping() {
    let mut gate = Gate::new();
    gate.write_config("[discovery]\nenabled = false\n");
    let path = gate.dir.path().join("notify.sock");
    let listener = UnixDatagram::bind(&path).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let notify = path.display().to_string();
    gate.start(&[("NOTIFY_SOCKET", &notify), ("WATCHDOG_USEC", "400000")]);
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    let mut recv = |seen: &mut String| {
        if let Ok(n) = listener.recv(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            seen.push('\n');
        }
    };
    wait_for("READY, STATUS and WATCHDOG", || {
        recv(&mut seen);
        (seen.contains("READY=1") && seen.contains("STATUS=") && seen.contains("WATCHDOG=1"))
            .then_some(())
    });
    assert!(seen.contains("modems ready"), "{seen}");
    gate.signal(Signal::SIGTERM);
    wait_for("STOPPING", || {
        recv(&mut seen);
        seen.contains("STOPPING=1").then_some(())
    });
    let st = wait_exit(gate.child.as_mut().unwrap());
    gate.child = None;
    assert_eq!(st.code(), Some(0));
}

#[test]
fn no_notify_socket_means_no_notifications_and_still_runs() {
    let mut gate = Gate::new();
    gate.write_config("[discovery]\nenabled = false\n");
    gate.start(&[]);
    let r = gate.client().request(json!({"op": "stats"}));
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
}

/// DESIGN invariant 5 across restarts: a PIN the SIM rejected is never
/// entered again, also not by the next run of the daemon (systemd restarts
/// it on failure; each run would otherwise burn one of the three tries).
/// A corrected PIN in the config is tried, since the modem says two
/// attempts are left.
#[test]
fn a_rejected_pin_is_not_entered_again_after_restarts() {
    let sim = Sim::start(1, &["--pin", "1234"]);
    let sim_log = || std::fs::read_to_string(sim.dir().join("sim.log")).unwrap_or_default();
    let mut gate = Gate::new();
    let config = |pin: &str| {
        format!(
            "[[modem]]\nport = \"{}/modem0\"\nname = \"m0\"\npin = \"{pin}\"\n",
            sim.dir().display()
        )
    };
    gate.write_config(&config("9999"));
    let locked = |gate: &Gate| {
        wait_for("the modem reported SIM-locked", || {
            let m = gate.modems();
            (m.len() == 1 && m[0]["state"] == "sim-locked").then_some(())
        })
    };
    for _ in 0..3 {
        gate.start(&[]);
        locked(&gate);
        gate.stop(Signal::SIGKILL);
    }
    assert_eq!(sim_log().matches("wrong PIN").count(), 1, "{}", sim_log());
    let memory = std::fs::read_to_string(gate.dir.path().join("db/rejected-pins.json")).unwrap();
    assert!(!memory.contains("9999"), "the memory holds digests only");

    gate.write_config(&config("1234"));
    gate.start(&[]);
    gate.wait_modems_ready(1);
    assert_eq!(sim_log().matches("wrong PIN").count(), 1);
    // Unlocked: the SIM's counter is reset, so is the memory.
    let memory = std::fs::read_to_string(gate.dir.path().join("db/rejected-pins.json")).unwrap();
    let memory: Value = serde_json::from_str(&memory).unwrap();
    assert_eq!(memory["rejected"], json!({}), "{memory}");
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
}

/// A full store (`[store] max_size_bytes` below the file's size stands in
/// for a full disk): the daemon keeps running, logs the cause, commits
/// nothing half-way, and the modem keeps what could not be committed; with
/// room again every message arrives exactly once.
#[test]
fn a_full_store_leaves_messages_on_the_modem_until_there_is_room() {
    let sim = Sim::start(1, &[]);
    let mut gate = Gate::new();
    gate.write_watching(&sim, "");
    gate.start(&[]);
    gate.wait_modems_ready(1);
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));

    // The cap is below the size: the database cannot grow any more.
    let roomy = std::fs::read_to_string(gate.config_path()).unwrap();
    let capped = roomy.replacen("[store]\n", "[store]\nmax_size_bytes = 1\n", 1);
    std::fs::write(gate.config_path(), &capped).unwrap();
    gate.start(&[]);
    gate.wait_modems_ready(1);
    let texts: Vec<String> = (0..20)
        .map(|i| format!("kept safe {i:02} {}", "x".repeat(120)))
        .collect();
    for t in &texts {
        sim.ctl(&["inject", "--modem", "0", "--from", OUTSIDE, "--text", t]);
    }
    let stored_on_modem = || {
        sim.ctl(&["modems"])[0]["storage"]["me"][0]
            .as_u64()
            .unwrap()
    };
    wait_for("the store to fill and the modem to keep the rest", || {
        (gate.log().contains("the store is full") && stored_on_modem() > 0).then_some(())
    });
    // Still serving: a status query answers.
    let st = gate.client().request(json!({"op": "stats"}));
    assert_eq!(st["ok"], true, "{st}");
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));

    std::fs::write(gate.config_path(), &roomy).unwrap();
    gate.start(&[]);
    let mut events = gate.client();
    let sub = events.request(json!({"op": "subscribe", "events": ["inbound"], "since": 0}));
    assert_eq!(sub["ok"], true, "{sub}");
    let mut got: std::collections::BTreeMap<String, std::collections::BTreeSet<i64>> =
        Default::default();
    while !texts.iter().all(|t| got.contains_key(t)) {
        let ev = events.read().expect("every message arrives");
        if ev["event"] == "inbound" {
            got.entry(ev["text"].as_str().unwrap().to_string())
                .or_default()
                .insert(ev["id"].as_i64().unwrap());
        }
    }
    for (text, ids) in &got {
        assert_eq!(ids.len(), 1, "{text} stored as {ids:?}");
    }
    wait_for("the modem's storage to be emptied", || {
        (stored_on_modem() == 0).then_some(())
    });
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
}

/// Under journald (`JOURNAL_STREAM` set by systemd) log lines carry no
/// timestamp of their own: journald stamps each line. Elsewhere they do.
#[test]
fn log_lines_carry_no_timestamp_under_journald() {
    let sim = Sim::start(1, &[]);
    let mut gate = Gate::new();
    gate.write_watching(&sim, "");
    gate.start(&[("JOURNAL_STREAM", "8:12345")]);
    gate.wait_modems_ready(1);
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
    gate.start(&[]);
    gate.wait_modems_ready(1);
    assert_eq!(gate.stop(Signal::SIGTERM).code(), Some(0));
    let log = gate.log();
    let (journald, plain) = log.split_once("---- restart ----").unwrap();
    let stamped = |l: &str| l.len() > 20 && l.as_bytes()[4] == b'-' && l.contains('T');
    let lines = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_string)
            .collect()
    };
    let (j, p) = (lines(journald), lines(plain));
    assert!(!j.is_empty() && !p.is_empty());
    assert!(j.iter().all(|l| !stamped(l)), "{journald}");
    assert!(p.iter().all(|l| stamped(l)), "{plain}");
}
