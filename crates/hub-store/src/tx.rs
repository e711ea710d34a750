//! The ledger's write transaction on a native driver: on SQLite files a rusqlite connection of
//! the same file called in place, on PostgreSQL sqlx's own PostgreSQL driver; sqlx's `Any`
//! connection where neither applies (in-memory SQLite), and for the callers that hold one.
//!
//! sqlx's SQLite driver runs each statement on a worker thread and converts every argument and
//! row through `Any`; a ledger batch of 1,000 changes is some 300 statements, and a profile of
//! `ledger-batch` spent as much CPU in that machinery as in SQLite itself. The native writer
//! prepares each statement once (rusqlite's statement cache) and binds in place. It is used
//! under the store's write lock, so it takes turns with every other writer exactly as the sqlx
//! connections do, with the same pragmas (WAL, `synchronous = FULL`).

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use sqlx::Row as _;
use sqlx::any::AnyRow;

use hub_core::chain::ChainHash;

use crate::checkpoint::{self, Checkpointer};
use crate::sql::positional;
use crate::{Backend, Result, StoreError};

/// A statement's argument, typed even when null (PostgreSQL needs the type of a null).
#[derive(Debug, Clone)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Text(Option<Cow<'a, str>>),
    Bytes(Option<Cow<'a, [u8]>>),
}

impl<'a> From<&'a ChainHash> for Arg<'a> {
    fn from(v: &'a ChainHash) -> Self {
        Arg::Bytes(Some(Cow::Borrowed(v.as_bytes())))
    }
}

impl From<ChainHash> for Arg<'_> {
    fn from(v: ChainHash) -> Self {
        Arg::Bytes(Some(Cow::Owned(v.as_bytes().to_vec())))
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}

impl From<Option<i64>> for Arg<'_> {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Some(Cow::Borrowed(v)))
    }
}

impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Arg::Text(v.map(Cow::Borrowed))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Some(Cow::Owned(v)))
    }
}

impl From<Option<String>> for Arg<'_> {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v.map(Cow::Owned))
    }
}

impl<'a> From<&'a String> for Arg<'a> {
    fn from(v: &'a String) -> Self {
        Arg::Text(Some(Cow::Borrowed(v.as_str())))
    }
}

impl<'a> From<&'a Option<String>> for Arg<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Arg::Text(v.as_deref().map(Cow::Borrowed))
    }
}

impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Arg::Int(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Integer(*v)),
            Arg::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Arg::Bytes(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            Arg::Int(None) | Arg::Text(None) | Arg::Bytes(None) => {
                ToSqlOutput::Borrowed(ValueRef::Null)
            }
        })
    }
}

/// The columns of a row, read by name: a decoder works on rows of either driver.
pub(crate) trait Columns {
    fn int(&self, column: &str) -> Result<i64>;
    fn opt_int(&self, column: &str) -> Result<Option<i64>>;
    fn text(&self, column: &str) -> Result<String>;
    fn opt_text(&self, column: &str) -> Result<Option<String>>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>>;

    /// The stored value of a hash column as bytes, also when it is text (altered by hand).
    fn stored_bytes(&self, column: &str) -> Result<Vec<u8>> {
        self.bytes(column)
            .or_else(|_| self.text(column).map(String::into_bytes))
    }

    /// A hash of the chain, stored as its 32 bytes.
    fn chain_hash(&self, column: &str) -> Result<ChainHash> {
        let bytes = self.bytes(column)?;
        ChainHash::from_bytes(&bytes).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "{column}: 32 bytes expected, found {}",
                bytes.len()
            ))
        })
    }
}

/// Columns of sqlx's rows, read with `try_get`.
macro_rules! sqlx_columns {
    ($($row:ty),*) => {$(
        impl Columns for $row {
            fn int(&self, column: &str) -> Result<i64> {
                Ok(self.try_get(column)?)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>> {
                Ok(self.try_get(column)?)
            }
            fn text(&self, column: &str) -> Result<String> {
                Ok(self.try_get(column)?)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>> {
                Ok(self.try_get(column)?)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>> {
                Ok(self.try_get(column)?)
            }
        }
    )*};
}

sqlx_columns!(AnyRow, sqlx::postgres::PgRow);

/// A row read by the native writer: the statement's column names and the row's values.
#[derive(Debug, Clone)]
pub(crate) struct LiteRow {
    names: Arc<[String]>,
    values: Vec<rusqlite::types::Value>,
}

impl LiteRow {
    fn value(&self, column: &str) -> Result<&rusqlite::types::Value> {
        self.names
            .iter()
            .position(|n| n == column)
            .and_then(|i| self.values.get(i))
            .ok_or_else(|| StoreError::Sqlite(format!("no column {column:?} in the row")))
    }
}

fn wrong_type(column: &str, v: &rusqlite::types::Value, wanted: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "{column}: {wanted} expected, found {:?}",
        v.data_type()
    ))
}

impl Columns for LiteRow {
    fn int(&self, column: &str) -> Result<i64> {
        self.opt_int(column)?
            .ok_or_else(|| StoreError::Corrupt(format!("{column}: unexpected null")))
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        use rusqlite::types::Value;
        match self.value(column)? {
            Value::Integer(i) => Ok(Some(*i)),
            Value::Null => Ok(None),
            other => Err(wrong_type(column, other, "an integer")),
        }
    }
    fn text(&self, column: &str) -> Result<String> {
        self.opt_text(column)?
            .ok_or_else(|| StoreError::Corrupt(format!("{column}: unexpected null")))
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        use rusqlite::types::Value;
        match self.value(column)? {
            Value::Text(s) => Ok(Some(s.clone())),
            Value::Null => Ok(None),
            other => Err(wrong_type(column, other, "a text")),
        }
    }
    fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        use rusqlite::types::Value;
        match self.value(column)? {
            Value::Blob(b) => Ok(b.clone()),
            other => Err(wrong_type(column, other, "a blob")),
        }
    }
}

/// A row of any of the drivers.
pub(crate) enum Row {
    Any(AnyRow),
    Lite(LiteRow),
    Pg(sqlx::postgres::PgRow),
}

impl Columns for Row {
    fn int(&self, column: &str) -> Result<i64> {
        match self {
            Row::Any(r) => r.int(column),
            Row::Lite(r) => r.int(column),
            Row::Pg(r) => r.int(column),
        }
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>> {
        match self {
            Row::Any(r) => r.opt_int(column),
            Row::Lite(r) => r.opt_int(column),
            Row::Pg(r) => r.opt_int(column),
        }
    }
    fn text(&self, column: &str) -> Result<String> {
        match self {
            Row::Any(r) => r.text(column),
            Row::Lite(r) => r.text(column),
            Row::Pg(r) => r.text(column),
        }
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>> {
        match self {
            Row::Any(r) => r.opt_text(column),
            Row::Lite(r) => r.opt_text(column),
            Row::Pg(r) => r.opt_text(column),
        }
    }
    fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        match self {
            Row::Any(r) => r.bytes(column),
            Row::Lite(r) => r.bytes(column),
            Row::Pg(r) => r.bytes(column),
        }
    }
}

/// An open write transaction's connection.
pub(crate) enum Tx<'c> {
    Any(&'c mut sqlx::AnyConnection, Backend),
    Lite(&'c mut rusqlite::Connection),
    Pg(&'c mut sqlx::PgConnection),
}

impl Tx<'_> {
    /// Runs a statement written with `$1, $2, …` placeholders; the rows it changed.
    pub(crate) async fn execute(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<u64> {
        match self {
            Tx::Any(conn, backend) => Ok(any_query(*backend, sql, args)
                .execute(&mut **conn)
                .await?
                .rows_affected()),
            Tx::Lite(conn) => {
                let mut stmt = lite_statement(conn, sql, args)?;
                Ok(stmt.raw_execute()? as u64)
            }
            Tx::Pg(conn) => Ok(pg_query(sql, args)
                .execute(&mut **conn)
                .await?
                .rows_affected()),
        }
    }

    /// The rows a query selects.
    pub(crate) async fn fetch(&mut self, sql: &str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        match self {
            Tx::Any(conn, backend) => Ok(any_query(*backend, sql, args)
                .fetch_all(&mut **conn)
                .await?
                .into_iter()
                .map(Row::Any)
                .collect()),
            Tx::Lite(conn) => {
                let mut stmt = lite_statement(conn, sql, args)?;
                let names: Arc<[String]> =
                    stmt.column_names().into_iter().map(str::to_owned).collect();
                let mut rows = stmt.raw_query();
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let values = (0..names.len())
                        .map(|i| r.get::<_, rusqlite::types::Value>(i))
                        .collect::<rusqlite::Result<Vec<_>>>()?;
                    out.push(Row::Lite(LiteRow {
                        names: names.clone(),
                        values,
                    }));
                }
                Ok(out)
            }
            Tx::Pg(conn) => Ok(pg_query(sql, args)
                .fetch_all(&mut **conn)
                .await?
                .into_iter()
                .map(Row::Pg)
                .collect()),
        }
    }

    /// Whether this is PostgreSQL's native connection, which binds arrays.
    pub(crate) fn binds_arrays(&self) -> bool {
        matches!(self, Tx::Pg(_))
    }

    /// The rows a query selects with `$1` an integer and `$2` a text array (`… = ANY($2)`);
    /// PostgreSQL's native connection only ([`Tx::binds_arrays`]).
    pub(crate) async fn fetch_with_array(
        &mut self,
        sql: &str,
        first: i64,
        texts: &[&str],
    ) -> Result<Vec<Row>> {
        match self {
            Tx::Pg(conn) => Ok(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
                .bind(first)
                .bind(texts)
                .fetch_all(&mut **conn)
                .await?
                .into_iter()
                .map(Row::Pg)
                .collect()),
            _ => Err(StoreError::Corrupt(
                "a text array is bound on PostgreSQL's native connection only".into(),
            )),
        }
    }

    /// Writes rows of `cols` values each (`args`, one row after another) with
    /// `{head} VALUES … {tail}`, `per_statement` rows a statement; on PostgreSQL all of them in
    /// one statement that sends each column as one array and unnests it. A batch is then one
    /// round trip, one plan and one firing of the table's statement triggers instead of one per
    /// 64 rows, and has no 65,535-parameter limit. `tail` may refer to `excluded`, as after
    /// `VALUES`.
    pub(crate) async fn insert_rows(
        &mut self,
        head: &str,
        tail: &str,
        cols: usize,
        per_statement: usize,
        args: &[Arg<'_>],
    ) -> Result<()> {
        if cols == 0 || args.is_empty() {
            return Ok(());
        }
        if !args.len().is_multiple_of(cols) {
            return Err(StoreError::Corrupt(format!(
                "{} values do not make rows of {cols}",
                args.len()
            )));
        }
        if let Tx::Pg(conn) = self {
            unnest_query(head, tail, cols, args)?
                .execute(&mut **conn)
                .await?;
            return Ok(());
        }
        // SQLite: `OR FAIL`, so a statement that fails keeps the rows it wrote before and SQLite
        // need not journal every page it changes to undo them (5 % of an import's time). Every
        // error of a ledger write rolls back the transaction or the batch's savepoint anyway.
        let sqlite = !matches!(self, Tx::Any(_, Backend::Postgres));
        let head = match head.strip_prefix("INSERT INTO ") {
            Some(rest) if sqlite => Cow::Owned(format!("INSERT OR FAIL INTO {rest}")),
            _ => Cow::Borrowed(head),
        };
        if let Tx::Lite(conn) = self {
            // Every chunk but the last has the same text: it is written and numbered once, not
            // once per 16 rows (both showed in profiles of imports).
            let mut text: Option<(usize, String)> = None;
            for chunk in args.chunks(per_statement.max(1) * cols) {
                let rows = chunk.len() / cols;
                let sql = match &mut text {
                    Some((n, sql)) if *n == rows => sql,
                    slot => {
                        let sql = numbered(&format!(
                            "{head} VALUES {} {tail}",
                            crate::record::values(1, rows, cols)
                        ));
                        &mut slot.insert((rows, sql)).1
                    }
                };
                bound_statement(conn, sql, chunk)?.raw_execute()?;
            }
            return Ok(());
        }
        for chunk in args.chunks(per_statement.max(1) * cols) {
            let sql = format!(
                "{head} VALUES {} {tail}",
                crate::record::values(1, chunk.len() / cols, cols)
            );
            self.execute(&sql, chunk).await?;
        }
        Ok(())
    }

    /// The first row a query selects, if any.
    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &str,
        args: &[Arg<'_>],
    ) -> Result<Option<Row>> {
        Ok(self.fetch(sql, args).await?.into_iter().next())
    }
}

fn any_query(
    backend: Backend,
    sql: &str,
    args: &[Arg<'_>],
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(positional(backend, sql.to_owned())));
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_deref().map(str::to_owned)),
            Arg::Bytes(v) => q.bind(v.as_deref().map(<[u8]>::to_vec)),
        };
    }
    q
}

fn pg_query<'q>(
    sql: &str,
    args: &'q [Arg<'_>],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for a in args {
        q = match a {
            Arg::Int(v) => q.bind(*v),
            Arg::Text(v) => q.bind(v.as_deref()),
            Arg::Bytes(v) => q.bind(v.as_deref()),
        };
    }
    q
}

/// `{head} SELECT * FROM UNNEST($1::…[], …) {tail}` with each column of the row-major `args`
/// bound as one array, typed by its values' variant (typed even when null). Texts are bound
/// borrowed: copying each cell into a string of its own was a tenth of the hub's CPU in a batch.
fn unnest_query<'q>(
    head: &str,
    tail: &str,
    cols: usize,
    args: &'q [Arg<'_>],
) -> Result<sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>> {
    use std::fmt::Write as _;
    let rows = args.len() / cols;
    let mut sql = format!("{head} SELECT * FROM UNNEST(");
    let mut columns: Vec<Column<'q>> = Vec::with_capacity(cols);
    for (c, first) in args.iter().take(cols).enumerate() {
        let (column, cast) = match first {
            Arg::Int(_) => (Column::Int(Vec::with_capacity(rows)), "int8"),
            Arg::Text(_) => (Column::Text(Vec::with_capacity(rows)), "text"),
            Arg::Bytes(_) => (Column::Bytes(Vec::with_capacity(rows)), "bytea"),
        };
        columns.push(column);
        if c > 0 {
            sql.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = write!(sql, "${}::{cast}[]", c + 1);
    }
    let _ = write!(sql, ") {tail}");
    for row in args.chunks(cols) {
        for (c, (column, value)) in columns.iter_mut().zip(row).enumerate() {
            match (column, value) {
                (Column::Int(v), Arg::Int(x)) => v.push(*x),
                (Column::Text(v), Arg::Text(x)) => v.push(x.as_deref()),
                (Column::Bytes(v), Arg::Bytes(x)) => v.push(x.as_deref()),
                _ => {
                    return Err(StoreError::Corrupt(format!(
                        "column {} mixes types (integers, texts, bytes)",
                        c + 1
                    )));
                }
            }
        }
    }
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for column in columns {
        q = match column {
            Column::Int(v) => q.bind(v),
            Column::Text(v) => q.bind(v),
            Column::Bytes(v) => q.bind(v),
        };
    }
    Ok(q)
}

/// One column of rows sent to PostgreSQL as an array.
enum Column<'q> {
    Int(Vec<Option<i64>>),
    Text(Vec<Option<&'q str>>),
    Bytes(Vec<Option<&'q [u8]>>),
}

/// The cached statement for `sql` with `args` bound. `$n` placeholders become SQLite's numbered
/// `?n`, so a repeated placeholder binds the same value as on PostgreSQL.
fn lite_statement<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<rusqlite::CachedStatement<'c>> {
    bound_statement(conn, &numbered(sql), args)
}

/// The cached statement for `sql`, already in SQLite's `?n` form, with `args` bound.
fn bound_statement<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    args: &[Arg<'_>],
) -> Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(sql)?;
    if stmt.parameter_count() != args.len() {
        return Err(StoreError::Sqlite(format!(
            "{} values for {} parameters",
            args.len(),
            stmt.parameter_count()
        )));
    }
    for (i, a) in args.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, a)?;
    }
    Ok(stmt)
}

/// `$n` placeholders outside quotes as `?n`. Byte for byte (both are ASCII, so the text stays
/// valid UTF-8): it runs for every statement of a batch.
fn numbered(sql: &str) -> String {
    let mut out = sql.as_bytes().to_vec();
    let mut quoted = false;
    for i in 0..out.len() {
        match out.get(i) {
            Some(b'\'') => quoted = !quoted,
            Some(b'$') if !quoted && out.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                if let Some(b) = out.get_mut(i) {
                    *b = b'?';
                }
            }
            _ => {}
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| sql.to_owned())
}

/// The native writer of a SQLite file, opened when first needed; `None` for PostgreSQL and
/// in-memory databases (which no other connection can see), and while it cannot be opened (the
/// sqlx connections then write, as before).
#[derive(Debug, Default)]
pub(crate) struct Writer {
    path: Option<PathBuf>,
    conn: Option<rusqlite::Connection>,
    checkpointer: Option<Checkpointer>,
}

/// Pages of cache of the writer: 32 MiB, as the sqlx connections (a batch of thousands of
/// changes otherwise spills to the WAL before its commit).
const CACHE_KIB: i64 = 32 * 1024;

impl Writer {
    pub(crate) fn for_path(path: Option<PathBuf>) -> Writer {
        Writer {
            path,
            conn: None,
            checkpointer: None,
        }
    }

    /// The native connection, opened on first use, and its checkpoint thread if it has one.
    fn native(&mut self) -> Option<(&mut rusqlite::Connection, Option<&Checkpointer>)> {
        if self.conn.is_none()
            && let Some(path) = &self.path
        {
            match open(path) {
                Ok(c) => {
                    self.checkpointer = Checkpointer::start(path);
                    if self.checkpointer.is_some()
                        && let Err(e) =
                            c.pragma_update(None, "wal_autocheckpoint", checkpoint::BACKSTOP_PAGES)
                    {
                        tracing::warn!(error = %e, "the writer keeps SQLite's checkpoint size");
                    }
                    self.conn = Some(c);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the native SQLite writer could not be opened; writing through sqlx");
                    self.path = None;
                }
            }
        }
        let conn = self.conn.as_mut()?;
        Some((conn, self.checkpointer.as_ref()))
    }
}

fn open(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    use rusqlite::OpenFlags;
    let c = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    c.busy_timeout(std::time::Duration::from_secs(10))?;
    // The same settings as the sqlx connections (see `SqlStore::connect`): every commit is on
    // disk before it is answered.
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    c.pragma_update(None, "cache_size", -CACHE_KIB)?;
    // Statement journals (the pages a multi-row statement may have to undo) in memory: on a
    // file, SQLite's default beyond 64 KiB, they were a fifth of an import's time in `pwrite`
    // to a temporary file that no crash recovery reads. The writer's statements are a batch's.
    c.pragma_update(None, "temp_store", "MEMORY")?;
    c.set_prepared_statement_cache_capacity(256);
    Ok(c)
}

/// A write transaction on the native writer, rolled back unless committed.
pub(crate) struct LiteTx<'c> {
    conn: &'c mut rusqlite::Connection,
    checkpointer: Option<&'c Checkpointer>,
    open: bool,
}

impl<'c> LiteTx<'c> {
    fn begin(
        conn: &'c mut rusqlite::Connection,
        checkpointer: Option<&'c Checkpointer>,
    ) -> Result<LiteTx<'c>> {
        // IMMEDIATE: the database's write lock from the start, as a writer that will write.
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(LiteTx {
            conn,
            checkpointer,
            open: true,
        })
    }

    pub(crate) fn tx(&mut self) -> Tx<'_> {
        Tx::Lite(self.conn)
    }

    pub(crate) fn commit(mut self) -> Result<()> {
        self.open = false;
        if let Err(e) = self.conn.execute_batch("COMMIT") {
            // A failed COMMIT can leave the transaction open (SQLITE_BUSY): end it.
            let _ = self.conn.execute_batch("ROLLBACK");
            return Err(e.into());
        }
        if let Some(c) = self.checkpointer {
            c.committed();
        }
        Ok(())
    }
}

impl Drop for LiteTx<'_> {
    fn drop(&mut self) {
        if self.open && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

/// A write transaction on one of the drivers.
pub(crate) enum WriteTx<'c> {
    Any(sqlx::Transaction<'static, sqlx::Any>, Backend),
    Lite(LiteTx<'c>),
    Pg(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl WriteTx<'_> {
    pub(crate) fn tx(&mut self) -> Tx<'_> {
        match self {
            WriteTx::Any(t, b) => Tx::Any(t, *b),
            WriteTx::Lite(t) => t.tx(),
            WriteTx::Pg(t) => Tx::Pg(t),
        }
    }

    pub(crate) async fn commit(self) -> Result<()> {
        match self {
            WriteTx::Any(t, _) => Ok(t.commit().await?),
            WriteTx::Lite(t) => t.commit(),
            WriteTx::Pg(t) => Ok(t.commit().await?),
        }
    }
}

impl crate::SqlStore {
    /// Begins a write transaction: on the native writer when the caller holds it (SQLite files),
    /// on the native PostgreSQL pool, else on the `Any` pool.
    pub(crate) async fn begin_write<'c>(
        &self,
        writer: Option<&'c mut Writer>,
    ) -> Result<WriteTx<'c>> {
        if let Some((conn, checkpointer)) = writer.and_then(Writer::native) {
            return Ok(WriteTx::Lite(LiteTx::begin(conn, checkpointer)?));
        }
        if let Some(pg) = &self.pg_writes {
            return Ok(WriteTx::Pg(pg.begin().await?));
        }
        Ok(WriteTx::Any(self.begin_writing().await?, self.backend))
    }
}

#[cfg(test)]
mod tests {
    use super::{Arg, numbered, unnest_query};
    use crate::StoreError;

    #[test]
    fn a_column_of_rows_keeps_one_type() {
        let typed = [
            Arg::from(1),
            Arg::from("a"),
            Arg::Int(None),
            Arg::Text(None),
        ];
        assert!(unnest_query("INSERT INTO t (a, b)", "", 2, &typed).is_ok());
        let mixed = [Arg::from(1), Arg::from("a"), Arg::from("b"), Arg::from(2)];
        assert!(matches!(
            unnest_query("INSERT INTO t (a, b)", "", 2, &mixed),
            Err(StoreError::Corrupt(m)) if m.contains("column 1")
        ));
    }

    #[test]
    fn placeholders_become_numbered_outside_quotes() {
        assert_eq!(
            numbered("SELECT '$1', $1, $12 FROM t WHERE a = $2 AND b = '$'"),
            "SELECT '$1', ?1, ?12 FROM t WHERE a = ?2 AND b = '$'"
        );
    }
}
