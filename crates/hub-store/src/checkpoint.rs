//! WAL checkpoints of a SQLite file on a thread of their own.
//!
//! By default SQLite checkpoints in the commit that takes the WAL past 1,000 pages: the writer
//! copies the WAL's pages into the database file and syncs it before it can answer. In an import
//! of 1,000,000 rows that was an eighth of the writer's time, on the one thread every write of
//! the file waits for. Here the writer wakes this thread after each commit and goes on; the
//! thread runs a passive checkpoint (it never waits for, nor blocks, the writer or readers),
//! and once a second when not woken, for the sqlx connections' writes.
//!
//! A passive checkpoint cannot rewind the WAL while the writer keeps appending, so the writer
//! keeps SQLite's own checkpoint as a backstop at a larger size (`BACKSTOP_PAGES`): when it
//! fires, this thread has already copied nearly everything, it costs little, and the next write
//! transaction starts the WAL from the beginning again. Durability is unchanged: a commit is in
//! the WAL, synced, before it is answered, whoever copies it later.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

/// The writer's own checkpoint threshold, in pages (64 MiB of 4 KiB pages); the sqlx
/// connections' too (`SqlStore::connect`).
pub(crate) const BACKSTOP_PAGES: i64 = 16_384;

/// Wakes the checkpoint thread; it ends when this is dropped (with the writer).
#[derive(Debug)]
pub(crate) struct Checkpointer {
    wake: SyncSender<()>,
}

impl Checkpointer {
    /// Starts the thread on its own connection to `path`; `None` (SQLite's own checkpoints
    /// then do the work, as before) when it cannot.
    pub(crate) fn start(path: &Path) -> Option<Checkpointer> {
        let conn = match rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint thread: the writer checkpoints");
                return None;
            }
        };
        // One pending wake-up is enough: a checkpoint copies everything committed before it.
        let (wake, woken) = sync_channel(1);
        let started = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &woken));
        match started {
            Ok(_) => Some(Checkpointer { wake }),
            Err(e) => {
                tracing::warn!(error = %e, "no checkpoint thread: the writer checkpoints");
                None
            }
        }
    }

    /// After a commit: never blocks (a wake-up already pending covers this commit too).
    pub(crate) fn committed(&self) {
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

/// How often the thread checkpoints without being woken: the sqlx connections' few writes
/// (settlements, progress) do not wake it, and a checkpoint with nothing to copy costs little.
const IDLE: Duration = Duration::from_secs(1);

fn run(conn: &rusqlite::Connection, woken: &Receiver<()>) {
    loop {
        match woken.recv_timeout(IDLE) {
            Ok(()) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // PASSIVE: copies what no reader still needs, without waiting for any lock. Busy (the
        // writer's backstop checkpoint is running) is not an error: the next wake-up retries.
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        });
        if let Err(e) = done {
            tracing::warn!(error = %e, "WAL checkpoint failed; the writer's own checkpoint remains");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::Checkpointer;

    /// What the writer commits reaches the database file through the thread alone: the
    /// writer's own checkpoints are off here, so only the thread can copy the WAL.
    #[test]
    fn commits_are_copied_into_the_database_file_by_the_thread() -> rusqlite::Result<()> {
        let dir =
            tempfile::tempdir().map_err(|e| rusqlite::Error::InvalidPath(e.to_string().into()))?;
        let path = dir.path().join("ledger.db");
        let writer = rusqlite::Connection::open(&path)?;
        writer.pragma_update(None, "journal_mode", "WAL")?;
        writer.pragma_update(None, "wal_autocheckpoint", 0)?;
        writer.execute_batch("CREATE TABLE t (v TEXT NOT NULL)")?;
        let before = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let Some(checkpointer) = Checkpointer::start(&path) else {
            panic!("no checkpoint thread");
        };
        writer.execute_batch("BEGIN")?;
        for i in 0..2_000 {
            writer.execute("INSERT INTO t (v) VALUES (?1)", [format!("row {i:>200}")])?;
        }
        writer.execute_batch("COMMIT")?;
        checkpointer.committed();
        let deadline = Instant::now() + Duration::from_secs(10);
        let grown = loop {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            if size > before + 400_000 || Instant::now() > deadline {
                break size;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            grown > before + 400_000,
            "the database file stayed at {grown} bytes (from {before}): nothing was checkpointed"
        );
        // Nothing committed is lost by the copy.
        let reader = rusqlite::Connection::open(&path)?;
        let n: i64 = reader.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?;
        assert_eq!(n, 2_000);
        Ok(())
    }
}
