//! The metadata store's conformance suite. Every case in [`conformance!`] runs on the embedded
//! store (SQLite in a temporary directory) and on PostgreSQL (a fresh schema per test in the
//! database named by `ARCHIPEL_TEST_POSTGRES_URL`; `source .ci/postgres.sh` starts one).
//! Without that variable the PostgreSQL cases print why they are skipped and pass — except
//! under `CI=true`, where they fail.
//!
//! One test binary (modules below) to keep link time down; the crash and two-process race
//! tests re-invoke this same binary as their child process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;
mod crash;
mod journal;
mod model;
mod race;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use archipel_meta::{
    Bucket, BucketName, ETag, EmbeddedOptions, MetaStore, NewVersion, ObjectKey, PostgresOptions,
    SqlMetaStore, StringMap, UnixMillis, VersionId,
};

/// The environment variable naming the PostgreSQL server used by the tests.
pub(crate) const PG_ENV: &str = "ARCHIPEL_TEST_POSTGRES_URL";

/// A store under test and what must outlive it.
pub(crate) struct Harness {
    pub(crate) store: Arc<SqlMetaStore>,
    _dir: Option<tempfile::TempDir>,
    pg_schema: Option<(String, String)>,
}

impl Harness {
    pub(crate) fn dyn_store(&self) -> Arc<dyn MetaStore> {
        self.store.clone()
    }

    /// Closes the store; on PostgreSQL also drops the test's schema.
    pub(crate) async fn finish(self) {
        self.store.close().await;
        if let Some((url, schema)) = &self.pg_schema {
            drop_schema(url, schema).await;
        }
    }
}

pub(crate) async fn embedded() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqlMetaStore::open_embedded(EmbeddedOptions::new(dir.path()))
        .await
        .unwrap();
    Harness {
        store: Arc::new(store),
        _dir: Some(dir),
        pg_schema: None,
    }
}

/// The PostgreSQL URL, or `None` (with a visible message) when not configured; panics when
/// not configured under `CI=true`.
pub(crate) fn pg_url() -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{PG_ENV} is not set but CI=true: .ci/run must `source .ci/postgres.sh`")
        }
        _ => {
            // Written to the real stderr (libtest captures `eprintln!`), once per process.
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "skipping PostgreSQL tests: {PG_ENV} is not set (source .ci/postgres.sh to run them)"
                );
            });
            None
        }
    }
}

/// A schema name unique to this process and call.
pub(crate) fn fresh_schema(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "t_{tag}_{}_{}_{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub(crate) async fn postgres_in(url: &str, schema: &str) -> SqlMetaStore {
    let mut options = PostgresOptions::new(url);
    options.schema = Some(schema.to_string());
    options.max_connections = 8;
    SqlMetaStore::connect_postgres(options).await.unwrap()
}

pub(crate) async fn postgres() -> Option<Harness> {
    let url = pg_url()?;
    let schema = fresh_schema("c");
    let store = postgres_in(&url, &schema).await;
    Some(Harness {
        store: Arc::new(store),
        _dir: None,
        pg_schema: Some((url, schema)),
    })
}

pub(crate) async fn drop_schema(url: &str, schema: &str) {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    conn.execute(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"
    )))
    .await
    .unwrap();
}

/// Runs each listed `async fn(Arc<dyn MetaStore>)` in `cases`-like modules on both stores.
macro_rules! conformance {
    ($($module:ident :: $case:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let h = crate::embedded().await;
                    crate::$module::$case(h.dyn_store()).await;
                    h.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(h) = crate::postgres().await else { return };
                    crate::$module::$case(h.dyn_store()).await;
                    h.finish().await;
                }
            )*
        }
    };
}

conformance!(
    cases::buckets_are_created_listed_and_deleted_only_when_empty,
    cases::commits_return_what_they_supersede,
    cases::manifests_are_replaced_only_where_version_and_manifest_still_match,
    cases::conditional_commits_name_what_they_found,
    cases::delete_markers_hide_keys_but_count_as_absent,
    cases::if_exists_commits_need_a_live_current_version,
    cases::conditional_deletes_are_decided_by_the_store,
    cases::object_calls_on_a_missing_bucket_fail,
    cases::listing_follows_s3_order_with_any_delimiter,
    cases::listing_pages_are_capped_at_1000,
    cases::multipart_uploads_complete_atomically,
    cases::multipart_uploads_list_in_s3_order,
    cases::access_keys_and_grants,
    cases::provider_registry,
    cases::gc_queue_pages_oldest_first,
    cases::repair_queue_pages_oldest_first,
    cases::repair_entries_do_not_hold_buckets,
    cases::checkpoints_are_replaced_and_deleted,
    cases::checkpoints_list_by_prefix_in_pages,
    cases::bucket_settings_are_kept_with_the_bucket,
    cases::leases_have_one_holder_until_they_end,
    cases::version_walks_see_every_current_version_in_key_order,
    race::lease_race_has_exactly_one_holder,
    model::random_operations_match_a_btreemap_model,
    race::only_if_absent_race_has_exactly_one_winner,
    race::if_match_race_has_exactly_one_winner,
    race::if_match_delete_race_has_exactly_one_winner,
    race::if_exists_commits_racing_a_delete_never_resurrect_the_key,
);

// ---------------------------------------------------------------- shared builders

pub(crate) fn bucket_name(name: &str) -> BucketName {
    BucketName::s3(name).unwrap()
}

pub(crate) fn key(k: &str) -> ObjectKey {
    ObjectKey::new(k).unwrap()
}

pub(crate) fn etag(e: &str) -> ETag {
    ETag::new(e).unwrap()
}

pub(crate) fn new_bucket(name: &str) -> Bucket {
    Bucket {
        name: bucket_name(name),
        owner: "alice".into(),
        policy: b"k=4,m=2".to_vec(),
        created: UnixMillis(1_700_000_000_000),
        settings: Vec::new(),
    }
}

/// A version whose manifest and etag are derived from `id`, so checks can recompute them.
pub(crate) fn version(id: &str) -> NewVersion {
    let mut user_metadata = StringMap::new();
    user_metadata.insert("content-type".into(), "application/octet-stream".into());
    user_metadata.insert("x-id".into(), id.into());
    NewVersion {
        version_id: VersionId::new(id).unwrap(),
        manifest: manifest_of(id),
        size: id.len() as u64 * 1000,
        etag: etag(&format!("\"{id}\"")),
        last_modified: UnixMillis(1_700_000_000_000 + id.len() as i64),
        user_metadata,
        delete_marker: false,
    }
}

pub(crate) fn manifest_of(id: &str) -> Vec<u8> {
    let mut m = b"manifest:".to_vec();
    m.extend_from_slice(id.as_bytes());
    m.extend(id.bytes().rev());
    m
}

pub(crate) fn delete_marker(id: &str) -> NewVersion {
    NewVersion {
        manifest: Vec::new(),
        size: 0,
        user_metadata: StringMap::new(),
        delete_marker: true,
        ..version(id)
    }
}
