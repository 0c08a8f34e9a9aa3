//! Hotplug: watches `[discovery] dir` (udev's `/dev/smsgate/` links, or a
//! simulator's `DIR`) and reports modems appearing and vanishing.
//!
//! A directory entry is a modem when it is, or links to, a character
//! device (a tty): the simulator's `sim.sock` beside its `modemN` links and
//! dangling links are not. inotify wakes the watcher at once; a periodic
//! full rescan is the safety net for what inotify cannot see (a link's
//! target vanishing, a directory created after start, a lost event). A
//! missing directory is not an error: it is logged and looked for again at
//! every rescan. The pure part is [`scan`] + [`diff`]; the task only feeds
//! them.

use std::collections::BTreeSet;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A modem port appearing or vanishing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// A new tty (link) in the directory: start an actor for it.
    Added(PathBuf),
    /// A tty (link) gone: stop its actor and re-queue its work.
    Removed(PathBuf),
}

/// The tty entries of `dir`, by their path in `dir` (not the link
/// target: the link's name is the stable one). A missing or unreadable
/// directory yields `Err`.
pub fn scan(dir: &Path) -> std::io::Result<BTreeSet<PathBuf>> {
    let mut found = BTreeSet::new();
    for entry in std::fs::read_dir(dir)? {
        let Ok(entry) = entry else { continue };
        let path = entry.path();
        if is_modem(&path) {
            found.insert(path);
        }
    }
    Ok(found)
}

/// Whether `path` is, or links to, a character device (a tty). `metadata`
/// follows links: a dangling link or a socket is not a modem.
pub fn is_modem(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_char_device())
}

/// What changed from `known` to `now`: removals first, so a path that
/// was replaced is stopped before it is started again.
pub fn diff(known: &BTreeSet<PathBuf>, now: &BTreeSet<PathBuf>) -> Vec<Change> {
    known
        .difference(now)
        .map(|p| Change::Removed(p.clone()))
        .chain(now.difference(known).map(|p| Change::Added(p.clone())))
        .collect()
}

/// A running watcher; dropping it does not stop the task, [`stop`](Self::stop) does.
#[derive(Debug)]
pub struct Watcher {
    dir: PathBuf,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Watcher {
    /// Starts watching `dir` on the current runtime; every change goes to
    /// `changes` (the first scan reports what is already there).
    pub fn spawn(dir: PathBuf, rescan: Duration, changes: mpsc::Sender<Change>) -> Watcher {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(watch_dir(dir.clone(), rescan, changes, stopped));
        Watcher { dir, stop, task }
    }

    /// The watched directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the task and waits for it.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// inotify's fd for tokio (nix's `Inotify` has `AsFd` only).
struct Fd(Inotify);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// What the directory watch reports: entries created, deleted, renamed,
/// re-permissioned, and the directory itself going away.
fn watch_flags() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// Events that arrive within this time after the first are handled by
/// one scan (udev creates several links per modem at once).
const SETTLE: Duration = Duration::from_millis(100);

async fn watch_dir(
    dir: PathBuf,
    rescan: Duration,
    changes: mpsc::Sender<Change>,
    mut stopped: watch::Receiver<bool>,
) {
    let inotify = match Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
        .map_err(std::io::Error::from)
        .and_then(|i| {
            // SAFETY: the Inotify (owner of the fd) moves into the AsyncFd,
            // so the descriptor stays open and unchanged for its lifetime.
            unsafe { AsyncFd::register_with_interest(Fd(i), tokio::io::Interest::READABLE) }
                .map_err(std::io::Error::from)
        }) {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e,
                "inotify unavailable; discovery falls back to rescans only");
            None
        }
    };
    let mut wd: Option<WatchDescriptor> = None;
    let mut known = BTreeSet::new();
    let mut missing_logged = false;
    let mut tick = tokio::time::interval(rescan.max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if wd.is_none() {
            if let Some(fd) = &inotify {
                wd = fd.get_ref().0.add_watch(&dir, watch_flags()).ok();
            }
        }
        let now = match scan(&dir) {
            Ok(now) => {
                if missing_logged {
                    tracing::info!(dir = %dir.display(), "discovery directory is back");
                    missing_logged = false;
                }
                now
            }
            Err(e) => {
                if !missing_logged {
                    tracing::info!(dir = %dir.display(), error = %e,
                        "discovery directory not readable; watching for it");
                    missing_logged = true;
                }
                BTreeSet::new()
            }
        };
        for change in diff(&known, &now) {
            tracing::info!(dir = %dir.display(), ?change, "hotplug");
            if changes.send(change).await.is_err() {
                return;
            }
        }
        known = now;

        tokio::select! {
            _ = stopped.changed() => return,
            _ = tick.tick() => {}
            lost = wait_events(inotify.as_ref()) => {
                if lost {
                    // The directory was removed or moved: watch it anew.
                    wd = None;
                }
                tokio::select! {
                    _ = stopped.changed() => return,
                    _ = tokio::time::sleep(SETTLE) => {}
                }
                drain(inotify.as_ref());
            }
        }
    }
}

/// Waits until inotify has events and reads them; `true` when the
/// watched directory itself went away. Without inotify it never returns.
async fn wait_events(inotify: Option<&AsyncFd<Fd>>) -> bool {
    let Some(fd) = inotify else {
        return std::future::pending().await;
    };
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return std::future::pending().await;
        };
        match guard.try_io(|f| f.get_ref().0.read_events().map_err(std::io::Error::from)) {
            Ok(Ok(events)) => {
                return events.iter().any(|e| {
                    e.mask.intersects(
                        AddWatchFlags::IN_DELETE_SELF
                            | AddWatchFlags::IN_MOVE_SELF
                            | AddWatchFlags::IN_IGNORED,
                    )
                })
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "inotify read failed");
                return false;
            }
            Err(_would_block) => continue,
        }
    }
}

/// Discards events already covered by the coming scan.
fn drain(inotify: Option<&AsyncFd<Fd>>) {
    if let Some(fd) = inotify {
        while matches!(fd.get_ref().0.read_events(), Ok(ev) if !ev.is_empty()) {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(paths: &[&str]) -> BTreeSet<PathBuf> {
        paths.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn diff_reports_removals_then_additions() {
        let known = set(&["/d/a", "/d/b"]);
        let now = set(&["/d/b", "/d/c"]);
        assert_eq!(
            diff(&known, &now),
            vec![Change::Removed("/d/a".into()), Change::Added("/d/c".into())]
        );
        assert!(diff(&now, &now).is_empty());
    }

    #[test]
    fn scan_keeps_ttys_and_links_to_them_only() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("file"), b"x").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        let _sock = std::os::unix::net::UnixListener::bind(d.join("sim.sock")).unwrap();
        std::os::unix::fs::symlink("/dev/null", d.join("modem0")).unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling")).unwrap();
        assert_eq!(scan(d).unwrap(), set(&[d.join("modem0").to_str().unwrap()]));
        assert!(scan(&d.join("missing")).is_err());
    }

    #[tokio::test]
    async fn watcher_sees_links_come_and_go_and_a_late_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("late");
        let (tx, mut rx) = mpsc::channel(8);
        // A long rescan period: additions inside an existing dir must come
        // from inotify; the late directory from the rescan.
        let w = Watcher::spawn(dir.clone(), Duration::from_millis(300), tx);
        tokio::time::sleep(Duration::from_millis(100)).await;
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink("/dev/null", dir.join("m0")).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(got.unwrap(), Some(Change::Added(dir.join("m0"))));
        std::os::unix::fs::symlink("/dev/zero", dir.join("m1")).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(got.unwrap(), Some(Change::Added(dir.join("m1"))));
        std::fs::remove_file(dir.join("m0")).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        assert_eq!(got.unwrap(), Some(Change::Removed(dir.join("m0"))));
        w.stop().await;
    }
}
