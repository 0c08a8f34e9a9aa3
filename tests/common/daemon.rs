//! A harness for tests that drive `smsgate run` from outside: a running
//! `smsgate sim` ([`Sim`]), a daemon with its config and state directory
//! ([`Gate`]) and a JSON-lines bus client ([`Client`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_smsgate");

/// Generous: the machine is shared and slow; a pass is usually quick.
pub const WAIT: Duration = Duration::from_secs(30);

/// A number outside the simulated network: messages to it land in the
/// simulator's outbox.
pub const OUTSIDE: &str = "+4915112345678";

pub fn wait_for<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    super::wait_for(WAIT, what, f)
}

pub fn signal(child: &Child, sig: Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
}

pub fn wait_exit(child: &mut Child) -> ExitStatus {
    wait_for("the process to exit", || child.try_wait().unwrap())
}

/// A running `smsgate sim`, killed on drop.
pub struct Sim {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub ready: Value,
}

impl Sim {
    pub fn start(modems: usize, extra: &[&str]) -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let log = File::create(dir.path().join("sim.log")).unwrap();
        let mut child = Command::new(BIN)
            .args(["sim", "--dir"])
            .arg(dir.path())
            .args(["--modems", &modems.to_string()])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let line = super::first_stdout_line(&mut child, WAIT).expect("sim ready line");
        let ready: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(ready["ready"], true, "{line}");
        Sim { child, dir, ready }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn number(&self, k: usize) -> String {
        self.ready["modems"][k]["number"].as_str().unwrap().into()
    }

    pub fn imei(&self, k: usize) -> String {
        self.ready["modems"][k]["imei"].as_str().unwrap().into()
    }

    pub fn ctl(&self, args: &[&str]) -> Vec<Value> {
        let out = Command::new(BIN)
            .args(["sim", "ctl", "--dir"])
            .arg(self.dir())
            .args(args)
            .output()
            .unwrap();
        super::json_lines(&format!("sim ctl {args:?}"), out)
    }

    pub fn outbox(&self) -> Vec<Value> {
        self.ctl(&["outbox"])
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A state directory with a config file for `smsgate run`.
pub struct Gate {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub runs: usize,
}

impl Gate {
    pub fn new() -> Gate {
        Gate {
            dir: tempfile::tempdir().unwrap(),
            child: None,
            runs: 0,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("smsgate.sock")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("smsgate.toml")
    }

    /// Writes the config: socket and store in the temp dir, plus `extra`.
    /// Without a `[privacy]` section in `extra`, `policy = "open"`: the
    /// simulated senders never send JOIN (tests/privacy_daemon.rs covers
    /// the default `opt-in`).
    pub fn write_config(&self, extra: &str) {
        let privacy = if extra.contains("[privacy]") {
            ""
        } else {
            "[privacy]\npolicy = \"open\"\n"
        };
        let text = format!(
            "[bus]\nsocket = \"{}\"\n[store]\npath = \"{}\"\nsynchronous = \"normal\"\n{privacy}{extra}",
            self.socket().display(),
            self.dir.path().join("db/smsgate.db").display(),
        );
        std::fs::write(self.config_path(), text).unwrap();
    }

    /// [`write_config`](Self::write_config) with `[discovery]` watching
    /// `sim`'s directory (rescanned every second), then `extra`.
    pub fn write_watching(&self, sim: &Sim, extra: &str) {
        self.write_config(&format!(
            "[discovery]\ndir = \"{}\"\nrescan_secs = 1\n{extra}",
            sim.dir().display()
        ));
    }

    pub fn log(&self) -> String {
        (0..self.runs)
            .map(|i| {
                std::fs::read_to_string(self.dir.path().join(format!("run{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n---- restart ----\n")
    }

    /// Starts `smsgate run` and waits until the socket answers `hello`.
    /// `env` may override `SMSGATE_LOG` (default: daemon debug logs).
    pub fn start(&mut self, env: &[(&str, &str)]) {
        self.start_via(&[], env);
    }

    /// [`start`](Self::start) through `wrapper`, a program and its
    /// arguments that get the daemon's command line after them (a shell
    /// setting limits before it execs the daemon, say).
    pub fn start_via(&mut self, wrapper: &[&str], env: &[(&str, &str)]) {
        let log = File::create(self.dir.path().join(format!("run{}.log", self.runs))).unwrap();
        self.runs += 1;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = command
            .args(["run", "--config"])
            .arg(self.config_path())
            .env_remove("NOTIFY_SOCKET")
            .env("SMSGATE_LOG", "info,smsgate::daemon=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let socket = self.socket();
        wait_for("the daemon's socket", || {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited with {st}:\n{}", self.log());
            }
            Client::connect(&socket).ok()
        });
    }

    pub fn client(&self) -> Client {
        Client::connect(&self.socket()).unwrap()
    }

    pub fn signal(&self, sig: Signal) {
        signal(self.child.as_ref().unwrap(), sig);
    }

    pub fn stop(&mut self, sig: Signal) -> ExitStatus {
        self.signal(sig);
        let mut child = self.child.take().unwrap();
        wait_exit(&mut child)
    }

    /// The `modems` op's list.
    pub fn modems(&self) -> Vec<Value> {
        let reply = self.client().request(json!({"op": "modems"}));
        reply["modems"].as_array().cloned().unwrap_or_default()
    }

    pub fn wait_modems_ready(&self, n: usize) -> Vec<Value> {
        wait_for(&format!("{n} ready modems"), || {
            let m = self.modems();
            (m.len() == n && m.iter().all(|m| m["state"] == "ready")).then_some(m)
        })
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("daemon log:\n{}", self.log());
        }
    }
}

/// A JSON-lines client of the bus.
pub struct Client {
    writer: UnixStream,
    reader: BufReader<UnixStream>,
}

impl Client {
    pub fn connect(path: &Path) -> std::io::Result<Client> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(WAIT))?;
        let mut c = Client {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        };
        let hello = c.try_request(json!({"op": "hello", "client": "tests/daemon"}))?;
        if hello["ok"] != true {
            return Err(std::io::Error::other(hello.to_string()));
        }
        Ok(c)
    }

    pub fn try_request(&mut self, req: Value) -> std::io::Result<Value> {
        writeln!(self.writer, "{req}")?;
        self.read()
    }

    pub fn read(&mut self) -> std::io::Result<Value> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }

    pub fn request(&mut self, req: Value) -> Value {
        self.try_request(req).unwrap()
    }

    pub fn send(&mut self, to: &str, text: &str) -> i64 {
        let r = self.request(json!({"op": "send", "to": to, "text": text}));
        assert_eq!(r["ok"], true, "{r}");
        r["message"].as_i64().unwrap()
    }

    pub fn state(&mut self, message: i64) -> String {
        let r = self.request(json!({"op": "status", "message": message}));
        r["state"].as_str().unwrap_or_default().to_string()
    }
}
