//! `smsgate demo`: the whole system on one machine without hardware.
//!
//! In a temporary directory it starts a simulated network with two modems
//! (the in-process `smsgate sim` runtime: real pseudo-terminals speaking
//! AT), the daemon (`Daemon::start`, discovering the modems in the
//! simulator's directory exactly as it finds udev's links), and then, as
//! any bus client would, through the real socket: sends an SMS to a phone
//! outside the gateway, shows it arriving at the network, has the phone
//! reply, shows the inbound event and the delivery report. Every wait is
//! bounded; any step that fails ends the demo with a clear message and a
//! non-zero exit code, and everything is cleaned up either way.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::client::{printable, Client};
use crate::daemon::{Config, Daemon};
use crate::sim::control::{self, Request};
use crate::sim::runtime::{self as sim_runtime, SimConfig};

/// The simulated phone outside the gateway (a valid mobile number: sends
/// are normalised to E.164 and invalid numbers refused, docs/privacy.md).
const PHONE: &str = "+4915112345678";
/// The gateway's two SIM numbers.
const NUMBERS: [&str; 2] = ["+15550000000", "+15550000001"];

/// Arguments of `smsgate demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seconds each step may take before the demo gives up.
    #[arg(long, value_name = "SECS", default_value_t = 20)]
    pub step_timeout: u64,
    /// Keep the temporary directory (database, socket, logs) for a look afterwards.
    #[arg(long)]
    pub keep: bool,
}

/// Runs `smsgate demo`: exit 0 when every step worked.
pub fn run(args: DemoArgs) -> ExitCode {
    match demo(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// A temporary directory removed on drop (unless kept).
struct TempDir {
    path: PathBuf,
    keep: bool,
}

/// Longest Unix socket path (`sun_path` is 108 bytes on Linux, one of
/// them the terminating NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The deepest socket below the demo directory (the simulator's control
/// socket), relative to it.
fn deepest_socket() -> PathBuf {
    Path::new("sim").join(crate::sim::control::SOCKET_NAME)
}

/// Where the demo directory goes: `$TMPDIR` unless its sockets' paths
/// would not fit in a socket address, then `/tmp`.
fn temp_base(preferred: PathBuf, name: &str) -> PathBuf {
    let fits =
        |base: &Path| base.join(name).join(deepest_socket()).as_os_str().len() <= MAX_SOCKET_PATH;
    if fits(&preferred) {
        return preferred;
    }
    let fallback = PathBuf::from("/tmp");
    if fallback.is_dir() && fits(&fallback) {
        eprintln!(
            "note: {} is too long a directory for the demo's sockets; using /tmp",
            preferred.display()
        );
        return fallback;
    }
    preferred
}

impl TempDir {
    fn new(keep: bool) -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = format!("smsgate-demo-{}-{nanos:08x}", std::process::id());
        let path = temp_base(std::env::temp_dir(), &name).join(name);
        std::fs::create_dir(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir { path, keep })
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            println!("kept {}", self.path.display());
        } else if let Err(e) = std::fs::remove_dir_all(&self.path) {
            eprintln!("warning: cannot remove {}: {e}", self.path.display());
        }
    }
}

/// The daemon's configuration for the demo: everything inside `dir`,
/// modems discovered in the simulator's directory.
pub fn demo_config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.bus.socket = dir.join("smsgate.sock");
    config.store.path = dir.join("smsgate.db");
    config.discovery.dir = dir.join("sim");
    config.discovery.enabled = true;
    // The demo's simulated senders never send JOIN: relay everyone (STOP
    // is still honoured), as `policy = "open"` does.
    config.privacy.policy = crate::privacy::Policy::Open;
    config
}

fn demo(args: &DemoArgs) -> Result<(), String> {
    let tmp = TempDir::new(args.keep)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    // Ctrl-C mid-demo: nothing but the temporary directory outlives the
    // process (ptys and sockets close with it), so remove that and go.
    if !args.keep {
        let path = tmp.path.clone();
        runtime.spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                let _ = std::fs::remove_dir_all(&path);
                eprintln!("demo interrupted");
                std::process::exit(130);
            }
        });
    }
    let step = Duration::from_secs(args.step_timeout.max(1));
    let sim_dir = tmp.path.join("sim");

    // 1. The simulated network.
    let profile = crate::hardware::builtin_profile("generic").map_err(|e| e.to_string())?;
    let sim_config = SimConfig {
        dir: sim_dir.clone(),
        numbers: NUMBERS.iter().map(|n| n.to_string()).collect(),
        profile,
        latency: Duration::ZERO,
        pin: None,
        send_time: Duration::ZERO,
        report_delay: Duration::from_millis(300),
        seed: 1,
    };
    let (stop_sim, sim_stopped) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let sim = runtime.spawn(sim_runtime::run(
        sim_config,
        async move {
            let _ = sim_stopped.await;
        },
        move |ready| {
            let _ = ready_tx.send(ready.modems.len());
        },
    ));
    let modems = match ready_rx.recv_timeout(step) {
        Ok(n) => n,
        Err(_) => {
            // Say why: the simulator's own error (a socket path too long,
            // no ptys), not just that it is missing.
            let why = runtime.block_on(async {
                match tokio::time::timeout(Duration::from_secs(1), sim).await {
                    Ok(Ok(Err(e))) => e.to_string(),
                    Ok(Err(e)) => format!("it crashed: {e}"),
                    Ok(Ok(Ok(()))) => "it stopped at once".to_string(),
                    Err(_) => format!("not ready within {step:?}"),
                }
            });
            return Err(format!(
                "the simulator did not start in {}: {why}",
                sim_dir.display()
            ));
        }
    };
    println!(
        "1. A simulated GSM network with {modems} modems is up ({} and {}),",
        NUMBERS[0], NUMBERS[1]
    );
    println!(
        "   each a pseudo-terminal in {} that answers AT commands.",
        sim_dir.display()
    );

    // 2. The daemon, finding the modems like udev links.
    let daemon = runtime
        .block_on(Daemon::start(demo_config(&tmp.path), None))
        .map_err(|e| format!("the daemon did not start: {e}"))?;
    let socket = daemon.socket().to_path_buf();
    let result = steps(&socket, &sim_dir, step);

    // Clean up whatever happened.
    runtime.block_on(async {
        daemon.shutdown(Duration::from_secs(2)).await;
        let _ = stop_sim.send(());
        let _ = tokio::time::timeout(Duration::from_secs(5), sim).await;
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    result?;
    println!();
    println!("What happened: a bus client (this demo) wrote one JSON line to the socket;");
    println!("smsgate stored the message in SQLite before answering, chose a modem, encoded");
    println!("it as an SMS-SUBMIT PDU (3GPP TS 23.040) and sent it with AT+CMGS. The network");
    println!("delivered it to the phone and returned a status report, which smsgate matched");
    println!("to the message. The phone's reply arrived on the modem (+CMTI), was read,");
    println!("committed and only then deleted from the SIM, and reached the bus as an event.");
    println!("Try it on real modems: `smsgate run`, then `smsgate send`, `smsgate inbox`.");
    Ok(())
}

/// The bus-client part: steps 2 to 6.
fn steps(socket: &Path, sim_dir: &Path, step: Duration) -> Result<(), String> {
    fn fail(what: &'static str) -> impl Fn(super::client::ClientError) -> String {
        move |e| format!("{what}: {e}")
    }
    let mut client = Client::connect(socket).map_err(fail("connecting to the daemon"))?;
    println!(
        "2. The daemon listens on {} ({}).",
        socket.display(),
        printable(client.hello()["server"].as_str().unwrap_or("smsgate"))
    );

    // Wait for both modems to be ready.
    let deadline = Instant::now() + step;
    let ready = loop {
        let list = super::modems::fetch(&mut client).map_err(fail("listing modems"))?;
        let ready: Vec<Value> = list.into_iter().filter(|m| m["state"] == "ready").collect();
        if ready.len() == NUMBERS.len() {
            break ready;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {} modems became ready within {step:?}",
                ready.len(),
                NUMBERS.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    for m in &ready {
        println!(
            "   modem {}: IMEI {}, operator {}, signal {}",
            printable(m["name"].as_str().unwrap_or("?")),
            printable(m["imei"].as_str().unwrap_or("?")),
            printable(m["operator"].as_str().unwrap_or("?")),
            super::modems::signal(m)
        );
    }

    // 3. Send, with a delivery report.
    client
        .request("subscribe", json!({"events": ["inbound", "status"]}))
        .map_err(fail("subscribing"))?;
    let text = "Hello from the bus! Reply to this SMS.";
    let request = json!({"to": PHONE, "text": text, "report": true, "key": "demo-1"});
    let mut shown = request.clone();
    shown["op"] = "send".into();
    println!("3. A bus client sends over the socket: {shown}");
    let reply = client.request("send", request).map_err(fail("sending"))?;
    let id = reply["message"]
        .as_i64()
        .ok_or_else(|| format!("the send reply has no message id: {reply}"))?;
    println!(
        "   accepted as message {id} ({} part(s), {})",
        reply["parts"],
        printable(reply["state"].as_str().unwrap_or("?"))
    );
    let sent = wait_event(&mut client, step, "the message to be sent", |ev| {
        ev["event"] == "status"
            && ev["message"] == id
            && matches!(ev["state"].as_str(), Some("sent" | "delivered"))
    })?;
    let modem = printable(sent["parts"][0]["modem"].as_str().unwrap_or("?"));
    println!(
        "   sent through modem {modem} (TP-MR {})",
        sent["parts"][0]["mr"]
    );

    // 4. What the network received.
    let outbox = control::call(sim_dir, &Request::Outbox, step)
        .map_err(|e| format!("reading the simulator's outbox: {e}"))?;
    let entry = outbox
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["to"] == PHONE)
        .cloned()
        .ok_or_else(|| format!("the network never saw a message to {PHONE}: {outbox}"))?;
    println!(
        "4. The network received it: from {} to {}: \"{}\"",
        printable(entry["from"].as_str().unwrap_or("?")),
        PHONE,
        printable(entry["text"].as_str().unwrap_or(""))
    );
    let from = entry["from"].as_str().unwrap_or("").to_string();
    let modem_index = entry["modem"]
        .as_u64()
        .and_then(|k| usize::try_from(k).ok())
        .or_else(|| NUMBERS.iter().position(|n| *n == from))
        .ok_or_else(|| format!("cannot tell which modem sent {entry}"))?;

    // 5. The delivery report.
    let delivered = wait_event(&mut client, step, "the delivery report", |ev| {
        ev["event"] == "status" && ev["message"] == id && ev["state"] == "delivered"
    })?;
    println!(
        "5. Delivery report: message {id} is {} (status report from the network)",
        printable(delivered["state"].as_str().unwrap_or("?"))
    );

    // 6. The phone replies.
    let answer = "Hi gateway, got it!";
    control::call(
        sim_dir,
        &Request::Inject {
            modem: modem_index,
            from: PHONE.into(),
            text: answer.into(),
            parts: None,
            out_of_order: false,
            class: None,
            ucs2: false,
        },
        step,
    )
    .map_err(|e| format!("making the phone reply: {e}"))?;
    println!(
        "6. The phone {PHONE} replies to {}: {answer:?}",
        printable(&from)
    );
    let inbound = wait_event(&mut client, step, "the reply to reach the bus", |ev| {
        ev["event"] == "inbound" && ev["text"] == answer
    })?;
    // JSON escapes C0 but not C1 or bidi controls.
    println!(
        "   inbound event on the bus: {}",
        printable(&inbound.to_string())
    );
    if let Some(m) = inbound["id"].as_i64() {
        client
            .request("ack", json!({"message": m}))
            .map_err(fail("acknowledging"))?;
        println!("   acknowledged: it will not be delivered again");
    }
    Ok(())
}

/// The first event matching `want`, within `step`.
fn wait_event(
    client: &mut Client,
    step: Duration,
    what: &str,
    want: impl Fn(&Value) -> bool,
) -> Result<Value, String> {
    let deadline = Instant::now() + step;
    loop {
        match client.next_event(deadline) {
            Ok(Some(ev)) if want(&ev) => return Ok(ev),
            Ok(Some(ev)) if ev["event"] == "status" && ev["state"] == "failed" => {
                return Err(format!("waiting for {what}: the message failed: {ev}"))
            }
            Ok(Some(_)) => continue,
            Ok(None) => return Err(format!("gave up waiting for {what} after {step:?}")),
            Err(e) => return Err(format!("waiting for {what}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_tmpdir_falls_back_to_a_short_one() {
        let name = "smsgate-demo-1-00000000";
        assert_eq!(temp_base("/var/tmp".into(), name), Path::new("/var/tmp"));
        let long = PathBuf::from(format!("/tmp/{}", "d".repeat(100)));
        assert_eq!(temp_base(long, name), Path::new("/tmp"));
        assert!(
            Path::new("/tmp")
                .join(name)
                .join(deepest_socket())
                .as_os_str()
                .len()
                <= MAX_SOCKET_PATH
        );
    }
}
