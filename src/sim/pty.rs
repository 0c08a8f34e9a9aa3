//! The pseudo-terminal that stands in for a modem's USB serial port.
//!
//! The simulator owns the master side and reads it with a non-blocking
//! [`AsyncFd`]. It also keeps its own descriptor of the slave side open for
//! the pty's whole life: when the last slave descriptor closes, Linux makes
//! the master report `EIO`/hang-up, and a DTE that closes and reopens the
//! device (Kannel's at2 driver does this right after detection) would
//! otherwise find a dead modem. The slave is linked at a stable path
//! (`DIR/modemK`) because its `/dev/pts/N` node can change on replug.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use tokio::io::unix::AsyncFd;

use super::SimError;

/// Largest read from the master in one go. A DTE writes commands of a few
/// hundred bytes at most; this only bounds one syscall, not the stream.
const READ_CHUNK: usize = 4096;

/// One open pseudo-terminal and the link that points at its slave.
#[derive(Debug)]
pub struct SimPty {
    /// The master side, non-blocking, registered with the tokio reactor.
    master: AsyncFd<OwnedFd>,
    /// Our own descriptor of the slave: keeps the pty alive between a DTE's
    /// close and reopen. Never read or written.
    _slave: OwnedFd,
    /// The slave's device node (`/dev/pts/N`).
    tty: PathBuf,
    /// The symlink we created (`DIR/modemK`), removed on drop.
    link: PathBuf,
}

impl SimPty {
    /// Opens a new pty in raw mode and links its slave at `link`, replacing
    /// a stale symlink there (but never a regular file or directory: that is
    /// someone else's data).
    pub fn open(link: &Path) -> Result<Self, SimError> {
        let pty = nix::pty::openpty(None, None).map_err(|e| SimError::Pty {
            what: "openpty",
            source: io::Error::from(e),
        })?;
        // Raw mode on the slave: no echo, no CR/LF translation, no signals.
        // With ECHO on, the line discipline would loop every byte the modem
        // writes straight back into the modem's input.
        let mut tio = tcgetattr(pty.slave.as_fd()).map_err(|e| SimError::Pty {
            what: "tcgetattr",
            source: e.into(),
        })?;
        cfmakeraw(&mut tio);
        tcsetattr(pty.slave.as_fd(), SetArg::TCSANOW, &tio).map_err(|e| SimError::Pty {
            what: "tcsetattr",
            source: e.into(),
        })?;
        let tty = nix::unistd::ttyname(pty.slave.as_fd()).map_err(|e| SimError::Pty {
            what: "ttyname",
            source: e.into(),
        })?;
        let flags =
            fcntl(pty.master.as_raw_fd(), FcntlArg::F_GETFL).map_err(|e| SimError::Pty {
                what: "fcntl(F_GETFL)",
                source: e.into(),
            })?;
        fcntl(
            pty.master.as_raw_fd(),
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
        )
        .map_err(|e| SimError::Pty {
            what: "fcntl(O_NONBLOCK)",
            source: e.into(),
        })?;
        // SAFETY: the OwnedFd moves into the AsyncFd, so the descriptor stays
        // open (and is not closed by anyone else) for the AsyncFd's lifetime.
        let master = unsafe { AsyncFd::register(pty.master) }.map_err(|e| SimError::Pty {
            what: "register with the reactor",
            source: e.into(),
        })?;
        replace_symlink(&tty, link)?;
        Ok(Self {
            master,
            _slave: pty.slave,
            tty,
            link: link.to_path_buf(),
        })
    }

    /// The slave's device node (`/dev/pts/N`).
    pub fn tty(&self) -> &Path {
        &self.tty
    }

    /// The link pointing at the slave.
    pub fn link(&self) -> &Path {
        &self.link
    }

    /// Waits until the DTE wrote something and returns it (never empty).
    /// Takes `&self` so that it can race a write in one `select!`.
    pub async fn read(&self) -> io::Result<Vec<u8>> {
        loop {
            let mut guard = self.master.readable().await?;
            let mut buf = vec![0u8; READ_CHUNK];
            match guard
                .try_io(|fd| nix::unistd::read(fd.as_raw_fd(), &mut buf).map_err(io::Error::from))
            {
                Ok(Ok(0)) => {
                    // A master reads 0 only if the slave side is gone, which
                    // our own slave descriptor prevents; do not spin on it.
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "pty master reported end of file",
                    ));
                }
                Ok(Ok(n)) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    /// Waits until some of `bytes` can be written and returns how many were.
    pub async fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        loop {
            let mut guard = self.master.writable().await?;
            match guard
                .try_io(|fd| nix::unistd::write(fd.get_ref(), bytes).map_err(io::Error::from))
            {
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

impl Drop for SimPty {
    fn drop(&mut self) {
        // Only remove the link if it still points at our node: a replug may
        // already have re-pointed it at a newer pty.
        if std::fs::read_link(&self.link).is_ok_and(|t| t == self.tty) {
            if let Err(e) = std::fs::remove_file(&self.link) {
                tracing::warn!(link = %self.link.display(), error = %e, "cannot remove link");
            }
        }
    }
}

/// Points `link` at `target`, replacing an existing symlink. Refuses to
/// replace anything that is not a symlink.
fn replace_symlink(target: &Path, link: &Path) -> Result<(), SimError> {
    match std::fs::symlink_metadata(link) {
        Ok(m) if m.file_type().is_symlink() => {
            std::fs::remove_file(link).map_err(|source| SimError::Link {
                link: link.to_path_buf(),
                source,
            })?;
        }
        Ok(_) => {
            return Err(SimError::Link {
                link: link.to_path_buf(),
                source: io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    "exists and is not a symlink; refusing to replace it",
                ),
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(SimError::Link {
                link: link.to_path_buf(),
                source,
            })
        }
    }
    std::os::unix::fs::symlink(target, link).map_err(|source| SimError::Link {
        link: link.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    #[tokio::test]
    async fn bytes_flow_both_ways_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("modem0");
        let pty = SimPty::open(&link).unwrap();
        assert_eq!(std::fs::read_link(&link).unwrap(), pty.tty());
        for round in 0..2 {
            let mut dev = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&link)
                .unwrap();
            dev.write_all(b"AT\r").unwrap();
            let got = tokio::time::timeout(Duration::from_secs(5), pty.read())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got, b"AT\r", "round {round}");
            let n = pty.write(b"\r\nOK\r\n").await.unwrap();
            assert_eq!(n, 6);
            let mut buf = [0u8; 6];
            dev.read_exact(&mut buf).unwrap();
            assert_eq!(&buf, b"\r\nOK\r\n");
            drop(dev); // Kannel-style close; the next round reopens
        }
        drop(pty);
        assert!(
            std::fs::symlink_metadata(&link).is_err(),
            "link removed on drop"
        );
    }

    #[test]
    fn refuses_to_replace_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("modem0");
        std::fs::write(&link, b"precious").unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let err = rt.block_on(async { SimPty::open(&link).unwrap_err() });
        assert!(err.to_string().contains("not a symlink"), "{err}");
        assert_eq!(std::fs::read(&link).unwrap(), b"precious");
    }
}
