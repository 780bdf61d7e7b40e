//! The schema and its versioned migrations, shared by SQLite and PostgreSQL. Each migration is
//! applied once, in order, inside one transaction at open (under an advisory lock on
//! PostgreSQL, so that gateways starting together do not race), and recorded in
//! `archipel_schema`. A database whose version is newer than this build is refused.
//!
//! Dialect differences are two tokens in the migration text: `{blob}` (`BLOB` / `BYTEA`) and
//! `{norowid}` (`WITHOUT ROWID` on SQLite, so the primary key is the table's clustered
//! B-tree). Keys that are listed in order (object keys, upload ids, the queues' provider and
//! blob names) are stored as bytes, so both engines sort them by their UTF-8 bytes, as S3
//! does, whatever the database collation.

use sqlx::{AnyConnection, Connection};

use super::{Dialect, db};
use crate::error::{MetaError, Result};
use crate::types::UnixMillis;

/// The migrations, oldest first: `(version, name, statements separated by ';')`.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial schema",
        r#"
CREATE TABLE buckets (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    policy {blob} NOT NULL,
    created_ms BIGINT NOT NULL,
    versioning BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE objects (
    bucket TEXT NOT NULL,
    key {blob} NOT NULL,
    version_id TEXT NOT NULL,
    manifest {blob} NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    user_meta {blob} NOT NULL,
    delete_marker BIGINT NOT NULL,
    PRIMARY KEY (bucket, key)
) {norowid};
CREATE TABLE uploads (
    bucket TEXT NOT NULL,
    key {blob} NOT NULL,
    upload_id {blob} NOT NULL,
    initiated_ms BIGINT NOT NULL,
    metadata {blob} NOT NULL,
    PRIMARY KEY (bucket, key, upload_id)
) {norowid};
CREATE TABLE parts (
    bucket TEXT NOT NULL,
    key {blob} NOT NULL,
    upload_id {blob} NOT NULL,
    part_number BIGINT NOT NULL,
    manifest {blob} NOT NULL,
    size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    last_modified_ms BIGINT NOT NULL,
    PRIMARY KEY (bucket, key, upload_id, part_number)
) {norowid};
CREATE TABLE access_keys (
    id TEXT PRIMARY KEY,
    sealed_secret {blob} NOT NULL,
    owner TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    enabled BIGINT NOT NULL
);
CREATE TABLE grants (
    access_key TEXT NOT NULL,
    bucket TEXT NOT NULL,
    permissions BIGINT NOT NULL,
    PRIMARY KEY (access_key, bucket)
);
CREATE INDEX grants_by_bucket ON grants (bucket);
CREATE TABLE providers (
    name TEXT PRIMARY KEY,
    labels {blob} NOT NULL,
    state TEXT NOT NULL,
    config {blob} NOT NULL
);
CREATE TABLE gc_queue (
    provider {blob} NOT NULL,
    blob {blob} NOT NULL,
    enqueued_ms BIGINT NOT NULL,
    PRIMARY KEY (provider, blob)
);
CREATE INDEX gc_queue_by_age ON gc_queue (enqueued_ms, provider, blob);
CREATE TABLE checkpoints (
    name TEXT PRIMARY KEY,
    data {blob} NOT NULL
)
"#,
    ),
    (
        2,
        "repair queue",
        r#"
CREATE TABLE repair_queue (
    provider {blob} NOT NULL,
    blob {blob} NOT NULL,
    bucket TEXT NOT NULL,
    key {blob} NOT NULL,
    version_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    enqueued_ms BIGINT NOT NULL,
    PRIMARY KEY (provider, blob)
);
CREATE INDEX repair_queue_by_age ON repair_queue (enqueued_ms, provider, blob)
"#,
    ),
    (
        3,
        "provider generations",
        r#"
ALTER TABLE providers ADD COLUMN generation BIGINT NOT NULL DEFAULT 0
"#,
    ),
    (
        4,
        "job leases",
        r#"
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    until_ms BIGINT NOT NULL
)
"#,
    ),
    (
        5,
        "bucket settings",
        r#"
ALTER TABLE buckets ADD COLUMN settings {blob}
"#,
    ),
];

/// The newest schema version this build knows.
pub(crate) const LATEST: i64 = 5;

/// A fixed key for `pg_advisory_xact_lock` ("archipel" in ASCII).
const ADVISORY_LOCK: i64 = 0x6172_6368_6970_656c;

/// Brings the database to [`LATEST`], creating `schema` first on PostgreSQL.
pub(crate) async fn migrate(
    conn: &mut AnyConnection,
    dialect: Dialect,
    pg_schema: Option<&str>,
) -> Result<i64> {
    let op = "migrate";
    let mut tx = match dialect {
        Dialect::Sqlite => conn.begin_with("BEGIN IMMEDIATE").await,
        Dialect::Postgres => conn.begin().await,
    }
    .map_err(|e| MetaError::from_sqlx(op, e))?;
    if dialect == Dialect::Postgres {
        sqlx::query("SELECT 1 FROM pg_advisory_xact_lock($1)")
            .bind(ADVISORY_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(db(op))?;
        if let Some(schema) = pg_schema {
            let sql = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await
                .map_err(db(op))?;
        }
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS archipel_schema (version BIGINT PRIMARY KEY, \
         name TEXT NOT NULL, applied_ms BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .map_err(db(op))?;
    let current: i64 =
        sqlx::query_scalar("SELECT version FROM archipel_schema ORDER BY version DESC LIMIT 1")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db(op))?
            .unwrap_or(0);
    if current > LATEST {
        return Err(MetaError::SchemaTooNew {
            found: current,
            supported: LATEST,
        });
    }
    for &(version, name, text) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let text = match dialect {
            Dialect::Sqlite => text
                .replace("{blob}", "BLOB")
                .replace("{norowid}", "WITHOUT ROWID"),
            Dialect::Postgres => text.replace("{blob}", "BYTEA").replace("{norowid}", ""),
        };
        for statement in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(sqlx::AssertSqlSafe(statement.to_string()))
                .execute(&mut *tx)
                .await
                .map_err(db(op))?;
        }
        sqlx::query("INSERT INTO archipel_schema (version, name, applied_ms) VALUES ($1, $2, $3)")
            .bind(version)
            .bind(name)
            .bind(UnixMillis::now().0)
            .execute(&mut *tx)
            .await
            .map_err(db(op))?;
    }
    tx.commit().await.map_err(db(op))?;
    Ok(LATEST)
}
