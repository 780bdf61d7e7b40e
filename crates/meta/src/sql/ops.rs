//! Every operation as SQL over one connection, shared by SQLite and PostgreSQL. Mutations run
//! inside a transaction (or savepoint) opened by the caller; on PostgreSQL the rows a decision
//! depends on are locked (`FOR UPDATE`, `FOR KEY SHARE`), on SQLite the single writer already
//! serializes every mutation.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AssertSqlSafe, Row};

use super::{Dialect, db};
use crate::encode::{decode_map, encode_map};
use crate::error::{MetaError, Result};
use crate::list::{Entry, Lister, Lower, RangeQuery};
use crate::types::*;

/// `$sql`, with ` $lock` appended on PostgreSQL.
macro_rules! locked {
    ($conn:expr, $sql:expr, $lock:literal) => {
        if Dialect::of($conn) == Dialect::Postgres {
            concat!($sql, " ", $lock)
        } else {
            $sql
        }
    };
}

macro_rules! version_cols {
    () => {
        "version_id, manifest, size, etag, last_modified_ms, user_meta, delete_marker"
    };
}

macro_rules! part_cols {
    () => {
        "part_number, manifest, size, etag, last_modified_ms"
    };
}

/// How many times a conditional insert that lost to a concurrent insert decides again.
const MAX_REDECIDE: usize = 64;

fn to_i64(what: &'static str, n: u64) -> Result<i64> {
    i64::try_from(n).map_err(|_| MetaError::invalid(what, format!("{n} is too large")))
}

fn to_u64(table: &'static str, n: i64) -> Result<u64> {
    u64::try_from(n).map_err(|_| MetaError::corrupt(table, format!("negative size {n}")))
}

fn limit_of(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn utf8(table: &'static str, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| MetaError::corrupt(table, "a key is not UTF-8"))
}

/// Wraps a name read back from the database, treating an invalid one as corruption.
fn name<T>(table: &'static str, made: Result<T>) -> Result<T> {
    made.map_err(|e| MetaError::corrupt(table, e.to_string()))
}

fn col<'r, T>(table: &'static str, row: &'r AnyRow, i: usize) -> Result<T>
where
    T: sqlx::Decode<'r, Any> + sqlx::Type<Any>,
{
    row.try_get(i)
        .map_err(|e| MetaError::corrupt(table, e.to_string()))
}

// ---------------------------------------------------------------- buckets

async fn bucket_exists(conn: &mut AnyConnection, bucket: &BucketName, lock: bool) -> Result<()> {
    let sql = if lock {
        locked!(
            &*conn,
            "SELECT 1 FROM buckets WHERE name = $1",
            "FOR KEY SHARE"
        )
    } else {
        "SELECT 1 FROM buckets WHERE name = $1"
    };
    let row = sqlx::query(sql)
        .bind(bucket.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("bucket"))?;
    match row {
        Some(_) => Ok(()),
        None => Err(MetaError::NoSuchBucket {
            bucket: bucket.clone(),
        }),
    }
}

fn bucket_row(row: &AnyRow) -> Result<Bucket> {
    const T: &str = "buckets";
    Ok(Bucket {
        name: name(T, BucketName::new(col::<String>(T, row, 0)?))?,
        owner: col(T, row, 1)?,
        policy: col(T, row, 2)?,
        created: UnixMillis(col(T, row, 3)?),
        settings: col::<Option<Vec<u8>>>(T, row, 4)?.unwrap_or_default(),
    })
}

pub(super) async fn create_bucket(conn: &mut AnyConnection, bucket: &Bucket) -> Result<()> {
    let op = "create_bucket";
    let inserted = sqlx::query(
        "INSERT INTO buckets (name, owner, policy, created_ms, settings) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING",
    )
    .bind(bucket.name.as_str())
    .bind(bucket.owner.as_str())
    .bind(bucket.policy.as_slice())
    .bind(bucket.created.0)
    .bind(bucket.settings.as_slice())
    .execute(&mut *conn)
    .await
    .map_err(db(op))?
    .rows_affected();
    if inserted == 1 {
        return Ok(());
    }
    let owner: Option<String> = sqlx::query_scalar("SELECT owner FROM buckets WHERE name = $1")
        .bind(bucket.name.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db(op))?;
    Err(MetaError::BucketExists {
        bucket: bucket.name.clone(),
        owner: owner.unwrap_or_default(),
    })
}

pub(super) async fn get_bucket(
    conn: &mut AnyConnection,
    name: &BucketName,
) -> Result<Option<Bucket>> {
    sqlx::query("SELECT name, owner, policy, created_ms, settings FROM buckets WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("get_bucket"))?
        .map(|r| bucket_row(&r))
        .transpose()
}

pub(super) async fn list_buckets(conn: &mut AnyConnection) -> Result<Vec<Bucket>> {
    let rows = sqlx::query("SELECT name, owner, policy, created_ms, settings FROM buckets")
        .fetch_all(&mut *conn)
        .await
        .map_err(db("list_buckets"))?;
    let mut buckets = rows.iter().map(bucket_row).collect::<Result<Vec<_>>>()?;
    // Sorted here, not by the database, so the order is bytewise whatever the collation.
    buckets.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(buckets)
}

pub(super) async fn set_bucket_settings(
    conn: &mut AnyConnection,
    name: &BucketName,
    settings: &[u8],
) -> Result<()> {
    let updated = sqlx::query("UPDATE buckets SET settings = $2 WHERE name = $1")
        .bind(name.as_str())
        .bind(settings)
        .execute(&mut *conn)
        .await
        .map_err(db("set_bucket_settings"))?
        .rows_affected();
    if updated == 0 {
        return Err(MetaError::NoSuchBucket {
            bucket: name.clone(),
        });
    }
    Ok(())
}

pub(super) async fn set_bucket_policy(
    conn: &mut AnyConnection,
    name: &BucketName,
    policy: &[u8],
) -> Result<()> {
    let updated = sqlx::query("UPDATE buckets SET policy = $2 WHERE name = $1")
        .bind(name.as_str())
        .bind(policy)
        .execute(&mut *conn)
        .await
        .map_err(db("set_bucket_policy"))?
        .rows_affected();
    if updated == 0 {
        return Err(MetaError::NoSuchBucket {
            bucket: name.clone(),
        });
    }
    Ok(())
}

pub(super) async fn delete_bucket(conn: &mut AnyConnection, bucket: &BucketName) -> Result<()> {
    let op = "delete_bucket";
    let sql = locked!(
        &*conn,
        "SELECT 1 FROM buckets WHERE name = $1",
        "FOR UPDATE"
    );
    let found = sqlx::query(sql)
        .bind(bucket.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db(op))?;
    if found.is_none() {
        return Err(MetaError::NoSuchBucket {
            bucket: bucket.clone(),
        });
    }
    for sql in [
        "SELECT 1 FROM objects WHERE bucket = $1 AND delete_marker = 0 LIMIT 1",
        "SELECT 1 FROM uploads WHERE bucket = $1 LIMIT 1",
    ] {
        let row = sqlx::query(sql)
            .bind(bucket.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(db(op))?;
        if row.is_some() {
            return Err(MetaError::BucketNotEmpty {
                bucket: bucket.clone(),
            });
        }
    }
    for sql in [
        "DELETE FROM objects WHERE bucket = $1",
        "DELETE FROM grants WHERE bucket = $1",
        "DELETE FROM buckets WHERE name = $1",
    ] {
        sqlx::query(sql)
            .bind(bucket.as_str())
            .execute(&mut *conn)
            .await
            .map_err(db(op))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- objects

fn version_row(row: &AnyRow, at: usize) -> Result<NewVersion> {
    const T: &str = "objects";
    Ok(NewVersion {
        version_id: name(T, VersionId::new(col::<String>(T, row, at)?))?,
        manifest: col(T, row, at + 1)?,
        size: to_u64(T, col(T, row, at + 2)?)?,
        etag: name(T, ETag::new(col::<String>(T, row, at + 3)?))?,
        last_modified: UnixMillis(col(T, row, at + 4)?),
        user_metadata: decode_map(T, &col::<Vec<u8>>(T, row, at + 5)?)?,
        delete_marker: col::<i64>(T, row, at + 6)? != 0,
    })
}

/// Binds `$1..$9` of an objects row: bucket, key, then the version's columns.
fn bind_version<'q>(
    query: Query<'q, Any, AnyArguments>,
    bucket: &BucketName,
    key: &ObjectKey,
    v: &NewVersion,
) -> Result<Query<'q, Any, AnyArguments>> {
    Ok(query
        .bind(bucket.as_str().to_string())
        .bind(key.as_str().as_bytes().to_vec())
        .bind(v.version_id.as_str().to_string())
        .bind(v.manifest.clone())
        .bind(to_i64("size", v.size)?)
        .bind(v.etag.as_str().to_string())
        .bind(v.last_modified.0)
        .bind(encode_map(&v.user_metadata))
        .bind(i64::from(v.delete_marker)))
}

async fn current_version(
    conn: &mut AnyConnection,
    bucket: &BucketName,
    key: &ObjectKey,
    lock: bool,
) -> Result<Option<NewVersion>> {
    const SQL: &str = concat!(
        "SELECT ",
        version_cols!(),
        " FROM objects WHERE bucket = $1 AND key = $2"
    );
    let sql = if lock {
        locked!(
            &*conn,
            concat!(
                "SELECT ",
                version_cols!(),
                " FROM objects WHERE bucket = $1 AND key = $2"
            ),
            "FOR UPDATE"
        )
    } else {
        SQL
    };
    sqlx::query(sql)
        .bind(bucket.as_str())
        .bind(key.as_str().as_bytes())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("read version"))?
        .map(|r| version_row(&r, 0))
        .transpose()
}

fn check_condition(
    bucket: &BucketName,
    key: &ObjectKey,
    current: Option<&NewVersion>,
    condition: &CommitCondition,
) -> Result<()> {
    let live = current.filter(|v| !v.delete_marker);
    match (condition, live) {
        (CommitCondition::Unconditional, _)
        | (CommitCondition::IfAbsent, None)
        | (CommitCondition::IfExists, Some(_)) => Ok(()),
        (CommitCondition::IfAbsent, Some(v)) => Err(MetaError::AlreadyExists {
            bucket: bucket.clone(),
            key: key.clone(),
            current_etag: v.etag.clone(),
        }),
        (CommitCondition::IfExists, None) => Err(MetaError::NoLiveVersion {
            bucket: bucket.clone(),
            key: key.clone(),
            delete_marker: current.is_some_and(|v| v.delete_marker),
        }),
        (CommitCondition::IfMatch(expected), Some(v)) if &v.etag == expected => Ok(()),
        (CommitCondition::IfMatch(expected), live) => Err(MetaError::EtagMismatch {
            bucket: bucket.clone(),
            key: key.clone(),
            expected: expected.clone(),
            current: live.map(|v| v.etag.clone()),
        }),
    }
}

/// The conditional commit, for a bucket already known to exist.
async fn commit_in(
    conn: &mut AnyConnection,
    bucket: &BucketName,
    key: &ObjectKey,
    version: &NewVersion,
    condition: &CommitCondition,
) -> Result<Superseded> {
    let op = "commit";
    for _ in 0..MAX_REDECIDE {
        let current = current_version(conn, bucket, key, true).await?;
        check_condition(bucket, key, current.as_ref(), condition)?;
        if let Some(previous) = current {
            let update = sqlx::query(
                "UPDATE objects SET version_id = $3, manifest = $4, size = $5, etag = $6, \
                 last_modified_ms = $7, user_meta = $8, delete_marker = $9 \
                 WHERE bucket = $1 AND key = $2",
            );
            bind_version(update, bucket, key, version)?
                .execute(&mut *conn)
                .await
                .map_err(db(op))?;
            return Ok(Superseded {
                previous: Some(ObjectVersion {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    version: previous,
                }),
            });
        }
        let insert = sqlx::query(
            "INSERT INTO objects (bucket, key, version_id, manifest, size, etag, last_modified_ms, \
             user_meta, delete_marker) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (bucket, key) DO NOTHING",
        );
        let inserted = bind_version(insert, bucket, key, version)?
            .execute(&mut *conn)
            .await
            .map_err(db(op))?
            .rows_affected();
        if inserted == 1 {
            return Ok(Superseded::default());
        }
        // PostgreSQL: a concurrent committer inserted first; decide again against its
        // version, now visible and locked by `FOR UPDATE`.
    }
    Err(MetaError::Unavailable {
        op,
        code: None,
        message: format!("{bucket}/{key}: lost {MAX_REDECIDE} insert races in a row"),
    })
}

pub(super) async fn commit(
    conn: &mut AnyConnection,
    bucket: &BucketName,
    key: &ObjectKey,
    version: &NewVersion,
    condition: &CommitCondition,
) -> Result<Superseded> {
    bucket_exists(conn, bucket, true).await?;
    commit_in(conn, bucket, key, version, condition).await
}

pub(super) async fn get(
    conn: &mut AnyConnection,
    bucket: &BucketName,
    key: &ObjectKey,
) -> Result<Option<ObjectVersion>> {
    match current_version(conn, bucket, key, false).await? {
        Some(version) => Ok(Some(ObjectVersion {
            bucket: bucket.clone(),
            key: key.clone(),
            version,
        })),
        None => bucket_exists(conn, bucket, false).await.map(|()| None),
    }
}

pub(super) async fn list_versions(
    conn: &mut AnyConnection,
    bucket: &BucketName,
    after: Option<&ObjectKey>,
    limit: usize,
) -> Result<Vec<ObjectVersion>> {
    const T: &str = "objects";
    const SQL: &str = concat!(
        "SELECT key, ",
        version_cols!(),
        " FROM objects WHERE bucket = $1 AND key > $2 ORDER BY key LIMIT $3"
    );
    let after: Vec<u8> = after.map_or_else(Vec::new, |k| k.as_str().as_bytes().to_vec());
    let rows = sqlx::query(SQL)
        .bind(bucket.as_str())
        .bind(after)
        .bind(to_i64("limit", limit as u64)?)
        .fetch_all(&mut *conn)
        .await
        .map_err(db("list versions"))?;
    if rows.is_empty() {
        bucket_exists(conn, bucket, false).await?;
    }
    rows.iter()
        .map(|row| {
            Ok(ObjectVersion {
                bucket: bucket.clone(),
                key: name(T, ObjectKey::new(utf8(T, col(T, row, 0)?)?))?,
                version: version_row(row, 1)?,
            })
        })
        .collect()
}

pub(super) async fn delete(
    conn: &mut AnyConnection,
    bucket: &BucketName,
    key: &ObjectKey,
    condition: &DeleteCondition,
) -> Result<Superseded> {
    bucket_exists(conn, bucket, true).await?;
    // Decided on the row as locked by this transaction (`FOR UPDATE` on PostgreSQL, the
    // single writer on SQLite): a concurrent commit or delete is either wholly before this
    // check or waits for this transaction to end.
    let current = current_version(conn, bucket, key, true).await?;
    check_condition(
        bucket,
        key,
        current.as_ref(),
        &condition.as_commit_condition(),
    )?;
    let Some(previous) = current else {
        return Ok(Superseded::default());
    };
    sqlx::query("DELETE FROM objects WHERE bucket = $1 AND key = $2")
        .bind(bucket.as_str())
        .bind(key.as_str().as_bytes())
        .execute(&mut *conn)
        .await
        .map_err(db("delete"))?;
    Ok(Superseded {
        previous: Some(ObjectVersion {
            bucket: bucket.clone(),
            key: key.clone(),
            version: previous,
        }),
    })
}

pub(super) async fn replace_manifest(
    conn: &mut AnyConnection,
    bucket: &BucketName,
    key: &ObjectKey,
    version_id: &VersionId,
    expected: &[u8],
    manifest: &[u8],
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE objects SET manifest = $1 WHERE bucket = $2 AND key = $3 \
         AND version_id = $4 AND manifest = $5 AND delete_marker = 0",
    )
    .bind(manifest.to_vec())
    .bind(bucket.as_str())
    .bind(key.as_str().as_bytes())
    .bind(version_id.as_str())
    .bind(expected.to_vec())
    .execute(&mut *conn)
    .await
    .map_err(db("replace_manifest"))?
    .rows_affected();
    Ok(done == 1)
}

/// The SQL of one range scan: `select` must end in a `WHERE` clause using `$1` only; the
/// lower and upper bounds follow as `$2…`, then the limit. Returns the SQL and the byte
/// arguments to bind after `$1`, in order.
fn range_sql(select: &str, tie_col: Option<&str>, q: &RangeQuery) -> (String, Vec<Vec<u8>>) {
    let mut sql = String::from(select);
    let mut args: Vec<Vec<u8>> = Vec::new();
    let next = |args: &mut Vec<Vec<u8>>, v: &[u8]| {
        args.push(v.to_vec());
        format!("${}", args.len() + 1)
    };
    match (&q.lower, tie_col) {
        (Lower::AtLeast(k), _) => {
            let p = next(&mut args, k);
            sql.push_str(&format!(" AND key >= {p}"));
        }
        (Lower::AfterTie(k, t), Some(tie)) => {
            let pk = next(&mut args, k);
            let pt = next(&mut args, t);
            sql.push_str(&format!(" AND (key, {tie}) > ({pk}, {pt})"));
        }
        (Lower::After(k) | Lower::AfterTie(k, _), _) => {
            let p = next(&mut args, k);
            sql.push_str(&format!(" AND key > {p}"));
        }
    }
    if let Some(upper) = &q.upper {
        let p = next(&mut args, upper);
        sql.push_str(&format!(" AND key < {p}"));
    }
    match tie_col {
        Some(tie) => sql.push_str(&format!(" ORDER BY key, {tie}")),
        None => sql.push_str(" ORDER BY key"),
    }
    sql.push_str(&format!(" LIMIT ${}", args.len() + 2));
    (sql, args)
}

async fn range_rows(
    conn: &mut AnyConnection,
    op: &'static str,
    select: &str,
    tie_col: Option<&str>,
    bucket: &BucketName,
    q: &RangeQuery,
) -> Result<Vec<AnyRow>> {
    let (sql, args) = range_sql(select, tie_col, q);
    let mut query = sqlx::query(AssertSqlSafe(sql)).bind(bucket.as_str().to_string());
    for arg in args {
        query = query.bind(arg);
    }
    query
        .bind(limit_of(q.limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(db(op))
}

pub(super) async fn list(
    conn: &mut AnyConnection,
    bucket: &BucketName,
    q: &ListQuery,
) -> Result<ObjectPage> {
    const T: &str = "objects";
    const SELECT: &str = "SELECT key, version_id, size, etag, last_modified_ms FROM objects \
                          WHERE bucket = $1 AND delete_marker = 0";
    bucket_exists(conn, bucket, false).await?;
    let mut lister = Lister::new(
        q.prefix.as_bytes(),
        q.delimiter.as_deref().map(str::as_bytes),
        q.start_after
            .as_ref()
            .map(|s| (s.as_bytes().to_vec(), None)),
        q.max_keys,
    );
    while let Some(rq) = lister.next_query() {
        let rows = range_rows(conn, "list", SELECT, None, bucket, &rq).await?;
        let rows = rows
            .iter()
            .map(|row| {
                let key: Vec<u8> = col(T, row, 0)?;
                let item = ObjectSummary {
                    key: name(T, ObjectKey::new(utf8(T, key.clone())?))?,
                    version_id: name(T, VersionId::new(col::<String>(T, row, 1)?))?,
                    size: to_u64(T, col(T, row, 2)?)?,
                    etag: name(T, ETag::new(col::<String>(T, row, 3)?))?,
                    last_modified: UnixMillis(col(T, row, 4)?),
                };
                Ok(crate::list::Row {
                    key,
                    tie: Vec::new(),
                    item,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        lister.feed(rows, rq.limit);
    }
    let (entries, is_truncated) = lister.finish();
    let mut page = ObjectPage {
        is_truncated,
        ..ObjectPage::default()
    };
    for entry in entries {
        let last = match entry {
            Entry::Item(o) => {
                let k = o.key.as_str().to_string();
                page.objects.push(o);
                k
            }
            Entry::Prefix(p) => {
                let p = utf8(T, p)?;
                page.common_prefixes.push(p.clone());
                p
            }
        };
        if is_truncated {
            page.next_start_after = Some(last);
        }
    }
    Ok(page)
}

/// Bulk upsert of versions, one multi-row statement per call.
pub(super) async fn import_versions(
    conn: &mut AnyConnection,
    bucket: &BucketName,
    rows: &[(ObjectKey, NewVersion)],
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut sql = String::from(
        "INSERT INTO objects (bucket, key, version_id, manifest, size, etag, last_modified_ms, \
         user_meta, delete_marker) VALUES ",
    );
    for i in 0..rows.len() {
        let b = i * 9;
        if i > 0 {
            sql.push_str(", ");
        }
        let params: Vec<String> = (1..=9).map(|j| format!("${}", b + j)).collect();
        sql.push_str(&format!("({})", params.join(", ")));
    }
    sql.push_str(
        " ON CONFLICT (bucket, key) DO UPDATE SET version_id = excluded.version_id, \
         manifest = excluded.manifest, size = excluded.size, etag = excluded.etag, \
         last_modified_ms = excluded.last_modified_ms, user_meta = excluded.user_meta, \
         delete_marker = excluded.delete_marker",
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (key, version) in rows {
        query = bind_version(query, bucket, key, version)?;
    }
    query
        .execute(&mut *conn)
        .await
        .map_err(db("import_versions"))?;
    Ok(())
}

// ---------------------------------------------------------------- multipart uploads

fn upload_row(bucket: &BucketName, row: &AnyRow) -> Result<Upload> {
    const T: &str = "uploads";
    Ok(Upload {
        bucket: bucket.clone(),
        upload: NewUpload {
            key: name(T, ObjectKey::new(utf8(T, col(T, row, 0)?)?))?,
            upload_id: name(T, UploadId::new(utf8(T, col(T, row, 1)?)?))?,
            initiated: UnixMillis(col(T, row, 2)?),
            metadata: col(T, row, 3)?,
        },
    })
}

fn part_row(row: &AnyRow) -> Result<Part> {
    const T: &str = "parts";
    let number: i64 = col(T, row, 0)?;
    Ok(Part {
        part_number: u32::try_from(number)
            .map_err(|_| MetaError::corrupt(T, format!("part number {number}")))?,
        manifest: col(T, row, 1)?,
        size: to_u64(T, col(T, row, 2)?)?,
        etag: name(T, ETag::new(col::<String>(T, row, 3)?))?,
        last_modified: UnixMillis(col(T, row, 4)?),
    })
}

fn no_such_upload(u: &UploadRef) -> MetaError {
    MetaError::NoSuchUpload {
        bucket: u.bucket.clone(),
        key: u.key.clone(),
        upload_id: u.upload_id.clone(),
    }
}

/// Reads an upload; `lock`: `FOR UPDATE` (complete, abort) or `FOR KEY SHARE` (put part).
async fn upload_of(
    conn: &mut AnyConnection,
    u: &UploadRef,
    lock: Option<bool>,
) -> Result<Option<Upload>> {
    const SQL: &str = "SELECT key, upload_id, initiated_ms, metadata FROM uploads \
                       WHERE bucket = $1 AND key = $2 AND upload_id = $3";
    let sql = match lock {
        None => SQL,
        Some(true) => locked!(
            &*conn,
            "SELECT key, upload_id, initiated_ms, metadata FROM uploads \
             WHERE bucket = $1 AND key = $2 AND upload_id = $3",
            "FOR UPDATE"
        ),
        Some(false) => locked!(
            &*conn,
            "SELECT key, upload_id, initiated_ms, metadata FROM uploads \
             WHERE bucket = $1 AND key = $2 AND upload_id = $3",
            "FOR KEY SHARE"
        ),
    };
    sqlx::query(sql)
        .bind(u.bucket.as_str())
        .bind(u.key.as_str().as_bytes())
        .bind(u.upload_id.as_str().as_bytes())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("read upload"))?
        .map(|r| upload_row(&u.bucket, &r))
        .transpose()
}

pub(super) async fn get_upload(
    conn: &mut AnyConnection,
    u: &UploadRef,
    _lock: bool,
) -> Result<Option<Upload>> {
    match upload_of(conn, u, None).await? {
        Some(upload) => Ok(Some(upload)),
        None => bucket_exists(conn, &u.bucket, false).await.map(|()| None),
    }
}

pub(super) async fn create_upload(
    conn: &mut AnyConnection,
    bucket: &BucketName,
    upload: &NewUpload,
) -> Result<()> {
    bucket_exists(conn, bucket, true).await?;
    let inserted = sqlx::query(
        "INSERT INTO uploads (bucket, key, upload_id, initiated_ms, metadata) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (bucket, key, upload_id) DO NOTHING",
    )
    .bind(bucket.as_str())
    .bind(upload.key.as_str().as_bytes())
    .bind(upload.upload_id.as_str().as_bytes())
    .bind(upload.initiated.0)
    .bind(upload.metadata.as_slice())
    .execute(&mut *conn)
    .await
    .map_err(db("create_upload"))?
    .rows_affected();
    if inserted == 0 {
        return Err(MetaError::Duplicate {
            what: "upload",
            id: format!("{bucket}/{}/{}", upload.key, upload.upload_id),
        });
    }
    Ok(())
}

pub(super) async fn put_part(
    conn: &mut AnyConnection,
    u: &UploadRef,
    part: &Part,
) -> Result<Option<Part>> {
    let op = "put_part";
    if !(1..=10_000).contains(&part.part_number) {
        return Err(MetaError::invalid(
            "part number",
            format!("{} is not in 1..=10000", part.part_number),
        ));
    }
    if upload_of(conn, u, Some(false)).await?.is_none() {
        bucket_exists(conn, &u.bucket, false).await?;
        return Err(no_such_upload(u));
    }
    let size = to_i64("size", part.size)?;
    for _ in 0..MAX_REDECIDE {
        let sql = locked!(
            &*conn,
            concat!(
                "SELECT ",
                part_cols!(),
                " FROM parts WHERE bucket = $1 AND key = $2 AND upload_id = $3 AND part_number = $4"
            ),
            "FOR UPDATE"
        );
        let current = sqlx::query(sql)
            .bind(u.bucket.as_str())
            .bind(u.key.as_str().as_bytes())
            .bind(u.upload_id.as_str().as_bytes())
            .bind(i64::from(part.part_number))
            .fetch_optional(&mut *conn)
            .await
            .map_err(db(op))?
            .map(|r| part_row(&r))
            .transpose()?;
        let sql = if current.is_some() {
            "UPDATE parts SET manifest = $5, size = $6, etag = $7, last_modified_ms = $8 \
             WHERE bucket = $1 AND key = $2 AND upload_id = $3 AND part_number = $4"
        } else {
            "INSERT INTO parts (bucket, key, upload_id, part_number, manifest, size, etag, last_modified_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (bucket, key, upload_id, part_number) DO NOTHING"
        };
        let written = sqlx::query(sql)
            .bind(u.bucket.as_str())
            .bind(u.key.as_str().as_bytes())
            .bind(u.upload_id.as_str().as_bytes())
            .bind(i64::from(part.part_number))
            .bind(part.manifest.as_slice())
            .bind(size)
            .bind(part.etag.as_str())
            .bind(part.last_modified.0)
            .execute(&mut *conn)
            .await
            .map_err(db(op))?
            .rows_affected();
        if written == 1 {
            return Ok(current);
        }
    }
    Err(MetaError::Unavailable {
        op,
        code: None,
        message: format!(
            "{}/{}: lost {MAX_REDECIDE} part insert races in a row",
            u.bucket, u.key
        ),
    })
}

pub(super) async fn list_parts(
    conn: &mut AnyConnection,
    u: &UploadRef,
    q: &PartQuery,
) -> Result<PartPage> {
    if upload_of(conn, u, None).await?.is_none() {
        bucket_exists(conn, &u.bucket, false).await?;
        return Err(no_such_upload(u));
    }
    let max = q.max_parts.min(MAX_PAGE);
    if max == 0 {
        return Ok(PartPage::default());
    }
    let rows = sqlx::query(concat!(
        "SELECT ",
        part_cols!(),
        " FROM parts WHERE bucket = $1 AND key = $2 AND upload_id = $3 AND part_number > $4 \
         ORDER BY part_number LIMIT $5"
    ))
    .bind(u.bucket.as_str())
    .bind(u.key.as_str().as_bytes())
    .bind(u.upload_id.as_str().as_bytes())
    .bind(i64::from(q.after.unwrap_or(0)))
    .bind(limit_of(max + 1))
    .fetch_all(&mut *conn)
    .await
    .map_err(db("list_parts"))?;
    let mut parts = rows.iter().map(part_row).collect::<Result<Vec<_>>>()?;
    let is_truncated = parts.len() > max;
    parts.truncate(max);
    let next_after = if is_truncated {
        parts.last().map(|p| p.part_number)
    } else {
        None
    };
    Ok(PartPage {
        parts,
        is_truncated,
        next_after,
    })
}

pub(super) async fn list_uploads(
    conn: &mut AnyConnection,
    bucket: &BucketName,
    q: &UploadQuery,
) -> Result<UploadPage> {
    const T: &str = "uploads";
    const SELECT: &str =
        "SELECT key, upload_id, initiated_ms, metadata FROM uploads WHERE bucket = $1";
    bucket_exists(conn, bucket, false).await?;
    let cursor = q.key_marker.as_ref().map(|k| {
        (
            k.as_bytes().to_vec(),
            q.upload_id_marker.as_ref().map(|u| u.as_bytes().to_vec()),
        )
    });
    let mut lister = Lister::new(
        q.prefix.as_bytes(),
        q.delimiter.as_deref().map(str::as_bytes),
        cursor,
        q.max_uploads,
    );
    while let Some(rq) = lister.next_query() {
        let rows = range_rows(conn, "list_uploads", SELECT, Some("upload_id"), bucket, &rq).await?;
        let rows = rows
            .iter()
            .map(|row| {
                let upload = upload_row(bucket, row)?;
                Ok(crate::list::Row {
                    key: upload.upload.key.as_str().as_bytes().to_vec(),
                    tie: upload.upload.upload_id.as_str().as_bytes().to_vec(),
                    item: upload,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        lister.feed(rows, rq.limit);
    }
    let (entries, is_truncated) = lister.finish();
    let mut page = UploadPage {
        is_truncated,
        ..UploadPage::default()
    };
    for entry in entries {
        let (key, id) = match entry {
            Entry::Item(u) => {
                let marker = (
                    u.upload.key.as_str().to_string(),
                    Some(u.upload.upload_id.as_str().to_string()),
                );
                page.uploads.push(u);
                marker
            }
            Entry::Prefix(p) => {
                let p = utf8(T, p)?;
                page.common_prefixes.push(p.clone());
                (p, None)
            }
        };
        if is_truncated {
            page.next_key_marker = Some(key);
            page.next_upload_id_marker = id;
        }
    }
    Ok(page)
}

/// Removes an upload locked by the caller and returns its parts.
async fn remove_upload(conn: &mut AnyConnection, u: &UploadRef) -> Result<Vec<Part>> {
    let op = "remove upload";
    let rows = sqlx::query(concat!(
        "SELECT ",
        part_cols!(),
        " FROM parts WHERE bucket = $1 AND key = $2 AND upload_id = $3 ORDER BY part_number"
    ))
    .bind(u.bucket.as_str())
    .bind(u.key.as_str().as_bytes())
    .bind(u.upload_id.as_str().as_bytes())
    .fetch_all(&mut *conn)
    .await
    .map_err(db(op))?;
    let parts = rows.iter().map(part_row).collect::<Result<Vec<_>>>()?;
    for sql in [
        "DELETE FROM parts WHERE bucket = $1 AND key = $2 AND upload_id = $3",
        "DELETE FROM uploads WHERE bucket = $1 AND key = $2 AND upload_id = $3",
    ] {
        sqlx::query(sql)
            .bind(u.bucket.as_str())
            .bind(u.key.as_str().as_bytes())
            .bind(u.upload_id.as_str().as_bytes())
            .execute(&mut *conn)
            .await
            .map_err(db(op))?;
    }
    Ok(parts)
}

pub(super) async fn complete_upload(
    conn: &mut AnyConnection,
    u: &UploadRef,
    version: &NewVersion,
    condition: &CommitCondition,
) -> Result<Completed> {
    if upload_of(conn, u, Some(true)).await?.is_none() {
        bucket_exists(conn, &u.bucket, false).await?;
        return Err(no_such_upload(u));
    }
    bucket_exists(conn, &u.bucket, true).await?;
    let superseded = commit_in(conn, &u.bucket, &u.key, version, condition).await?;
    let parts = remove_upload(conn, u).await?;
    Ok(Completed {
        previous: superseded.previous,
        parts,
    })
}

pub(super) async fn abort_upload(conn: &mut AnyConnection, u: &UploadRef) -> Result<Completed> {
    if upload_of(conn, u, Some(true)).await?.is_none() {
        bucket_exists(conn, &u.bucket, false).await?;
        return Err(no_such_upload(u));
    }
    Ok(Completed {
        previous: None,
        parts: remove_upload(conn, u).await?,
    })
}

// ---------------------------------------------------------------- access keys and grants

fn access_key_row(row: &AnyRow) -> Result<AccessKey> {
    const T: &str = "access_keys";
    Ok(AccessKey {
        id: name(T, AccessKeyId::new(col::<String>(T, row, 0)?))?,
        sealed_secret: col(T, row, 1)?,
        owner: col(T, row, 2)?,
        created: UnixMillis(col(T, row, 3)?),
        enabled: col::<i64>(T, row, 4)? != 0,
    })
}

pub(super) async fn create_access_key(conn: &mut AnyConnection, key: &AccessKey) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO access_keys (id, sealed_secret, owner, created_ms, enabled) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(key.id.as_str())
    .bind(key.sealed_secret.as_slice())
    .bind(key.owner.as_str())
    .bind(key.created.0)
    .bind(i64::from(key.enabled))
    .execute(&mut *conn)
    .await
    .map_err(db("create_access_key"))?
    .rows_affected();
    if inserted == 0 {
        return Err(MetaError::Duplicate {
            what: "access key",
            id: key.id.to_string(),
        });
    }
    Ok(())
}

pub(super) async fn get_access_key(
    conn: &mut AnyConnection,
    id: &AccessKeyId,
) -> Result<Option<AccessKey>> {
    sqlx::query(
        "SELECT id, sealed_secret, owner, created_ms, enabled FROM access_keys WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db("get_access_key"))?
    .map(|r| access_key_row(&r))
    .transpose()
}

pub(super) async fn list_access_keys(conn: &mut AnyConnection) -> Result<Vec<AccessKey>> {
    let rows = sqlx::query("SELECT id, sealed_secret, owner, created_ms, enabled FROM access_keys")
        .fetch_all(&mut *conn)
        .await
        .map_err(db("list_access_keys"))?;
    let mut keys = rows
        .iter()
        .map(access_key_row)
        .collect::<Result<Vec<_>>>()?;
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(keys)
}

pub(super) async fn delete_access_key(conn: &mut AnyConnection, id: &AccessKeyId) -> Result<bool> {
    let op = "delete_access_key";
    sqlx::query("DELETE FROM grants WHERE access_key = $1")
        .bind(id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db(op))?;
    let deleted = sqlx::query("DELETE FROM access_keys WHERE id = $1")
        .bind(id.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db(op))?
        .rows_affected();
    Ok(deleted > 0)
}

pub(super) async fn set_grant(
    conn: &mut AnyConnection,
    key: &AccessKeyId,
    bucket: &BucketName,
    permissions: Permissions,
) -> Result<()> {
    let op = "set_grant";
    let found = sqlx::query(locked!(
        &*conn,
        "SELECT 1 FROM access_keys WHERE id = $1",
        "FOR KEY SHARE"
    ))
    .bind(key.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(db(op))?;
    if found.is_none() {
        return Err(MetaError::NotFound {
            what: "access key",
            id: key.to_string(),
        });
    }
    bucket_exists(conn, bucket, true).await?;
    let query = if permissions == Permissions::default() {
        sqlx::query("DELETE FROM grants WHERE access_key = $1 AND bucket = $2")
            .bind(key.as_str())
            .bind(bucket.as_str())
    } else {
        sqlx::query(
            "INSERT INTO grants (access_key, bucket, permissions) VALUES ($1, $2, $3) \
             ON CONFLICT (access_key, bucket) DO UPDATE SET permissions = excluded.permissions",
        )
        .bind(key.as_str())
        .bind(bucket.as_str())
        .bind(permissions.to_bits())
    };
    query.execute(&mut *conn).await.map_err(db(op))?;
    Ok(())
}

pub(super) async fn list_grants(conn: &mut AnyConnection, key: &AccessKeyId) -> Result<Vec<Grant>> {
    const T: &str = "grants";
    let rows = sqlx::query("SELECT bucket, permissions FROM grants WHERE access_key = $1")
        .bind(key.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(db("list_grants"))?;
    let mut grants = rows
        .iter()
        .map(|row| {
            Ok(Grant {
                bucket: name(T, BucketName::new(col::<String>(T, row, 0)?))?,
                permissions: Permissions::from_bits(col(T, row, 1)?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    grants.sort_by(|a, b| a.bucket.cmp(&b.bucket));
    Ok(grants)
}

// ---------------------------------------------------------------- providers

fn provider_row(row: &AnyRow) -> Result<ProviderRecord> {
    const T: &str = "providers";
    Ok(ProviderRecord {
        name: name(T, ProviderName::new(col::<String>(T, row, 0)?))?,
        labels: decode_map(T, &col::<Vec<u8>>(T, row, 1)?)?,
        state: ProviderState::parse(&col::<String>(T, row, 2)?)?,
        config: col(T, row, 3)?,
        generation: u64::try_from(col::<i64>(T, row, 4)?)
            .map_err(|_| MetaError::corrupt(T, "negative generation"))?,
    })
}

pub(super) async fn put_provider(conn: &mut AnyConnection, p: &ProviderRecord) -> Result<()> {
    sqlx::query(
        "INSERT INTO providers (name, labels, state, config, generation) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, state = excluded.state, \
         config = excluded.config, generation = excluded.generation",
    )
    .bind(p.name.as_str())
    .bind(encode_map(&p.labels))
    .bind(p.state.as_str())
    .bind(p.config.as_slice())
    .bind(
        i64::try_from(p.generation).map_err(|_| MetaError::InvalidArgument {
            what: "provider generation",
            reason: format!("{} is above i64::MAX", p.generation),
        })?,
    )
    .execute(&mut *conn)
    .await
    .map_err(db("put_provider"))?;
    Ok(())
}

pub(super) async fn get_provider(
    conn: &mut AnyConnection,
    name: &ProviderName,
) -> Result<Option<ProviderRecord>> {
    sqlx::query("SELECT name, labels, state, config, generation FROM providers WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("get_provider"))?
        .map(|r| provider_row(&r))
        .transpose()
}

pub(super) async fn list_providers(conn: &mut AnyConnection) -> Result<Vec<ProviderRecord>> {
    let rows = sqlx::query("SELECT name, labels, state, config, generation FROM providers")
        .fetch_all(&mut *conn)
        .await
        .map_err(db("list_providers"))?;
    let mut providers = rows.iter().map(provider_row).collect::<Result<Vec<_>>>()?;
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(providers)
}

pub(super) async fn delete_provider(conn: &mut AnyConnection, name: &ProviderName) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM providers WHERE name = $1")
        .bind(name.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db("delete_provider"))?
        .rows_affected();
    Ok(deleted > 0)
}

// ---------------------------------------------------------------- GC queue

pub(super) async fn enqueue_gc(
    conn: &mut AnyConnection,
    blobs: &[GcBlob],
    now: UnixMillis,
) -> Result<()> {
    for blob in blobs {
        sqlx::query(
            "INSERT INTO gc_queue (provider, blob, enqueued_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (provider, blob) DO NOTHING",
        )
        .bind(blob.provider.as_str().as_bytes())
        .bind(blob.blob.as_bytes())
        .bind(now.0)
        .execute(&mut *conn)
        .await
        .map_err(db("enqueue_gc"))?;
    }
    Ok(())
}

pub(super) async fn peek_gc(
    conn: &mut AnyConnection,
    after: Option<&GcEntry>,
    limit: usize,
) -> Result<Vec<GcEntry>> {
    const T: &str = "gc_queue";
    let limit = limit_of(limit.min(MAX_PAGE));
    let query = match after {
        None => sqlx::query(
            "SELECT provider, blob, enqueued_ms FROM gc_queue ORDER BY enqueued_ms, provider, blob LIMIT $1",
        )
        .bind(limit),
        Some(e) => sqlx::query(
            "SELECT provider, blob, enqueued_ms FROM gc_queue WHERE (enqueued_ms, provider, blob) > ($1, $2, $3) \
             ORDER BY enqueued_ms, provider, blob LIMIT $4",
        )
        .bind(e.enqueued.0)
        .bind(e.blob.provider.as_str().as_bytes().to_vec())
        .bind(e.blob.blob.as_bytes().to_vec())
        .bind(limit),
    };
    let rows = query.fetch_all(&mut *conn).await.map_err(db("peek_gc"))?;
    rows.iter()
        .map(|row| {
            Ok(GcEntry {
                blob: GcBlob {
                    provider: name(T, ProviderName::new(utf8(T, col(T, row, 0)?)?))?,
                    blob: utf8(T, col(T, row, 1)?)?,
                },
                enqueued: UnixMillis(col(T, row, 2)?),
            })
        })
        .collect()
}

pub(super) async fn remove_gc(conn: &mut AnyConnection, blobs: &[GcBlob]) -> Result<u64> {
    let mut removed = 0;
    for blob in blobs {
        removed += sqlx::query("DELETE FROM gc_queue WHERE provider = $1 AND blob = $2")
            .bind(blob.provider.as_str().as_bytes())
            .bind(blob.blob.as_bytes())
            .execute(&mut *conn)
            .await
            .map_err(db("remove_gc"))?
            .rows_affected();
    }
    Ok(removed)
}

// ---------------------------------------------------------------- repair queue

macro_rules! repair_cols {
    () => {
        "provider, blob, bucket, key, version_id, reason, enqueued_ms"
    };
}

pub(super) async fn enqueue_repair(
    conn: &mut AnyConnection,
    items: &[RepairItem],
    now: UnixMillis,
) -> Result<()> {
    if let Some(item) = items.iter().find(|i| i.reason.contains('\0')) {
        return Err(MetaError::invalid(
            "repair reason",
            format!("{:?}: must not contain NUL", item.reason),
        ));
    }
    for item in items {
        sqlx::query(concat!(
            "INSERT INTO repair_queue (",
            repair_cols!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (provider, blob) DO NOTHING"
        ))
        .bind(item.blob.provider.as_str().as_bytes())
        .bind(item.blob.blob.as_bytes())
        .bind(item.bucket.as_str())
        .bind(item.key.as_str().as_bytes())
        .bind(item.version_id.as_str())
        .bind(item.reason.as_str())
        .bind(now.0)
        .execute(&mut *conn)
        .await
        .map_err(db("enqueue_repair"))?;
    }
    Ok(())
}

fn repair_row(row: &AnyRow) -> Result<RepairEntry> {
    const T: &str = "repair_queue";
    Ok(RepairEntry {
        item: RepairItem {
            blob: GcBlob {
                provider: name(T, ProviderName::new(utf8(T, col(T, row, 0)?)?))?,
                blob: utf8(T, col(T, row, 1)?)?,
            },
            bucket: name(T, BucketName::new(col::<String>(T, row, 2)?))?,
            key: name(T, ObjectKey::new(utf8(T, col(T, row, 3)?)?))?,
            version_id: name(T, VersionId::new(col::<String>(T, row, 4)?))?,
            reason: col(T, row, 5)?,
        },
        enqueued: UnixMillis(col(T, row, 6)?),
    })
}

pub(super) async fn peek_repair(
    conn: &mut AnyConnection,
    after: Option<&RepairEntry>,
    limit: usize,
) -> Result<Vec<RepairEntry>> {
    let limit = limit_of(limit.min(MAX_PAGE));
    let query = match after {
        None => sqlx::query(concat!(
            "SELECT ",
            repair_cols!(),
            " FROM repair_queue ORDER BY enqueued_ms, provider, blob LIMIT $1"
        ))
        .bind(limit),
        Some(e) => sqlx::query(concat!(
            "SELECT ",
            repair_cols!(),
            " FROM repair_queue WHERE (enqueued_ms, provider, blob) > ($1, $2, $3) \
             ORDER BY enqueued_ms, provider, blob LIMIT $4"
        ))
        .bind(e.enqueued.0)
        .bind(e.item.blob.provider.as_str().as_bytes().to_vec())
        .bind(e.item.blob.blob.as_bytes().to_vec())
        .bind(limit),
    };
    let rows = query
        .fetch_all(&mut *conn)
        .await
        .map_err(db("peek_repair"))?;
    rows.iter().map(repair_row).collect()
}

pub(super) async fn remove_repair(conn: &mut AnyConnection, blobs: &[GcBlob]) -> Result<u64> {
    let mut removed = 0;
    for blob in blobs {
        removed += sqlx::query("DELETE FROM repair_queue WHERE provider = $1 AND blob = $2")
            .bind(blob.provider.as_str().as_bytes())
            .bind(blob.blob.as_bytes())
            .execute(&mut *conn)
            .await
            .map_err(db("remove_repair"))?
            .rows_affected();
    }
    Ok(removed)
}

pub(super) async fn count_repair(conn: &mut AnyConnection) -> Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM repair_queue")
        .fetch_one(&mut *conn)
        .await
        .map_err(db("count_repair"))?;
    to_u64("repair_queue", n)
}

// ---------------------------------------------------------------- checkpoints

pub(super) async fn put_checkpoint(
    conn: &mut AnyConnection,
    name: &CheckpointName,
    data: &[u8],
) -> Result<()> {
    sqlx::query(
        "INSERT INTO checkpoints (name, data) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET data = excluded.data",
    )
    .bind(name.as_str())
    .bind(data)
    .execute(&mut *conn)
    .await
    .map_err(db("put_checkpoint"))?;
    Ok(())
}

pub(super) async fn get_checkpoint(
    conn: &mut AnyConnection,
    name: &CheckpointName,
) -> Result<Option<Vec<u8>>> {
    sqlx::query_scalar("SELECT data FROM checkpoints WHERE name = $1")
        .bind(name.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(db("get_checkpoint"))
}

pub(super) async fn delete_checkpoint(
    conn: &mut AnyConnection,
    name: &CheckpointName,
) -> Result<bool> {
    let deleted = sqlx::query("DELETE FROM checkpoints WHERE name = $1")
        .bind(name.as_str())
        .execute(&mut *conn)
        .await
        .map_err(db("delete_checkpoint"))?
        .rows_affected();
    Ok(deleted > 0)
}

pub(super) async fn list_checkpoints(
    conn: &mut AnyConnection,
    prefix: &str,
    after: Option<&CheckpointName>,
    limit: usize,
) -> Result<Vec<(CheckpointName, Vec<u8>)>> {
    const T: &str = "checkpoints";
    // The prefix is matched by characters (collation-independent); the order is the
    // database's for text, the same for `>` and `ORDER BY`.
    let from = after.map_or_else(String::new, |a| a.as_str().to_string());
    let rows = sqlx::query(
        "SELECT name, data FROM checkpoints WHERE SUBSTR(name, 1, CAST($1 AS INTEGER)) = $2 AND name > $3 \
         ORDER BY name LIMIT $4",
    )
    .bind(i64::try_from(prefix.chars().count()).unwrap_or(i64::MAX))
    .bind(prefix)
    .bind(from)
    .bind(limit_of(limit.min(MAX_PAGE)))
    .fetch_all(&mut *conn)
    .await
    .map_err(db("list_checkpoints"))?;
    rows.iter()
        .map(|r| {
            Ok((
                name(T, CheckpointName::new(col::<String>(T, r, 0)?))?,
                col::<Vec<u8>>(T, r, 1)?,
            ))
        })
        .collect()
}

// ---------------------------------------------------------------- leases

pub(super) async fn take_lease(
    conn: &mut AnyConnection,
    name: &CheckpointName,
    owner: &str,
    now: UnixMillis,
    until: UnixMillis,
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO leases (name, owner, until_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, until_ms = excluded.until_ms \
         WHERE leases.until_ms < $4 OR leases.owner = excluded.owner",
    )
    .bind(name.as_str())
    .bind(owner)
    .bind(until.0)
    .bind(now.0)
    .execute(&mut *conn)
    .await
    .map_err(db("take_lease"))?
    .rows_affected();
    Ok(n == 1)
}

pub(super) async fn release_lease(
    conn: &mut AnyConnection,
    name: &CheckpointName,
    owner: &str,
) -> Result<bool> {
    let n = sqlx::query("DELETE FROM leases WHERE name = $1 AND owner = $2")
        .bind(name.as_str())
        .bind(owner)
        .execute(&mut *conn)
        .await
        .map_err(db("release_lease"))?
        .rows_affected();
    Ok(n > 0)
}
