//! A minimal blocking DTE: opens a serial device the way a modem daemon
//! does (raw termios, no controlling tty) and exchanges AT text with
//! timeouts. For tests, benchmarks and scripts that drive `smsgate sim`
//! from outside; the daemon uses the async `at` link instead.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

/// Buffered bytes beyond this are an error: a modem that talks this much
/// without the expected answer is broken, and memory must stay bounded.
const MAX_BUFFER: usize = 1024 * 1024;

/// One open serial device.
#[derive(Debug)]
pub struct Dte {
    file: File,
    /// Bytes read but not yet consumed by a `read_until`/`final_result`.
    pub buf: Vec<u8>,
}

/// A final result code (TS 27.007 §4.2, TS 27.005 §3.2.5) ends the answer.
const FINALS: &[&str] = &["\r\nOK\r\n", "\r\nERROR\r\n"];
const FINAL_PREFIXES: &[&str] = &["+CME ERROR:", "+CMS ERROR:"];

impl Dte {
    /// Opens `path` read-write, non-blocking, without making it the
    /// controlling tty, in raw mode.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("open {}: {e}", path.display())))?;
        let mut tio = tcgetattr(file.as_fd())?;
        cfmakeraw(&mut tio);
        tcsetattr(file.as_fd(), SetArg::TCSANOW, &tio)?;
        Ok(Self {
            file,
            buf: Vec::new(),
        })
    }

    /// Writes all of `bytes`, waiting for room when the device is full.
    pub fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match self.file.write(bytes) {
                Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLOUT)];
                    poll(&mut fds, PollTimeout::from(100u16))?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads whatever arrives within `timeout` (at most one read) into
    /// [`Dte::buf`]; returns how many bytes came. An error means the port
    /// is gone (`EIO` after an unplug) or the buffer overflowed.
    pub fn fill(&mut self, timeout: Duration) -> io::Result<usize> {
        let ms = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(self.file.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(ms))? == 0 {
            return Ok(0);
        }
        let mut chunk = [0u8; 4096];
        match self.file.read(&mut chunk) {
            Ok(0) => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "end of file")),
            Ok(n) => {
                if self.buf.len() + n > MAX_BUFFER {
                    return Err(io::Error::other(
                        "more than 1 MiB without the expected answer",
                    ));
                }
                self.buf
                    .extend_from_slice(chunk.get(..n).unwrap_or_default());
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Reads until `done` finds the end of what is wanted in the buffer
    /// (returning its length), then removes and returns that much.
    fn read_while(
        &mut self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[u8]) -> Option<usize>,
    ) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = done(&self.buf) {
                let got: Vec<u8> = self.buf.drain(..end.min(self.buf.len())).collect();
                return Ok(String::from_utf8_lossy(&got).into_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "timed out waiting for {what}; got {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ),
                ));
            }
            self.fill(left.min(Duration::from_millis(200)))?;
        }
    }

    /// Reads until the buffer holds `needle`; returns everything up to and
    /// including it and leaves the rest buffered.
    pub fn read_until(&mut self, needle: &str, timeout: Duration) -> io::Result<String> {
        let n = needle.as_bytes();
        self.read_while(timeout, &format!("{needle:?}"), |b| {
            find(b, n).map(|p| p + n.len())
        })
    }

    /// Reads up to and including the final result code of the command in
    /// flight (`OK`, `ERROR`, `+CME ERROR: ...`, `+CMS ERROR: ...`).
    pub fn final_result(&mut self, timeout: Duration) -> io::Result<String> {
        self.read_while(timeout, "a final result code", final_end)
    }

    /// Sends `cmd` and CR, returns the answer up to its final result.
    pub fn at(&mut self, cmd: &str, timeout: Duration) -> io::Result<String> {
        self.write(format!("{cmd}\r").as_bytes())?;
        self.final_result(timeout)
    }

    /// Sends one PDU (hex, SMSC field first) with `AT+CMGS=<len>`: waits
    /// for the `> ` prompt, writes the PDU and Ctrl-Z (TS 27.005 §3.5.1);
    /// returns the answer.
    pub fn cmgs(
        &mut self,
        pdu_hex: &str,
        tpdu_len: usize,
        timeout: Duration,
    ) -> io::Result<String> {
        self.write(format!("AT+CMGS={tpdu_len}\r").as_bytes())?;
        self.read_until("> ", timeout)?;
        self.write(format!("{pdu_hex}\x1a").as_bytes())?;
        self.final_result(timeout)
    }
}

/// Where the first final result code in `buf` ends.
fn final_end(buf: &[u8]) -> Option<usize> {
    let fixed = FINALS
        .iter()
        .filter_map(|f| find(buf, f.as_bytes()).map(|p| p + f.len()));
    let prefixed = FINAL_PREFIXES.iter().filter_map(|p| {
        let start = find(buf, p.as_bytes())?;
        let rest = buf.get(start..)?;
        find(rest, b"\r\n").map(|nl| start + nl + 2)
    });
    fixed.chain(prefixed).min()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_results_end_where_the_spec_says() {
        assert_eq!(final_end(b"\r\n+CSQ: 20,99\r\n\r\nOK\r\n"), Some(21));
        assert_eq!(final_end(b"\r\nERROR\r\nmore"), Some(9));
        assert_eq!(final_end(b"\r\n+CMS ERROR: 500\r\n"), Some(19));
        assert_eq!(final_end(b"\r\n+CMS ERROR: 5"), None, "incomplete line");
        assert_eq!(final_end(b"\r\n+CMTI: \"ME\",1\r\n"), None);
        // The first one wins.
        assert_eq!(final_end(b"\r\n+CME ERROR: 10\r\n\r\nOK\r\n"), Some(18));
    }
}
