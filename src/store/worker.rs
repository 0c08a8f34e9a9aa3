//! The store thread: owns the connection, runs requests in group commits.
//!
//! The thread waits for one request, then drains whatever else is queued
//! (up to `max_batch`) and runs them all in one transaction, each inside its
//! own savepoint. A request that fails is rolled back to its savepoint and
//! answered with its error; the others go on. After `COMMIT` succeeds every
//! request is answered; if `COMMIT` fails, every request is answered with
//! [`StoreError::NotCommitted`]. So an answer of success always means
//! "durable", and one fsync covers the whole batch.
//!
//! The transaction statements (`BEGIN`, `SAVEPOINT`, `RELEASE`, `COMMIT`)
//! come from the connection's statement cache: they run several times per
//! request, and parsing them again each time showed up in profiles.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::error::{Result, StoreError};

/// A request on its way to the store thread.
pub(crate) trait Job: Send {
    /// Runs the request on the connection (inside a savepoint).
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Done>;
    /// Answers without running (the batch could not even start).
    fn abort(self: Box<Self>, err: StoreError);
}

/// A request that ran and waits for the commit to be answered.
pub(crate) trait Done: Send {
    /// Whether the request succeeded (its savepoint is kept).
    fn ok(&self) -> bool;
    /// Sends the answer: the request's result if the commit succeeded,
    /// else the commit error.
    fn finish(self: Box<Self>, commit: Option<&Arc<StoreError>>);
}

/// A closure and the channel its answer goes to.
pub(crate) struct Call<T, F> {
    pub f: F,
    pub reply: oneshot::Sender<Result<T>>,
}

struct Ran<T> {
    result: Result<T>,
    reply: oneshot::Sender<Result<T>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> Result<T> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &Connection) -> Box<dyn Done> {
        let Call { f, reply } = *self;
        // A bug in a request must not kill the thread: the other modems
        // and clients still need the store.
        let result = catch_unwind(AssertUnwindSafe(|| f(conn))).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned());
            Err(StoreError::Internal(what))
        });
        Box::new(Ran { result, reply })
    }

    fn abort(self: Box<Self>, err: StoreError) {
        let _ = self.reply.send(Err(err));
    }
}

impl<T: Send + 'static> Done for Ran<T> {
    fn ok(&self) -> bool {
        self.result.is_ok()
    }

    fn finish(self: Box<Self>, commit: Option<&Arc<StoreError>>) {
        let answer = match (self.result, commit) {
            (Ok(_), Some(err)) => Err(StoreError::NotCommitted(Arc::clone(err))),
            (result, _) => result,
        };
        // The caller may have given up waiting; the work is done anyway.
        let _ = self.reply.send(answer);
    }
}

/// A boxed request.
pub(crate) type BoxJob = Box<dyn Job>;

/// Runs a statement without parameters or rows from the statement cache.
fn exec(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Runs `f` on each item inside its own savepoint (within the request's
/// transaction), so a failing item undoes only its own changes and the
/// others stand: one request can carry many independent records (the
/// sender's `mark_sent`s, the dispatcher's bindings) and still cost one
/// commit. Fails as a whole only if the transaction itself broke.
pub(crate) fn each<I, T>(
    conn: &Connection,
    items: impl IntoIterator<Item = I>,
    mut f: impl FnMut(&Connection, I) -> Result<T>,
) -> Result<Vec<Result<T>>> {
    let items = items.into_iter();
    let mut out = Vec::with_capacity(items.size_hint().0);
    for item in items {
        exec(conn, "SAVEPOINT item").map_err(StoreError::sql("savepoint"))?;
        let result = f(conn, item);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back (full disk, I/O
            // error): nothing of this request stands.
            return Err(StoreError::Internal(
                "the transaction was rolled back by SQLite".to_owned(),
            ));
        }
        let step = if result.is_ok() {
            exec(conn, "RELEASE item")
        } else {
            exec(conn, "ROLLBACK TO item").and_then(|()| exec(conn, "RELEASE item"))
        };
        step.map_err(StoreError::sql("savepoint"))?;
        out.push(result);
    }
    Ok(out)
}

/// Runs one group commit. `on_commit` runs after a successful `COMMIT`,
/// before anyone is answered (it publishes the new event cursor, so a
/// caller that got its answer also sees the cursor).
pub(crate) fn run_batch(
    conn: &Connection,
    jobs: impl Iterator<Item = BoxJob>,
    on_commit: impl FnOnce(),
) {
    let mut pending: Vec<Box<dyn Done>> = Vec::new();
    let mut in_tx = false;
    for job in jobs {
        if !in_tx {
            if let Err(e) = exec(conn, "BEGIN IMMEDIATE") {
                job.abort(StoreError::sql("begin transaction")(e));
                continue;
            }
            in_tx = true;
        }
        if let Err(e) = exec(conn, "SAVEPOINT req") {
            job.abort(StoreError::sql("savepoint")(e));
            continue;
        }
        let done = job.run(conn);
        if conn.is_autocommit() {
            // SQLite rolled the whole transaction back by itself (full
            // disk, I/O error): earlier requests of this batch are lost
            // too, so none of them may report success.
            let err = Arc::new(StoreError::Internal(
                "the transaction was rolled back by SQLite after an error in the same batch"
                    .to_owned(),
            ));
            for d in pending.drain(..) {
                d.finish(Some(&err));
            }
            done.finish(Some(&err));
            in_tx = false;
            continue;
        }
        let step = if done.ok() {
            exec(conn, "RELEASE req")
        } else {
            exec(conn, "ROLLBACK TO req").and_then(|()| exec(conn, "RELEASE req"))
        };
        if let Err(e) = step {
            let err = Arc::new(StoreError::sql("savepoint")(e));
            rollback(conn);
            for d in pending.drain(..) {
                d.finish(Some(&err));
            }
            done.finish(Some(&err));
            in_tx = false;
            continue;
        }
        pending.push(done);
    }
    if !in_tx {
        return;
    }
    match exec(conn, "COMMIT") {
        Ok(()) => {
            on_commit();
            for d in pending {
                d.finish(None);
            }
        }
        Err(e) => {
            let err = Arc::new(StoreError::sql("commit")(e));
            tracing::error!(error = %err, requests = pending.len(), "store commit failed");
            rollback(conn);
            for d in pending {
                d.finish(Some(&err));
            }
        }
    }
}

fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        if let Err(e) = exec(conn, "ROLLBACK") {
            tracing::error!(error = %e, "store rollback failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job<T: Send + 'static>(
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> (BoxJob, oneshot::Receiver<Result<T>>) {
        let (reply, rx) = oneshot::channel();
        (Box::new(Call { f, reply }), rx)
    }

    fn insert(v: i64) -> impl FnOnce(&Connection) -> Result<()> + Send + 'static {
        move |c: &Connection| {
            c.execute("INSERT INTO t (v) VALUES (?1)", [v])
                .map(|_| ())
                .map_err(StoreError::sql("insert"))
        }
    }

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("t.db")).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER UNIQUE)")
            .unwrap();
        (dir, conn)
    }

    fn values(conn: &Connection) -> Vec<i64> {
        let mut st = conn.prepare("SELECT v FROM t ORDER BY v").unwrap();
        let rows = st.query_map([], |r| r.get(0)).unwrap();
        rows.map(|r| r.unwrap()).collect()
    }

    #[test]
    fn a_failing_request_does_not_fail_the_others_in_its_batch() {
        let (_dir, conn) = db();
        let (j1, r1) = job(insert(1));
        // Inserts 2 then hits the UNIQUE constraint: its savepoint must
        // undo the 2 as well.
        let (j2, r2) = job(|c: &Connection| {
            insert(2)(c)?;
            insert(1)(c)
        });
        let (j3, r3) = job(|_: &Connection| -> Result<()> { panic!("bug in a request") });
        let (j4, r4) = job(insert(4));
        run_batch(&conn, vec![j1, j2, j3, j4].into_iter(), || {});
        assert!(r1.blocking_recv().unwrap().is_ok());
        assert!(matches!(
            r2.blocking_recv().unwrap(),
            Err(StoreError::Sqlite { .. })
        ));
        assert!(matches!(
            r3.blocking_recv().unwrap(),
            Err(StoreError::Internal(m)) if m.contains("bug in a request")
        ));
        assert!(r4.blocking_recv().unwrap().is_ok());
        assert_eq!(values(&conn), vec![1, 4]);
    }

    #[test]
    fn each_item_fails_alone() {
        let (_dir, conn) = db();
        conn.execute_batch("BEGIN").unwrap();
        // (5, 1) inserts 5, then fails on the repeated 1: the 5 must be
        // undone too, and the items around it stand.
        let results = each(&conn, [(1, 11), (2, 12), (5, 1), (3, 13)], |c, (a, b)| {
            insert(a)(c)?;
            insert(b)(c)
        })
        .unwrap();
        conn.execute_batch("COMMIT").unwrap();
        let ok: Vec<bool> = results.iter().map(Result::is_ok).collect();
        assert_eq!(ok, vec![true, true, false, true]);
        assert_eq!(values(&conn), vec![1, 2, 3, 11, 12, 13]);
    }

    #[test]
    fn a_failed_commit_reports_nothing_as_stored() {
        let (_dir, conn) = db();
        // A deferred foreign key violation only fails at COMMIT.
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE p (id INTEGER PRIMARY KEY);
             CREATE TABLE c (p INTEGER REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);",
        )
        .unwrap();
        let (j1, r1) = job(insert(1));
        let (j2, r2) = job(|c: &Connection| {
            c.execute("INSERT INTO c (p) VALUES (42)", [])
                .map(|_| ())
                .map_err(StoreError::sql("insert"))
        });
        run_batch(&conn, vec![j1, j2].into_iter(), || {});
        assert!(matches!(
            r1.blocking_recv().unwrap(),
            Err(StoreError::NotCommitted(_))
        ));
        assert!(matches!(
            r2.blocking_recv().unwrap(),
            Err(StoreError::NotCommitted(_))
        ));
        assert!(values(&conn).is_empty());
        assert!(conn.is_autocommit());
        // The connection is usable afterwards.
        let (j3, r3) = job(insert(3));
        run_batch(&conn, vec![j3].into_iter(), || {});
        assert!(r3.blocking_recv().unwrap().is_ok());
        assert_eq!(values(&conn), vec![3]);
    }
}
