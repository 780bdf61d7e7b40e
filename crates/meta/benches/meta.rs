//! Metadata store benchmark, embedded SQLite vs PostgreSQL:
//!
//! * durable small-object commits per second at concurrency 16 (unconditional and
//!   only-if-absent, distinct keys, ~300-byte manifests);
//! * latency of a 1,000-key list page in a bucket of 1,000,000 keys (random start points), and
//!   of a 1,000-common-prefix page with delimiter `/`.
//!
//! `cargo bench -p archipel-meta` runs the full sizes; PostgreSQL is measured when
//! `ARCHIPEL_TEST_POSTGRES_URL` is set (`source .ci/postgres.sh`). Without `--bench` (for
//! example under `cargo test --benches`) it runs a small smoke version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use archipel_meta::*;

struct Sizes {
    commits: usize,
    keys: usize,
    pages: usize,
}

fn version(id: &str) -> NewVersion {
    let mut user_metadata = StringMap::new();
    user_metadata.insert("content-type".into(), "text/plain".into());
    NewVersion {
        version_id: VersionId::new(id).unwrap(),
        manifest: vec![0xA5; 300],
        size: 4096,
        etag: ETag::new(format!("\"{id}\"")).unwrap(),
        last_modified: UnixMillis(1_700_000_000_000),
        user_metadata,
        delete_marker: false,
    }
}

fn bucket(name: &str) -> Bucket {
    Bucket {
        name: BucketName::s3(name).unwrap(),
        owner: "bench".into(),
        policy: Vec::new(),
        created: UnixMillis(0),
        settings: Vec::new(),
    }
}

async fn commits_per_second(
    store: &Arc<SqlMetaStore>,
    name: &str,
    n: usize,
    condition: CommitCondition,
) -> f64 {
    store.create_bucket(&bucket(name)).await.unwrap();
    let b = BucketName::s3(name).unwrap();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..16 {
        let (store, b, condition) = (store.clone(), b.clone(), condition.clone());
        set.spawn(async move {
            for i in (t..n).step_by(16) {
                let k = ObjectKey::new(format!("obj/{i:08}")).unwrap();
                store
                    .commit(&b, &k, &version(&format!("v{i}")), &condition)
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn big_key(i: usize) -> String {
    format!("d{:03}/k{:07}", i % 1000, i)
}

async fn fill(store: &Arc<SqlMetaStore>, keys: usize) -> Duration {
    store.create_bucket(&bucket("big")).await.unwrap();
    let b = BucketName::s3("big").unwrap();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let chunk = 10_000;
    for worker in 0..2 {
        let (store, b) = (store.clone(), b.clone());
        set.spawn(async move {
            for start in (worker * chunk..keys).step_by(2 * chunk) {
                let rows = (start..(start + chunk).min(keys))
                    .map(|i| (ObjectKey::new(big_key(i)).unwrap(), version("v")))
                    .collect();
                store.import_versions(&b, rows).await.unwrap();
            }
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn page_latency(
    store: &Arc<SqlMetaStore>,
    keys: usize,
    pages: usize,
    delimiter: Option<&str>,
) -> (Duration, Duration, usize) {
    let b = BucketName::s3("big").unwrap();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    let mut times = Vec::with_capacity(pages);
    let mut entries = 0;
    for _ in 0..pages {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let start_after = match delimiter {
            // Random point in the key space (the page then holds the next 1,000 keys).
            None => Some(big_key(rng as usize % keys)),
            // From the start: every entry is a common prefix (one seek each).
            Some(_) => None,
        };
        let query = ListQuery {
            prefix: String::new(),
            delimiter: delimiter.map(Into::into),
            start_after,
            max_keys: 1000,
        };
        let t = Instant::now();
        let page = store.list(&b, &query).await.unwrap();
        times.push(t.elapsed());
        entries = entries.max(page.objects.len() + page.common_prefixes.len());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99), entries)
}

async fn run(label: &str, store: SqlMetaStore, sizes: &Sizes) {
    let store = Arc::new(store);
    commits_per_second(&store, "warmup", 512, CommitCondition::Unconditional).await;
    let put =
        commits_per_second(&store, "put", sizes.commits, CommitCondition::Unconditional).await;
    let create =
        commits_per_second(&store, "create", sizes.commits, CommitCondition::IfAbsent).await;
    println!(
        "{label}: commits at concurrency 16: {put:.0}/s unconditional, {create:.0}/s only-if-absent ({} each)",
        sizes.commits
    );
    let filled = fill(&store, sizes.keys).await;
    println!(
        "{label}: filled {} keys in one bucket in {:.1} s (bulk import)",
        sizes.keys,
        filled.as_secs_f64()
    );
    // Warm the caches (and let the database settle after the bulk load) before measuring.
    page_latency(&store, sizes.keys, sizes.pages / 10, None).await;
    let (p50, p99, n) = page_latency(&store, sizes.keys, sizes.pages, None).await;
    println!(
        "{label}: list page of {n} keys at {} keys: p50 {:.2} ms, p99 {:.2} ms ({} pages)",
        sizes.keys,
        ms(p50),
        ms(p99),
        sizes.pages
    );
    let (p50, p99, n) = page_latency(&store, sizes.keys, sizes.pages / 4, Some("/")).await;
    println!(
        "{label}: list page of {n} common prefixes (delimiter '/'): p50 {:.2} ms, p99 {:.2} ms",
        ms(p50),
        ms(p99)
    );
    store.close().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            commits: 8000,
            keys: 1_000_000,
            pages: 200,
        }
    } else {
        Sizes {
            commits: 400,
            keys: 5_000,
            pages: 8,
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let embedded = SqlMetaStore::open_embedded(EmbeddedOptions::new(dir.path()))
        .await
        .unwrap();
    run("embedded (SQLite, WAL, synchronous=FULL)", embedded, &sizes).await;

    match std::env::var("ARCHIPEL_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => {
            let schema = format!("bench_{}", std::process::id());
            let mut options = PostgresOptions::new(&url);
            options.schema = Some(schema.clone());
            options.max_connections = 16;
            let pg = SqlMetaStore::connect_postgres(options).await.unwrap();
            run("PostgreSQL", pg, &sizes).await;
            use sqlx::{Connection, Executor};
            let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
            conn.execute(sqlx::AssertSqlSafe(format!(
                "DROP SCHEMA \"{schema}\" CASCADE"
            )))
            .await
            .unwrap();
        }
        _ => println!("skipping PostgreSQL: ARCHIPEL_TEST_POSTGRES_URL is not set"),
    }
}
