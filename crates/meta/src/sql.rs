//! [`SqlMetaStore`]: the [`MetaStore`] on SQLite (embedded in the data directory, the default)
//! or PostgreSQL (shared by many gateways), through one code path.
//!
//! Both run the same SQL (`sql/ops.rs`) and the same migrations (`sql/schema.rs`) over
//! sqlx's `Any` driver. They differ in how writes reach the database:
//!
//! * **SQLite: one writer task with group commit.** Every mutation is queued to a single task
//!   that owns the only write connection. It takes everything queued (up to a batch limit),
//!   runs each mutation inside its own savepoint of one `BEGIN IMMEDIATE` transaction, commits
//!   once (one WAL fsync with `synchronous=FULL`), and only then answers every caller. A
//!   mutation that fails rolls back to its savepoint without disturbing the others; a failed
//!   commit fails them all. Durability per acknowledged write is unchanged, while the fsync
//!   cost is shared by the whole batch. Reads use a pool of read-only connections (WAL lets
//!   them run beside the writer).
//! * **PostgreSQL: a pool, a transaction per mutation**, rows locked with `FOR UPDATE` where a
//!   decision depends on them, and the whole transaction retried on SQLSTATE 40001/40P01.
//!   PostgreSQL groups concurrent commits' WAL flushes itself.

mod ops;
mod schema;

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{MetaError, Result};
use crate::store::MetaStore;
use crate::types::*;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Maps a sqlx error for `op`.
pub(crate) fn db(op: &'static str) -> impl Fn(sqlx::Error) -> MetaError {
    move |e| MetaError::from_sqlx(op, e)
}

/// Which SQL engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub(crate) fn of(conn: &AnyConnection) -> Self {
        if conn.backend_name().eq_ignore_ascii_case("sqlite") {
            Dialect::Sqlite
        } else {
            Dialect::Postgres
        }
    }
}

/// Settings of the embedded store.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// The directory holding `meta.sqlite3` (created if missing).
    pub dir: PathBuf,
    /// Read connections in the pool.
    pub readers: u32,
    /// The most mutations one group commit takes.
    pub max_batch: usize,
    /// SQLite page cache of the writer connection, in KiB.
    pub writer_cache_kib: u32,
    /// SQLite page cache of each read connection, in KiB.
    pub reader_cache_kib: u32,
}

impl EmbeddedOptions {
    /// Defaults for a data directory: 4 readers, batches of up to 256 mutations, page caches
    /// of 16 MiB (writer) and 4 MiB (each reader): at most 32 MiB in all, whatever the size of
    /// the index (the kernel's page cache keeps the rest of a large index warm).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        EmbeddedOptions {
            dir: dir.into(),
            readers: 4,
            max_batch: 256,
            writer_cache_kib: 16 * 1024,
            reader_cache_kib: 4 * 1024,
        }
    }
}

/// Settings of the PostgreSQL store.
#[derive(Debug, Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// A schema to hold the tables (created if missing): several vaults, or tests, can share
    /// one database. `None`: the role's default search path.
    pub schema: Option<String>,
    /// Pool size.
    pub max_connections: u32,
    /// How many times a transaction that hit a serialization failure or deadlock is retried.
    pub max_retries: u32,
}

impl PostgresOptions {
    /// Defaults: the default schema, 16 connections, 10 retries.
    pub fn new(url: impl Into<String>) -> Self {
        PostgresOptions {
            url: url.into(),
            schema: None,
            max_connections: 16,
            max_retries: 10,
        }
    }
}

/// A mutation waiting in the SQLite writer's queue.
trait PendingWrite: Send {
    /// Runs the mutation inside the current savepoint; whether it succeeded.
    fn run<'a>(&'a mut self, conn: &'a mut AnyConnection) -> BoxFuture<'a, bool>;
    /// Answers the caller once the batch's commit is known.
    fn finish(self: Box<Self>, committed: Result<()>);
}

/// A mutation: a function of a connection and its arguments. A plain `fn` so that PostgreSQL
/// can run it again on a serialization failure.
type WriteFn<A, T> = for<'c> fn(&'c mut AnyConnection, &'c A) -> BoxFuture<'c, Result<T>>;

struct Pending<A, T> {
    args: A,
    op: WriteFn<A, T>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
}

impl<A: Send + Sync, T: Send> PendingWrite for Pending<A, T> {
    fn run<'a>(&'a mut self, conn: &'a mut AnyConnection) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            let result = (self.op)(conn, &self.args).await;
            let ok = result.is_ok();
            self.result = Some(result);
            ok
        })
    }

    fn finish(self: Box<Self>, committed: Result<()>) {
        let answer = match (self.result, committed) {
            (Some(Err(e)), _) | (Some(Ok(_)), Err(e)) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (None, Err(e)) => Err(e),
            (None, Ok(())) => Err(MetaError::Closed),
        };
        // The caller may have gone away (cancelled); the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

enum Writes {
    /// SQLite: the group-commit writer task.
    Queue {
        tx: mpsc::Sender<Box<dyn PendingWrite>>,
        /// Tells the writer to drain its queue and stop.
        stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
        task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    },
    /// PostgreSQL: transactions on the pool.
    Pool { max_retries: u32 },
}

struct Inner {
    pool: AnyPool,
    writes: Writes,
    dialect: Dialect,
    /// Held for the store's lifetime: the embedded store's directory lock.
    _lock: Option<File>,
}

/// The metadata store over SQLite or PostgreSQL. Cheap to clone (shared handle).
#[derive(Clone)]
pub struct SqlMetaStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SqlMetaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlMetaStore")
            .field("dialect", &self.inner.dialect)
            .finish_non_exhaustive()
    }
}

/// `sqlite://` URL of a database file, percent-encoding what the URL parser would misread.
fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' | ' ' => url.push_str(&format!("%{:02X}", c as u32)),
            c => url.push(c),
        }
    }
    url.push_str("?mode=rwc");
    url
}

/// Makes `dir` 0700 and the named files in it 0600, creating the first (empty) if missing.
fn restrict_to_owner(dir: &std::path::Path, files: &[&str]) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
        if let Some(first) = files.first() {
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(dir.join(first));
        }
        for f in files {
            let p = dir.join(f);
            if p.exists() {
                let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (dir, files);
}

impl SqlMetaStore {
    /// Opens (creating if needed) the embedded store in `options.dir`, applies migrations and
    /// starts the writer task. The directory is locked against a second process.
    pub async fn open_embedded(options: EmbeddedOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let op = "open";
        std::fs::create_dir_all(&options.dir).map_err(|e| MetaError::Unavailable {
            op,
            code: None,
            message: format!("create {}: {e}", options.dir.display()),
        })?;
        let lock_path = options.dir.join("meta.lock");
        let lock = File::create(&lock_path).map_err(|e| MetaError::Unavailable {
            op,
            code: None,
            message: format!("create {}: {e}", lock_path.display()),
        })?;
        if lock.try_lock().is_err() {
            return Err(MetaError::Locked {
                path: lock_path.display().to_string(),
            });
        }
        // The index holds bucket names, keys, metadata and tags in clear: owner-only. SQLite
        // gives its -wal and -shm files the database file's mode, so creating that file 0600
        // (and tightening what exists) covers all three.
        restrict_to_owner(
            &options.dir,
            &[
                "meta.sqlite3",
                "meta.sqlite3-wal",
                "meta.sqlite3-shm",
                "meta.lock",
            ],
        );
        let url = sqlite_url(&options.dir.join("meta.sqlite3"));
        let mut writer = AnyConnection::connect(&url).await.map_err(db(op))?;
        // WAL: readers never block the writer. FULL: the WAL is fsynced at every commit, so an
        // acknowledged write survives power loss, not only a process crash.
        // The page caches are bounded (`EmbeddedOptions`); the kernel caches the rest.
        for pragma in [
            "PRAGMA journal_mode = WAL".to_string(),
            "PRAGMA synchronous = FULL".to_string(),
            // A number the code formats, not input.
            format!("PRAGMA cache_size = -{}", options.writer_cache_kib),
        ] {
            writer
                .execute(sqlx::query(sqlx::AssertSqlSafe(pragma)))
                .await
                .map_err(db(op))?;
        }
        schema::migrate(&mut writer, Dialect::Sqlite, None).await?;
        let pool = AnyPoolOptions::new()
            .max_connections(options.readers.max(1))
            .after_connect(move |conn, _| {
                let reader_cache = format!("PRAGMA cache_size = -{}", options.reader_cache_kib);
                Box::pin(async move {
                    conn.execute("PRAGMA query_only = ON").await?;
                    conn.execute(sqlx::query(sqlx::AssertSqlSafe(reader_cache)))
                        .await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(db(op))?;
        let (tx, rx) = mpsc::channel(options.max_batch.max(1) * 4);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(writer_task(writer, rx, stopped, options.max_batch.max(1)));
        Ok(SqlMetaStore {
            inner: Arc::new(Inner {
                pool,
                writes: Writes::Queue {
                    tx,
                    stop: std::sync::Mutex::new(Some(stop)),
                    task: tokio::sync::Mutex::new(Some(task)),
                },
                dialect: Dialect::Sqlite,
                _lock: Some(lock),
            }),
        })
    }

    /// Connects to PostgreSQL (≥ 13) and applies migrations.
    pub async fn connect_postgres(options: PostgresOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let op = "connect";
        if let Some(schema) = &options.schema {
            let valid = !schema.is_empty()
                && schema.len() <= 63
                && schema
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid {
                return Err(MetaError::invalid(
                    "schema",
                    format!("{schema:?}: use [a-z0-9_]{{1,63}}"),
                ));
            }
        }
        let search_path = options.schema.clone();
        let pool = AnyPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    if let Some(schema) = search_path {
                        let sql = format!("SET search_path TO \"{schema}\"");
                        conn.execute(sqlx::AssertSqlSafe(sql)).await?;
                    }
                    Ok(())
                })
            })
            .connect(&options.url)
            .await
            .map_err(db(op))?;
        let mut conn = pool.acquire().await.map_err(db(op))?;
        schema::migrate(&mut conn, Dialect::Postgres, options.schema.as_deref()).await?;
        drop(conn);
        Ok(SqlMetaStore {
            inner: Arc::new(Inner {
                pool,
                writes: Writes::Pool {
                    max_retries: options.max_retries,
                },
                dialect: Dialect::Postgres,
                _lock: None,
            }),
        })
    }

    /// Stops the writer after the mutations already queued, and closes every connection.
    /// Other handles to the store get [`MetaError::Closed`] afterwards.
    pub async fn close(&self) {
        if let Writes::Queue { stop, task, .. } = &self.inner.writes {
            let stop = stop.lock().map(|mut s| s.take()).unwrap_or_default();
            if let Some(stop) = stop {
                let _ = stop.send(());
            }
            if let Some(task) = task.lock().await.take() {
                let _ = task.await;
            }
        }
        self.inner.pool.close().await;
    }

    /// Whether this store is the embedded SQLite one.
    pub fn is_embedded(&self) -> bool {
        self.inner.dialect == Dialect::Sqlite
    }

    /// Runs SQLite's `PRAGMA integrity_check` (embedded store) and checks the schema version;
    /// `Err` describes any damage.
    pub async fn check_integrity(&self) -> Result<()> {
        let op = "check_integrity";
        let mut conn = self.inner.pool.acquire().await.map_err(db(op))?;
        if self.inner.dialect == Dialect::Sqlite {
            let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                .fetch_all(&mut *conn)
                .await
                .map_err(db(op))?;
            if rows != ["ok"] {
                return Err(MetaError::corrupt("sqlite", rows.join("; ")));
            }
        }
        let version: Option<i64> =
            sqlx::query_scalar("SELECT version FROM archipel_schema ORDER BY version DESC LIMIT 1")
                .fetch_optional(&mut *conn)
                .await
                .map_err(db(op))?;
        if version != Some(schema::LATEST) {
            return Err(MetaError::corrupt(
                "archipel_schema",
                format!("version {version:?}"),
            ));
        }
        Ok(())
    }

    /// Loads object versions in bulk, unconditionally, in transactions of `chunk` rows: for
    /// rebuilding the index from providers (promise 5) and for benchmarks. Superseded versions
    /// are not returned, so use it only on keys known to be absent or already collected.
    pub async fn import_versions(
        &self,
        bucket: &BucketName,
        versions: Vec<(ObjectKey, NewVersion)>,
    ) -> Result<()> {
        for chunk in versions.chunks(500) {
            let args = (bucket.clone(), chunk.to_vec());
            self.write(args, |c, (b, rows)| {
                Box::pin(ops::import_versions(c, b, rows))
            })
            .await?;
        }
        Ok(())
    }

    async fn read(&self, op: &'static str) -> Result<sqlx::pool::PoolConnection<sqlx::Any>> {
        self.inner.pool.acquire().await.map_err(db(op))
    }

    /// Runs a mutation: through the group-commit writer (SQLite) or in its own transaction
    /// with retries (PostgreSQL).
    async fn write<A, T>(&self, args: A, op: WriteFn<A, T>) -> Result<T>
    where
        A: Send + Sync + 'static,
        T: Send + 'static,
    {
        match &self.inner.writes {
            Writes::Queue { tx, .. } => {
                let (reply, answer) = oneshot::channel();
                let pending = Box::new(Pending {
                    args,
                    op,
                    result: None,
                    reply,
                });
                tx.send(pending).await.map_err(|_| MetaError::Closed)?;
                answer.await.map_err(|_| MetaError::Closed)?
            }
            Writes::Pool { max_retries } => {
                let mut attempt = 0u32;
                loop {
                    let result: Result<T> = async {
                        let mut tx = self.inner.pool.begin().await.map_err(db("begin"))?;
                        let value = op(&mut tx, &args).await?;
                        tx.commit().await.map_err(db("commit"))?;
                        Ok(value)
                    }
                    .await;
                    match result {
                        Err(e) if e.is_serialization_failure() && attempt < *max_retries => {
                            attempt += 1;
                            let jitter = u64::from(attempt) * 3 + (std::process::id() as u64 % 5);
                            tokio::time::sleep(Duration::from_millis(jitter)).await;
                        }
                        other => return other,
                    }
                }
            }
        }
    }
}

/// The group-commit loop: one batch per transaction, one fsync per batch.
async fn writer_task(
    mut conn: AnyConnection,
    mut rx: mpsc::Receiver<Box<dyn PendingWrite>>,
    mut stop: oneshot::Receiver<()>,
    max_batch: usize,
) {
    let mut batch: Vec<Box<dyn PendingWrite>> = Vec::with_capacity(max_batch);
    loop {
        tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, max_batch) => {
                if n == 0 {
                    break;
                }
                commit_batch(&mut conn, &mut batch).await;
            }
            _ = &mut stop => {
                // Closing (or the store dropped): take no new work, finish what is queued.
                rx.close();
                while rx.recv_many(&mut batch, max_batch).await > 0 {
                    commit_batch(&mut conn, &mut batch).await;
                }
                break;
            }
        }
    }
    let _ = conn.close().await;
}

async fn commit_batch(conn: &mut AnyConnection, batch: &mut Vec<Box<dyn PendingWrite>>) {
    let committed = run_batch(conn, batch).await;
    for pending in batch.drain(..) {
        pending.finish(committed.clone());
    }
}

async fn run_batch(conn: &mut AnyConnection, batch: &mut [Box<dyn PendingWrite>]) -> Result<()> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(db("begin"))?;
    for pending in batch.iter_mut() {
        let mut savepoint = tx.begin().await.map_err(db("savepoint"))?;
        if pending.run(&mut savepoint).await {
            savepoint.commit().await.map_err(db("release savepoint"))?;
        } else {
            savepoint
                .rollback()
                .await
                .map_err(db("rollback to savepoint"))?;
        }
    }
    tx.commit().await.map_err(db("commit"))
}

#[async_trait]
impl MetaStore for SqlMetaStore {
    async fn create_bucket(&self, bucket: &Bucket) -> Result<()> {
        self.write(bucket.clone(), |c, b| Box::pin(ops::create_bucket(c, b)))
            .await
    }

    async fn get_bucket(&self, name: &BucketName) -> Result<Option<Bucket>> {
        ops::get_bucket(&mut *self.read("get_bucket").await?, name).await
    }

    async fn list_buckets(&self) -> Result<Vec<Bucket>> {
        ops::list_buckets(&mut *self.read("list_buckets").await?).await
    }

    async fn set_bucket_settings(&self, name: &BucketName, settings: &[u8]) -> Result<()> {
        let args = (name.clone(), settings.to_vec());
        self.write(args, |c, (n, s)| {
            Box::pin(ops::set_bucket_settings(c, n, s))
        })
        .await
    }

    async fn set_bucket_policy(&self, name: &BucketName, policy: &[u8]) -> Result<()> {
        let args = (name.clone(), policy.to_vec());
        self.write(args, |c, (n, p)| Box::pin(ops::set_bucket_policy(c, n, p)))
            .await
    }

    async fn delete_bucket(&self, name: &BucketName) -> Result<()> {
        self.write(name.clone(), |c, n| Box::pin(ops::delete_bucket(c, n)))
            .await
    }

    async fn commit(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version: &NewVersion,
        condition: &CommitCondition,
    ) -> Result<Superseded> {
        let args = (
            bucket.clone(),
            key.clone(),
            version.clone(),
            condition.clone(),
        );
        self.write(args, |c, (b, k, v, cond)| {
            Box::pin(ops::commit(c, b, k, v, cond))
        })
        .await
    }

    async fn get(&self, bucket: &BucketName, key: &ObjectKey) -> Result<Option<ObjectVersion>> {
        ops::get(&mut *self.read("get").await?, bucket, key).await
    }

    async fn list_versions(
        &self,
        bucket: &BucketName,
        after: Option<&ObjectKey>,
        limit: usize,
    ) -> Result<Vec<ObjectVersion>> {
        ops::list_versions(
            &mut *self.read("list_versions").await?,
            bucket,
            after,
            limit,
        )
        .await
    }

    async fn delete(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        condition: &DeleteCondition,
    ) -> Result<Superseded> {
        let args = (bucket.clone(), key.clone(), condition.clone());
        self.write(args, |c, (b, k, cond)| Box::pin(ops::delete(c, b, k, cond)))
            .await
    }

    async fn replace_manifest(
        &self,
        bucket: &BucketName,
        key: &ObjectKey,
        version_id: &VersionId,
        expected: &[u8],
        manifest: &[u8],
    ) -> Result<bool> {
        let args = (
            bucket.clone(),
            key.clone(),
            version_id.clone(),
            expected.to_vec(),
            manifest.to_vec(),
        );
        self.write(args, |c, (b, k, v, e, m)| {
            Box::pin(ops::replace_manifest(c, b, k, v, e, m))
        })
        .await
    }

    async fn list(&self, bucket: &BucketName, query: &ListQuery) -> Result<ObjectPage> {
        ops::list(&mut *self.read("list").await?, bucket, query).await
    }

    async fn create_upload(&self, bucket: &BucketName, upload: &NewUpload) -> Result<()> {
        let args = (bucket.clone(), upload.clone());
        self.write(args, |c, (b, u)| Box::pin(ops::create_upload(c, b, u)))
            .await
    }

    async fn get_upload(&self, upload: &UploadRef) -> Result<Option<Upload>> {
        ops::get_upload(&mut *self.read("get_upload").await?, upload, false).await
    }

    async fn put_part(&self, upload: &UploadRef, part: &Part) -> Result<Option<Part>> {
        let args = (upload.clone(), part.clone());
        self.write(args, |c, (u, p)| Box::pin(ops::put_part(c, u, p)))
            .await
    }

    async fn list_parts(&self, upload: &UploadRef, query: &PartQuery) -> Result<PartPage> {
        ops::list_parts(&mut *self.read("list_parts").await?, upload, query).await
    }

    async fn list_uploads(&self, bucket: &BucketName, query: &UploadQuery) -> Result<UploadPage> {
        ops::list_uploads(&mut *self.read("list_uploads").await?, bucket, query).await
    }

    async fn complete_upload(
        &self,
        upload: &UploadRef,
        version: &NewVersion,
        condition: &CommitCondition,
    ) -> Result<Completed> {
        let args = (upload.clone(), version.clone(), condition.clone());
        self.write(args, |c, (u, v, cond)| {
            Box::pin(ops::complete_upload(c, u, v, cond))
        })
        .await
    }

    async fn abort_upload(&self, upload: &UploadRef) -> Result<Completed> {
        self.write(upload.clone(), |c, u| Box::pin(ops::abort_upload(c, u)))
            .await
    }

    async fn create_access_key(&self, key: &AccessKey) -> Result<()> {
        self.write(key.clone(), |c, k| Box::pin(ops::create_access_key(c, k)))
            .await
    }

    async fn get_access_key(&self, id: &AccessKeyId) -> Result<Option<AccessKey>> {
        ops::get_access_key(&mut *self.read("get_access_key").await?, id).await
    }

    async fn list_access_keys(&self) -> Result<Vec<AccessKey>> {
        ops::list_access_keys(&mut *self.read("list_access_keys").await?).await
    }

    async fn delete_access_key(&self, id: &AccessKeyId) -> Result<bool> {
        self.write(id.clone(), |c, id| Box::pin(ops::delete_access_key(c, id)))
            .await
    }

    async fn set_grant(
        &self,
        key: &AccessKeyId,
        bucket: &BucketName,
        permissions: Permissions,
    ) -> Result<()> {
        let args = (key.clone(), bucket.clone(), permissions);
        self.write(args, |c, (k, b, p)| Box::pin(ops::set_grant(c, k, b, *p)))
            .await
    }

    async fn list_grants(&self, key: &AccessKeyId) -> Result<Vec<Grant>> {
        ops::list_grants(&mut *self.read("list_grants").await?, key).await
    }

    async fn put_provider(&self, provider: &ProviderRecord) -> Result<()> {
        self.write(provider.clone(), |c, p| Box::pin(ops::put_provider(c, p)))
            .await
    }

    async fn get_provider(&self, name: &ProviderName) -> Result<Option<ProviderRecord>> {
        ops::get_provider(&mut *self.read("get_provider").await?, name).await
    }

    async fn list_providers(&self) -> Result<Vec<ProviderRecord>> {
        ops::list_providers(&mut *self.read("list_providers").await?).await
    }

    async fn delete_provider(&self, name: &ProviderName) -> Result<bool> {
        self.write(name.clone(), |c, n| Box::pin(ops::delete_provider(c, n)))
            .await
    }

    async fn enqueue_gc(&self, blobs: &[GcBlob], now: UnixMillis) -> Result<()> {
        self.write((blobs.to_vec(), now), |c, (b, now)| {
            Box::pin(ops::enqueue_gc(c, b, *now))
        })
        .await
    }

    async fn peek_gc(&self, after: Option<&GcEntry>, limit: usize) -> Result<Vec<GcEntry>> {
        ops::peek_gc(&mut *self.read("peek_gc").await?, after, limit).await
    }

    async fn remove_gc(&self, blobs: &[GcBlob]) -> Result<u64> {
        self.write(blobs.to_vec(), |c, b| Box::pin(ops::remove_gc(c, b)))
            .await
    }

    async fn enqueue_repair(&self, items: &[RepairItem], now: UnixMillis) -> Result<()> {
        self.write((items.to_vec(), now), |c, (i, now)| {
            Box::pin(ops::enqueue_repair(c, i, *now))
        })
        .await
    }

    async fn peek_repair(
        &self,
        after: Option<&RepairEntry>,
        limit: usize,
    ) -> Result<Vec<RepairEntry>> {
        ops::peek_repair(&mut *self.read("peek_repair").await?, after, limit).await
    }

    async fn remove_repair(&self, blobs: &[GcBlob]) -> Result<u64> {
        self.write(blobs.to_vec(), |c, b| Box::pin(ops::remove_repair(c, b)))
            .await
    }

    async fn count_repair(&self) -> Result<u64> {
        ops::count_repair(&mut *self.read("count_repair").await?).await
    }

    async fn put_checkpoint(&self, name: &CheckpointName, data: &[u8]) -> Result<()> {
        let args = (name.clone(), data.to_vec());
        self.write(args, |c, (n, d)| Box::pin(ops::put_checkpoint(c, n, d)))
            .await
    }

    async fn get_checkpoint(&self, name: &CheckpointName) -> Result<Option<Vec<u8>>> {
        ops::get_checkpoint(&mut *self.read("get_checkpoint").await?, name).await
    }

    async fn delete_checkpoint(&self, name: &CheckpointName) -> Result<bool> {
        self.write(name.clone(), |c, n| Box::pin(ops::delete_checkpoint(c, n)))
            .await
    }

    async fn list_checkpoints(
        &self,
        prefix: &str,
        after: Option<&CheckpointName>,
        limit: usize,
    ) -> Result<Vec<(CheckpointName, Vec<u8>)>> {
        ops::list_checkpoints(
            &mut *self.read("list_checkpoints").await?,
            prefix,
            after,
            limit,
        )
        .await
    }

    async fn take_lease(
        &self,
        name: &CheckpointName,
        owner: &str,
        now: UnixMillis,
        until: UnixMillis,
    ) -> Result<bool> {
        let args = (name.clone(), owner.to_string(), now, until);
        self.write(args, |c, (n, o, now, until)| {
            Box::pin(ops::take_lease(c, n, o, *now, *until))
        })
        .await
    }

    async fn release_lease(&self, name: &CheckpointName, owner: &str) -> Result<bool> {
        let args = (name.clone(), owner.to_string());
        self.write(args, |c, (n, o)| Box::pin(ops::release_lease(c, n, o)))
            .await
    }
}
