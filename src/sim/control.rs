//! The control socket `DIR/sim.sock`: JSON Lines, one request per line,
//! one response line per request.
//!
//! Request: `{"op":"inject","modem":0,"from":"+4915112345678","text":"hi"}`.
//! Response: `{"ok":true,"result":...}` (an array for list operations) or
//! `{"ok":false,"error":"..."}`. The full list is in `docs/simulator.md`.
//! A bad request gets an error response and changes nothing; the
//! connection stays open.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader as TokioBufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{watch, Semaphore};

use super::network::{Injection, Network};
use super::runtime::{FaultOp, ModemInfo};
use super::SimError;

/// Longest request line accepted; a longer one is answered with an error
/// and the connection is closed (it cannot be re-synchronised cheaply).
pub const MAX_REQUEST: usize = 64 * 1024;

/// Concurrent control connections.
const MAX_CONNECTIONS: usize = 32;

/// The socket's file name inside the simulator directory.
pub const SOCKET_NAME: &str = "sim.sock";

/// One control request: a line on the socket, or `smsgate sim ctl <op>`
/// (the same type parses both, so the two cannot drift apart).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, clap::Subcommand)]
#[serde(tag = "op", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Request {
    /// One line per modem: index, number, IMEI, ICCID, link, state, storage, faults.
    Modems,
    /// Deliver a message from the outside world to a modem; prints it.
    Inject {
        /// Target modem index K (as in DIR/modemK).
        #[arg(long)]
        modem: usize,
        /// The sender's number.
        #[arg(long)]
        from: String,
        /// The message text.
        #[arg(long)]
        text: String,
        /// Force a multipart message of this many parts.
        #[arg(long)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parts: Option<u8>,
        /// Deliver the parts last-first.
        #[arg(long)]
        #[serde(default)]
        out_of_order: bool,
        /// Message class (only 0, flash, is supported).
        #[arg(long)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        class: Option<u8>,
        /// Encode in UCS-2 even when GSM 7-bit would do.
        #[arg(long)]
        #[serde(default)]
        ucs2: bool,
    },
    /// One line per message the network received from the modems.
    Outbox,
    /// One line per message stored on a modem (nothing is marked read).
    Inbox {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
    },
    /// Pull the plug: the pty and the link go away (--off: replug).
    Unplug {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
        /// Clear this fault instead of setting it.
        #[arg(long)]
        #[serde(default)]
        off: bool,
    },
    /// Plug back in: a new pty at a new node, the link recreated, the modem boots.
    Replug {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
    },
    /// The modem stops answering (--off: answers again).
    Hang {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
        /// Clear this fault instead of setting it.
        #[arg(long)]
        #[serde(default)]
        off: bool,
    },
    /// Random bytes and broken lines to the DTE (--off: stop).
    Garbage {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
        /// Clear this fault instead of setting it.
        #[arg(long)]
        #[serde(default)]
        off: bool,
    },
    /// Answer AT+CMGS with +CMS ERROR: CODE (--off: stop).
    CmsError {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
        /// The +CMS ERROR code (3GPP TS 27.005 §3.2.5), e.g. 500; required unless --off.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
        /// Probability of the error per send, 0..1 [default: 1].
        #[arg(long)]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rate: Option<f64>,
        /// Clear this fault instead of setting it.
        #[arg(long)]
        #[serde(default)]
        off: bool,
    },
    /// Answer AT+CMGS with a plain ERROR, as a modem that ignores +CMEE (--off: stop).
    SendError {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
        /// Clear this fault instead of setting it.
        #[arg(long)]
        #[serde(default)]
        off: bool,
    },
    /// The next AT+CMGS is sent, then the modem hangs before answering (hang --off resumes; --off: disarm).
    HangAfterSend {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
        /// Clear this fault instead of setting it.
        #[arg(long)]
        #[serde(default)]
        off: bool,
    },
    /// Storage full: +CMS ERROR: 322, inbound held by the network (--off: stop).
    Full {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
        /// Clear this fault instead of setting it.
        #[arg(long)]
        #[serde(default)]
        off: bool,
    },
    /// The network denies registration: +CREG stat 3 (--off: registers again).
    Deny {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
        /// Clear this fault instead of setting it.
        #[arg(long)]
        #[serde(default)]
        off: bool,
    },
    /// Reboot the modem (as AT+CFUN=1,1).
    Reboot {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
    },
    /// Clear every fault of the modem (replugging it if unplugged).
    Clear {
        /// Modem index K.
        #[arg(long)]
        modem: usize,
    },
}

/// A modem's line: what its task knows plus what the network holds for it.
fn modem_line(network: &Network, info: ModemInfo) -> Result<Value, String> {
    let waiting = network.waiting(info.modem);
    let mut v = serde_json::to_value(info).map_err(|e| e.to_string())?;
    if let Some(obj) = v.as_object_mut() {
        obj.insert("waiting".into(), waiting.into());
    }
    Ok(v)
}

/// Answers one request.
pub async fn handle(network: &Network, req: Request) -> Result<Value, String> {
    let fault = |modem: usize, op: FaultOp| async move {
        let info = network
            .modem(modem)?
            .fault(op)
            .await
            .map_err(|e| e.to_string())?;
        modem_line(network, info)
    };
    match req {
        Request::Modems => {
            let mut out = Vec::new();
            for m in network.modems() {
                out.push(modem_line(
                    network,
                    m.info().await.map_err(|e| e.to_string())?,
                )?);
            }
            Ok(Value::Array(out))
        }
        Request::Outbox => serde_json::to_value(network.outbox()).map_err(|e| e.to_string()),
        Request::Inbox { modem } => {
            let entries = network
                .modem(modem)?
                .inbox()
                .await
                .map_err(|e| e.to_string())?;
            serde_json::to_value(entries).map_err(|e| e.to_string())
        }
        Request::Inject {
            modem,
            from,
            text,
            parts,
            out_of_order,
            class,
            ucs2,
        } => {
            let class0 = match class {
                None => false,
                Some(0) => true,
                Some(c) => return Err(format!("class {c} is not supported (only class 0, flash)")),
            };
            if let Some(p) = parts {
                if p == 0 {
                    return Err("parts must be at least 1".into());
                }
                if usize::from(p) > text.chars().count().max(1) {
                    return Err(format!(
                        "cannot cut {} characters into {p} parts",
                        text.chars().count()
                    ));
                }
            }
            let inj = Injection {
                modem,
                from,
                text,
                parts,
                out_of_order,
                class0,
                ucs2,
            };
            let injected = network.inject(&inj).await?;
            serde_json::to_value(injected).map_err(|e| e.to_string())
        }
        Request::Unplug { modem, off } => {
            fault(
                modem,
                if off {
                    FaultOp::Replug
                } else {
                    FaultOp::Unplug
                },
            )
            .await
        }
        Request::Replug { modem } => fault(modem, FaultOp::Replug).await,
        Request::Hang { modem, off } => fault(modem, FaultOp::Hang(!off)).await,
        Request::Garbage { modem, off } => fault(modem, FaultOp::Garbage(!off)).await,
        Request::CmsError {
            modem,
            code,
            rate,
            off,
        } => {
            if off {
                return fault(modem, FaultOp::CmsError(None)).await;
            }
            let code = code.ok_or("cms-error needs a code (e.g. 500)")?;
            if code > 999 {
                return Err(format!("+CMS ERROR code {code} is out of range 0..=999"));
            }
            let rate = rate.unwrap_or(1.0);
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("rate {rate} is out of range 0..=1"));
            }
            fault(modem, FaultOp::CmsError(Some((code, rate)))).await
        }
        Request::Full { modem, off } => fault(modem, FaultOp::Full(!off)).await,
        Request::SendError { modem, off } => fault(modem, FaultOp::SendError(!off)).await,
        Request::HangAfterSend { modem, off } => fault(modem, FaultOp::HangAfterSend(!off)).await,
        Request::Deny { modem, off } => fault(modem, FaultOp::Deny(!off)).await,
        Request::Reboot { modem } => fault(modem, FaultOp::Reboot).await,
        Request::Clear { modem } => fault(modem, FaultOp::Clear).await,
    }
}

/// Parses and answers one request line.
pub async fn answer_line(network: &Network, line: &[u8]) -> Value {
    let result = match serde_json::from_slice::<Request>(line) {
        Ok(req) => {
            tracing::debug!(request = ?req, "control request");
            handle(network, req).await
        }
        Err(e) => Err(format!("bad request: {e}")),
    };
    match result {
        Ok(result) => json!({ "ok": true, "result": result }),
        Err(error) => json!({ "ok": false, "error": error }),
    }
}

/// Binds `path`, removing a stale socket left by a dead simulator. Refuses
/// if a live simulator answers there or if the path is not a socket.
pub fn bind(path: &Path) -> Result<UnixListener, SimError> {
    use std::os::unix::fs::FileTypeExt;
    let err = |source| SimError::Socket {
        path: path.to_path_buf(),
        source,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            if StdUnixStream::connect(path).is_ok() {
                return Err(err(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another simulator is running on this directory",
                )));
            }
            std::fs::remove_file(path).map_err(err)?;
        }
        Ok(_) => {
            return Err(err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "exists and is not a socket; refusing to replace it",
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    UnixListener::bind(path).map_err(err)
}

/// Serves control connections until `shutdown` turns true.
pub async fn serve(listener: UnixListener, network: Network, mut shutdown: watch::Receiver<bool>) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "control socket accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            tracing::warn!("too many control connections; refusing one");
            continue;
        };
        let network = network.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                r = connection(stream, &network) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "control connection ended");
                    }
                }
                _ = shutdown.wait_for(|s| *s) => {}
            }
            drop(permit);
        });
    }
}

async fn connection(stream: UnixStream, network: &Network) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut r = TokioBufReader::new(r);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = (&mut r)
            .take(MAX_REQUEST as u64 + 1)
            .read_until(b'\n', &mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        if line.len() > MAX_REQUEST {
            let resp =
                json!({ "ok": false, "error": format!("request longer than {MAX_REQUEST} bytes") });
            w.write_all(format!("{resp}\n").as_bytes()).await?;
            return Ok(());
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let resp = answer_line(network, &line).await;
        w.write_all(format!("{resp}\n").as_bytes()).await?;
    }
}

/// Why a control call failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// No simulator answers at the socket.
    #[error("cannot reach the simulator at {}: {source} (is `smsgate sim --dir` running?)", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed mid-way.
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    /// The answer was not the expected JSON.
    #[error("bad answer from the simulator: {0}")]
    BadAnswer(String),
    /// The simulator refused the request.
    #[error("{0}")]
    Refused(String),
}

/// Sends one request to the simulator in `dir` and returns its result
/// (blocking; used by `smsgate sim ctl`).
pub fn call(dir: &Path, req: &Request, timeout: Duration) -> Result<Value, CtlError> {
    let path = dir.join(SOCKET_NAME);
    let mut stream =
        StdUnixStream::connect(&path).map_err(|source| CtlError::Connect { path, source })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let line = serde_json::to_string(req).map_err(|e| CtlError::BadAnswer(e.to_string()))?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = Vec::new();
    BufReader::new(stream.take(MAX_ANSWER)).read_until(b'\n', &mut answer)?;
    let v: Value =
        serde_json::from_slice(&answer).map_err(|e| CtlError::BadAnswer(e.to_string()))?;
    match v.get("ok").and_then(Value::as_bool) {
        Some(true) => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
        Some(false) => Err(CtlError::Refused(
            v.get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown error")
                .to_string(),
        )),
        None => Err(CtlError::BadAnswer(v.to_string())),
    }
}

/// Largest answer `call` reads (an outbox of 10 000 messages fits).
const MAX_ANSWER: u64 = 64 * 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_parse_from_the_documented_json() {
        let r: Request =
            serde_json::from_str(r#"{"op":"cms-error","modem":1,"code":500,"rate":0.5}"#).unwrap();
        assert_eq!(
            r,
            Request::CmsError {
                modem: 1,
                code: Some(500),
                rate: Some(0.5),
                off: false
            }
        );
        let r: Request = serde_json::from_str(
            r#"{"op":"inject","modem":0,"from":"+1","text":"hi","parts":2,"out_of_order":true}"#,
        )
        .unwrap();
        assert!(matches!(
            r,
            Request::Inject {
                parts: Some(2),
                out_of_order: true,
                ..
            }
        ));
        let r: Request = serde_json::from_str(r#"{"op":"hang","modem":0,"off":true}"#).unwrap();
        assert_eq!(
            r,
            Request::Hang {
                modem: 0,
                off: true
            }
        );
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"op":"modems"}"#).unwrap(),
            Request::Modems
        );
        for bad in [
            r#"{"op":"explode"}"#,
            r#"{"op":"hang"}"#,
            r#"{"op":"hang","modem":-1}"#,
            r#"{"op":"hang","modem":0,"bogus":1}"#,
            r#"{"modem":0}"#,
            "not json",
        ] {
            assert!(serde_json::from_str::<Request>(bad).is_err(), "{bad}");
        }
    }

    fn empty_network() -> (Network, watch::Sender<bool>) {
        let (tx, rx) = watch::channel(false);
        (Network::new(Vec::new(), Duration::from_millis(10), rx), tx)
    }

    #[tokio::test]
    async fn bad_requests_get_an_error_answer() {
        let (net, _stop) = empty_network();
        for (line, needle) in [
            (&b"{\"op\":\"hang\",\"modem\":3}"[..], "no modem 3"),
            (b"{\"op\":\"explode\"}", "bad request"),
            (b"\xff\xfe", "bad request"),
            (b"{\"op\":\"cms-error\",\"modem\":0}", "needs a code"),
            (
                b"{\"op\":\"cms-error\",\"modem\":0,\"code\":5000}",
                "out of range",
            ),
            (
                b"{\"op\":\"inject\",\"modem\":0,\"from\":\"+1\",\"text\":\"ab\",\"parts\":3}",
                "cannot cut",
            ),
            (
                b"{\"op\":\"inject\",\"modem\":0,\"from\":\"+1\",\"text\":\"ab\",\"class\":1}",
                "class 1",
            ),
        ] {
            let v = answer_line(&net, line).await;
            assert_eq!(v["ok"], false, "{v}");
            let err = v["error"].as_str().unwrap();
            assert!(err.contains(needle), "{err}");
        }
        let v = answer_line(&net, b"{\"op\":\"outbox\"}").await;
        assert_eq!(v, json!({"ok": true, "result": []}));
    }

    proptest::proptest! {
        #[test]
        fn any_line_gets_an_answer_and_never_panics(line in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let (net, _stop) = rt.block_on(async { empty_network() });
            let v = rt.block_on(answer_line(&net, &line));
            proptest::prop_assert!(v["ok"].is_boolean());
        }
    }

    #[test]
    fn requests_round_trip_through_json() {
        let r = Request::Inject {
            modem: 1,
            from: "+4915112345678".into(),
            text: "héllo".into(),
            parts: Some(3),
            out_of_order: true,
            class: Some(0),
            ucs2: true,
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.starts_with(r#"{"op":"inject""#), "{s}");
        assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), r);
    }
}
