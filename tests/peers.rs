//! Proof of realism (issue 3): the established SMS daemons — gammu-smsd,
//! SMSTools3, Kannel's at2 driver — and the `gammu` command-line tool each
//! receive an injected message and send one through `smsgate sim`, driven
//! by the configurations recorded in `../shared/corpus/peers/configs/` with
//! only paths, ports and polling intervals adapted.
//!
//! Each test starts the real binary (`smsgate sim`), points the real peer
//! at the simulator's pseudo-terminal, injects an inbound message with
//! `smsgate sim ctl inject` and waits until the peer has stored it, then has
//! the peer send one and waits until `smsgate sim ctl outbox` lists it.
//! A test skips with a visible `SKIPPED:` line when the corpus or the peer
//! is not installed (`.ci/run` installs them). `docs/peers.md` explains what
//! each peer does and how to reproduce every step by hand.

mod common;
#[path = "peers/harness.rs"]
mod harness;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use harness::{
    corpus_config, digits, files_under, free_ports, http_get, listening, program, read_text, run,
    set_key, tag, url_encode, wait_for, Dialect, Proc, Sim, Work, DEADLINE, FROM, TO,
};

// One test per peer and simulated modem profile: the generic 27.005/27.007
// modem (or `$SMSGATE_PEERS_PROFILE`, to try quectel, simcom, ...), and
// Huawei's stick with its quirks (^RSSI/^MODE URC noise, COMMAND NOT
// SUPPORT, storage numbered from 0).

/// The profile of the non-Huawei tests: `generic` unless
/// `SMSGATE_PEERS_PROFILE` names another one.
fn base_profile() -> String {
    std::env::var("SMSGATE_PEERS_PROFILE").unwrap_or_else(|_| "generic".into())
}

#[test]
fn gammu_smsd_receives_and_sends() {
    gammu_smsd(&base_profile());
}

#[test]
fn gammu_smsd_huawei() {
    gammu_smsd("huawei");
}

#[test]
fn smstools3_receives_and_sends() {
    smstools3(&base_profile());
}

#[test]
fn smstools3_huawei() {
    smstools3("huawei");
}

#[test]
fn kannel_at2_receives_and_sends() {
    kannel_at2(&base_profile());
}

#[test]
fn kannel_at2_huawei() {
    kannel_at2("huawei");
}

#[test]
fn gammu_cli_identify_getallsms_sendsms() {
    gammu_cli(&base_profile());
}

#[test]
fn gammu_cli_huawei() {
    gammu_cli("huawei");
}

/// gammu-smsd (files backend): an injected SMS lands in its inbox
/// directory; a message queued with `gammu-smsd-inject` reaches the
/// network and is moved to its `sent` directory.
fn gammu_smsd(profile: &str) {
    let what = "gammu-smsd through smsgate sim";
    let Some(corpus) = common::corpus(what) else {
        return;
    };
    let (Some(smsd), Some(inject)) = (
        program("gammu-smsd", what),
        program("gammu-smsd-inject", what),
    ) else {
        return;
    };
    let work = Work::new("gammu-smsd", profile);
    let mut sim = Sim::start(&work, &["--profile", profile]);
    for d in ["inbox", "outbox", "sent", "error"] {
        work.subdir(&format!("gammu2/{d}"));
    }
    let rc = gammu_rc(&corpus, &sim, &work);
    let rc_path = work.path().join("gammu2/smsdrc");
    fs::write(&rc_path, rc).unwrap();

    let mut daemon = Proc::spawn(
        "gammu-smsd",
        peer_command(&smsd, &work, ["-c".as_ref(), rc_path.as_os_str()]),
        &work.path().join("gammu2/gammu-smsd.out"),
    );

    // Inbound: gammu-smsd polls the storages (it ignores +CMTI) and writes
    // IN<date>_<time>_<serial>_<sender>_<part>.txt.
    let inbound = format!("hello from sim {}", tag());
    sim.inject(FROM, &inbound);
    let inbox = work.path().join("gammu2/inbox");
    let file = wait_for("the injected SMS in gammu-smsd's inbox", DEADLINE, || {
        daemon.assert_running();
        files_under(&inbox)
            .into_iter()
            .find(|f| read_text(f).is_some_and(|t| t.trim_end_matches(['\r', '\n']) == inbound))
    });
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("IN") && name.contains(&format!("_{FROM}_")),
        "inbox file {name} does not name sender {FROM}"
    );

    // Outbound: gammu-smsd-inject queues a file in the outbox; the daemon
    // sends it with AT+CMGS (PDU, a pause, then Ctrl-Z in a separate write).
    // Longer than 160 characters, so it goes as a concatenated SMS (TS
    // 23.040 §9.2.3.24.1) that the network must reassemble.
    let outbound = long_text("gammu-smsd");
    let mut cmd = peer_command(&inject, &work, ["-c".as_ref(), rc_path.as_os_str()]);
    cmd.args(["TEXT", TO, "-len", "400", "-text", &outbound]);
    let (ok, out) = run(
        "gammu-smsd-inject",
        cmd,
        &work.path().join("gammu2/inject.out"),
        DEADLINE,
    );
    assert!(ok, "gammu-smsd-inject failed:\n{out}");
    let sent = sim.wait_outbox(TO, &outbound, DEADLINE);
    assert_eq!(sent["modem"], 0, "{sent}");
    assert_eq!(sent["parts"], 2, "{sent}");
    daemon.wait_file_in(
        &work.path().join("gammu2/sent"),
        "the sent message in sent/",
    );
    sim.assert_running();
}

/// SMSTools3: an injected SMS lands as a file in `incoming/`; a file
/// dropped into `outgoing/` reaches the network and is moved to `sent/`.
fn smstools3(profile: &str) {
    let what = "SMSTools3 through smsgate sim";
    let Some(corpus) = common::corpus(what) else {
        return;
    };
    let Some(smsd) = program("smsd", what) else {
        return;
    };
    let work = Work::new("smstools3", profile);
    let mut sim = Sim::start(&work, &["--profile", profile]);
    for d in ["outgoing", "checked", "failed", "incoming", "sent"] {
        work.subdir(&format!("smstools2/{d}"));
    }
    let mut conf = corpus_config(&corpus, "smstools-smsd.conf", &sim.link(0), work.path());
    // Faster polling (seconds) than the defaults of 10, from the tuned
    // configuration; everything else as recorded.
    conf = set_key(&conf, Dialect::Ini, None, "delaytime", "1");
    conf = set_key(&conf, Dialect::Ini, None, "delaytime_mainprocess", "1");
    let conf_path = work.path().join("smstools2/smsd.conf");
    fs::write(&conf_path, conf).unwrap();

    // -t: stay in the foreground (the test owns the process group).
    let mut daemon = Proc::spawn(
        "smsd",
        peer_command(
            &smsd,
            &work,
            ["-t".as_ref(), "-c".as_ref(), conf_path.as_os_str()],
        ),
        &work.path().join("smstools2/smsd.out"),
    );

    // Inbound: SMSTools3 reads AT+CPMS? and then AT+CMGR=i from index 1; it
    // writes a file with headers (From: 15557654321 ...), a blank line, the
    // text. Two parts, last first: SMSTools3 combines them itself.
    let inbound = long_text("sim");
    sim.ctl(&[
        "inject",
        "--modem",
        "0",
        "--from",
        FROM,
        "--text",
        &inbound,
        "--parts",
        "2",
        "--out-of-order",
    ]);
    let incoming = work.path().join("smstools2/incoming");
    let text = wait_for(
        "the injected SMS in SMSTools3's incoming/",
        DEADLINE,
        || {
            daemon.assert_running();
            files_under(&incoming)
                .iter()
                .filter_map(|f| read_text(f))
                .find(|t| t.contains(&inbound))
        },
    );
    let (headers, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let from = headers
        .lines()
        .find_map(|l| l.strip_prefix("From:"))
        .unwrap_or_else(|| panic!("no From: header in\n{text}"));
    assert_eq!(digits(from), digits(FROM), "sender in\n{text}");
    assert_eq!(body.trim_end(), inbound, "body in\n{text}");

    // Outbound: a spool file moved atomically into outgoing/.
    let outbound = format!("hello from smstools {}", tag());
    let staged = work.path().join("smstools2/staged");
    fs::write(&staged, format!("To: {}\n\n{outbound}", digits(TO))).unwrap();
    fs::rename(
        &staged,
        work.path()
            .join(format!("smstools2/outgoing/test.{}", tag())),
    )
    .unwrap();
    let sent = sim.wait_outbox(TO, &outbound, DEADLINE);
    assert_eq!(sent["modem"], 0, "{sent}");
    daemon.wait_file_in(
        &work.path().join("smstools2/sent"),
        "the sent message in sent/",
    );
    sim.assert_running();
}

/// Kannel's at2 driver: an injected SMS arrives live (`+CMT`) and reaches
/// the sms-service `exec` script; a message submitted on the sendsms HTTP
/// interface reaches the network.
fn kannel_at2(profile: &str) {
    let what = "Kannel at2 through smsgate sim";
    let Some(corpus) = common::corpus(what) else {
        return;
    };
    let (Some(bearerbox), Some(smsbox)) = (program("bearerbox", what), program("smsbox", what))
    else {
        return;
    };
    let work = Work::new("kannel", profile);
    let mut sim = Sim::start(&work, &["--profile", profile]);
    let kdir = work.subdir("kannel2");
    let [admin_port, smsbox_port, sendsms_port] = free_ports::<3>();
    let mut conf = corpus_config(&corpus, "kannel.conf", &sim.link(0), work.path());
    let k = Dialect::Kannel;
    conf = set_key(
        &conf,
        k,
        Some("core"),
        "admin-port",
        &admin_port.to_string(),
    );
    conf = set_key(&conf, k, Some("core"), "admin-interface", "127.0.0.1");
    conf = set_key(
        &conf,
        k,
        Some("core"),
        "smsbox-port",
        &smsbox_port.to_string(),
    );
    conf = set_key(&conf, k, Some("core"), "smsbox-interface", "127.0.0.1");
    conf = set_key(
        &conf,
        k,
        Some("smsbox"),
        "sendsms-port",
        &sendsms_port.to_string(),
    );
    conf = use_available_modem_definitions(&conf, &kdir);
    if profile == "huawei" {
        conf = with_huawei_modem_definition(&conf, &kdir);
    }
    let conf_path = kdir.join("kannel.conf");
    fs::write(&conf_path, conf).unwrap();

    // The sms-service runs `mo.sh %p '%a'` for every inbound message, with
    // both URL-encoded (Kannel's rule for exec); the script records them
    // and prints nothing (omit-empty: no reply SMS).
    let mo = kdir.join("mo.sh");
    fs::write(
        &mo,
        "#!/bin/sh\nprintf '%s\\t%s\\n' \"$1\" \"$2\" >> \"$(dirname \"$0\")/mo.txt\"\n",
    )
    .unwrap();
    fs::set_permissions(&mo, fs::Permissions::from_mode(0o755)).unwrap();

    // A message that arrives before Kannel starts waits in SIM storage
    // (no +CNMI routing yet); with sim-buffering Kannel reads it with
    // AT+CPMS? / AT+CMGR=i and deletes it with AT+CMGD=i.
    let stored = format!("stored before kannel {}", tag());
    sim.inject(FROM, &stored);

    let mut bearer = Proc::spawn(
        "bearerbox",
        peer_command(&bearerbox, &work, [conf_path.as_os_str()]),
        &kdir.join("bearerbox.out"),
    );
    // The at2 driver detects the modem (ATZ, ATI, AT+CSMS=?), reopens the
    // device and initialises it; the admin status page then says "online".
    wait_for("Kannel's at2 SMSC to come online", DEADLINE, || {
        bearer.assert_running();
        let (code, body) = http_get(admin_port, "/status.txt?password=bar").ok()?;
        (code == 200
            && body
                .lines()
                .any(|l| l.contains("fake") && l.contains("online")))
        .then_some(())
    });
    let mut sbox = Proc::spawn(
        "smsbox",
        peer_command(&smsbox, &work, [conf_path.as_os_str()]),
        &kdir.join("smsbox.out"),
    );
    wait_for("smsbox's sendsms port", DEADLINE, || {
        sbox.assert_running();
        listening(sendsms_port).then_some(())
    });

    // Inbound: with AT+CNMI=1,2,0,1,0 the message arrives as +CMT: ,<len>.
    let inbound = format!("hello from sim {}", tag());
    sim.inject(FROM, &inbound);
    let mo_txt = kdir.join("mo.txt");
    // Both must arrive, in either order (the stored one is read at start-up,
    // which a slow modem may delay past the live one).
    let lines = wait_for(
        "both injected SMS at Kannel's sms-service",
        DEADLINE,
        || {
            bearer.assert_running();
            sbox.assert_running();
            let lines: Vec<String> = read_text(&mo_txt)?
                .lines()
                .map(harness::url_decode)
                .collect();
            let find = |text: &str| lines.iter().find(|l| l.contains(text)).cloned();
            Some((find(&stored)?, find(&inbound)?))
        },
    );
    for (line, want) in [(&lines.0, &stored), (&lines.1, &inbound)] {
        let (sender, text) = line.split_once('\t').unwrap_or(("", line));
        assert_eq!(digits(sender), digits(FROM), "sender in {line:?}");
        assert_eq!(text, want, "text in {line:?}");
    }

    // Outbound: the sendsms HTTP interface on 127.0.0.1 (the recorded
    // configuration sets no global sender, so `from` is required), in UCS-2
    // (coding=2; TS 23.038 §4) since the text is not GSM 7-bit, with a
    // delivery report requested (dlr-mask=1: delivered; TP-SRR, TS 23.040
    // §9.2.3.5) that Kannel reports to `dlr-url`.
    let outbound = format!("hello from kannel {} Привет мир €", tag());
    let dlr = harness::HttpSink::start();
    let dlr_url = format!("http://127.0.0.1:{}/dlr?status=%d&to=%p", dlr.port);
    let query = format!(
        "/cgi-bin/sendsms?username=tester&password=foobar&coding=2&charset=UTF-8\
         &from={}&to={}&text={}&dlr-mask=1&dlr-url={}",
        url_encode(&sim.number(0)),
        url_encode(TO),
        url_encode(&outbound),
        url_encode(&dlr_url)
    );
    let (code, body) = http_get(sendsms_port, &query).unwrap();
    assert!(
        code == 202 && body.contains("Accepted for delivery"),
        "sendsms answered {code}: {body}"
    );
    let sent = sim.wait_outbox(TO, &outbound, DEADLINE);
    assert_eq!(sent["modem"], 0, "{sent}");
    assert_eq!(sent["report_requested"], true, "{sent}");
    // The simulated network's status report (after --report-delay) arrives
    // as +CDS and Kannel calls the dlr-url with status 1 (delivered).
    let hit = wait_for("Kannel's delivery report callback", DEADLINE, || {
        bearer.assert_running();
        dlr.requests().into_iter().find(|r| r.starts_with("/dlr?"))
    });
    assert!(hit.contains("status=1&"), "delivery report {hit}");
    assert_eq!(
        digits(&harness::url_decode(hit.rsplit("to=").next().unwrap_or(""))),
        digits(TO),
        "delivery report {hit}"
    );
    bearer.assert_running();
    sim.assert_running();
}

/// The `gammu` command-line tool: `identify` shows the simulated modem's
/// IMEI, `getallsms` lists an injected message, `sendsms` sends one.
fn gammu_cli(profile: &str) {
    let what = "gammu CLI through smsgate sim";
    let Some(corpus) = common::corpus(what) else {
        return;
    };
    let Some(gammu) = program("gammu", what) else {
        return;
    };
    let work = Work::new("gammu-cli", profile);
    let mut sim = Sim::start(&work, &["--profile", profile]);
    work.subdir("gammu2");
    let rc_path = work.path().join("gammu2/gammurc");
    fs::write(&rc_path, gammu_rc(&corpus, &sim, &work)).unwrap();
    let gammu_cmd = |args: &[&str]| {
        let mut cmd = peer_command(&gammu, &work, ["-c".as_ref(), rc_path.as_os_str()]);
        cmd.args(args);
        cmd
    };
    let limit = Duration::from_secs(90);

    let imei = sim.modem_field(0, "imei");
    let (ok, out) = run(
        "gammu identify",
        gammu_cmd(&["identify"]),
        &work.path().join("gammu2/identify.out"),
        limit,
    );
    assert!(ok, "gammu identify failed:\n{out}");
    assert!(
        out.lines().any(|l| l.contains("IMEI") && l.contains(&imei)),
        "identify does not show IMEI {imei}:\n{out}"
    );

    let inbound = format!("hello from sim {}", tag());
    sim.inject(FROM, &inbound);
    let out = wait_for("the injected SMS in gammu getallsms", DEADLINE, || {
        let (ok, out) = run(
            "gammu getallsms",
            gammu_cmd(&["getallsms"]),
            &work.path().join("gammu2/getallsms.out"),
            limit,
        );
        (ok && out.contains(&inbound)).then_some(out)
    });
    assert!(
        out.lines()
            .any(|l| l.contains("Remote number") && l.contains(FROM)),
        "getallsms does not show sender {FROM}:\n{out}"
    );

    let outbound = format!("hello from gammu {}", tag());
    let (ok, out) = run(
        "gammu sendsms",
        gammu_cmd(&["sendsms", "TEXT", TO, "-text", &outbound]),
        &work.path().join("gammu2/sendsms.out"),
        limit,
    );
    assert!(ok, "gammu sendsms failed:\n{out}");
    let sent = sim.wait_outbox(TO, &outbound, DEADLINE);
    assert_eq!(sent["modem"], 0, "{sent}");
    sim.assert_running();
}

/// A text longer than one SMS (160 GSM 7-bit characters), tagged.
fn long_text(who: &str) -> String {
    format!(
        "long message from {who} {}: it has more than one hundred and sixty characters, \
         so it must travel as a concatenated SMS with a user data header and be \
         reassembled on the other side.",
        tag()
    )
}

/// The recorded gammu-smsd configuration with the test's paths, and the
/// inbox polled every second instead of every 15 s.
fn gammu_rc(corpus: &Path, sim: &Sim, work: &Work) -> String {
    let rc = corpus_config(corpus, "gammu-smsdrc", &sim.link(0), work.path());
    set_key(&rc, Dialect::Ini, Some("smsd"), "ReceiveFrequency", "1")
}

/// A peer's command: run as the current user, with `HOME` in the work
/// directory so no per-user file outside it is read or written.
fn peer_command<'a>(
    program: &Path,
    work: &Work,
    args: impl IntoIterator<Item = &'a std::ffi::OsStr>,
) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("HOME", work.path())
        .current_dir(work.path());
    cmd
}

/// Kannel's recorded configuration includes the modem definitions shipped
/// in its documentation directory, which minimal systems strip
/// (`path-exclude=/usr/share/doc/*`): then define the generic modem here.
fn use_available_modem_definitions(conf: &str, kdir: &Path) -> String {
    const SHIPPED: &str = "/usr/share/doc/kannel/examples/modems.conf";
    if Path::new(SHIPPED).is_file() {
        return conf.to_string();
    }
    let own = kdir.join("modems.conf");
    fs::write(
        &own,
        "group = modems\nid = generic\nname = \"Generic Modem\"\n",
    )
    .unwrap();
    conf.replace(SHIPPED, &own.to_string_lossy())
}

/// Huawei sticks number stored messages from 0, and Kannel's generic modem
/// reads `AT+CMGR=1..n`: an operator adds a modem definition that Kannel's
/// detection (`ATI` answer contains `detect-string`) picks, with
/// `message-start = 0`.
fn with_huawei_modem_definition(conf: &str, kdir: &Path) -> String {
    let own = kdir.join("huawei-modem.conf");
    fs::write(
        &own,
        "group = modems\nid = huawei\nname = \"Huawei stick\"\n\
         detect-string = \"huawei\"\nmessage-start = 0\n",
    )
    .unwrap();
    format!("{conf}\ninclude = \"{}\"\n", own.display())
}
