//! A vault for tests: `n` local-directory providers, each behind a [`FaultLayer`], the
//! embedded metadata store, a random master key, and an engine with no GC delay.

use std::sync::Arc;
use std::time::Duration;

use archipel_codec::MasterKey;
use archipel_engine::{Body, Engine, EngineOptions, ProviderInfo, ProviderSlot, ProviderState};
use archipel_meta::{EmbeddedOptions, MetaStore, SqlMetaStore};
use archipel_provider::{FaultLayer, LocalDir, Provider, ProviderExt};
use bytes::Bytes;
use futures::StreamExt;

pub(crate) struct Vault {
    pub(crate) engine: Engine,
    pub(crate) faults: Vec<Arc<FaultLayer>>,
    /// The directory providers under the fault layers.
    pub(crate) locals: Vec<Arc<LocalDir>>,
    pub(crate) meta: Arc<SqlMetaStore>,
    _tmp: Option<tempfile::TempDir>,
}

pub(crate) fn info(name: &str) -> ProviderInfo {
    ProviderInfo {
        name: name.to_string(),
        operator: format!("op-{name}"),
        jurisdiction: "FR".into(),
        weight: 1,
        state: ProviderState::Active,
    }
}

pub(crate) fn test_options() -> EngineOptions {
    EngineOptions {
        gc_delay: Duration::ZERO,
        min_part_size: 1024 * 1024,
        ..EngineOptions::default()
    }
}

pub(crate) const KEY: [u8; 32] = [7; 32];

impl Vault {
    /// A fresh vault of `n` directory providers in a temporary directory.
    pub(crate) async fn new(n: usize) -> Vault {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let mut v = Vault::open_at(&root, n, test_options()).await;
        v._tmp = Some(tmp);
        v
    }

    /// Opens (or reopens) the vault stored in `root`.
    pub(crate) async fn open_at(root: &std::path::Path, n: usize, opts: EngineOptions) -> Vault {
        let meta = Arc::new(
            SqlMetaStore::open_embedded(EmbeddedOptions::new(root.join("meta")))
                .await
                .unwrap(),
        );
        let mut slots = Vec::new();
        let mut faults = Vec::new();
        let mut locals = Vec::new();
        for i in 0..n {
            let name = format!("p{i}");
            let dir = root.join(&name);
            let local = Arc::new(LocalDir::open(&name, &dir).await.unwrap());
            locals.push(local.clone());
            let fault = Arc::new(FaultLayer::new(local as Arc<dyn Provider>, i as u64));
            faults.push(fault.clone());
            slots.push(ProviderSlot {
                info: info(&name),
                provider: fault,
            });
        }
        let engine = Engine::new(
            MasterKey::from_bytes(KEY),
            meta.clone() as Arc<dyn MetaStore>,
            slots,
            opts,
        )
        .unwrap();
        Vault {
            engine,
            faults,
            locals,
            meta,
            _tmp: None,
        }
    }

    /// Every blob the engine stored on provider `i`.
    pub(crate) async fn blobs(&self, i: usize) -> Vec<String> {
        self.faults[i]
            .list_all("v1/")
            .await
            .unwrap()
            .into_iter()
            .map(|b| b.name.as_str().to_string())
            .collect()
    }

    /// Total blobs over all providers.
    pub(crate) async fn total_blobs(&self) -> usize {
        let mut n = 0;
        for i in 0..self.faults.len() {
            n += self.blobs(i).await.len();
        }
        n
    }

    /// Index of the provider named `name`.
    pub(crate) fn index(&self, name: &str) -> usize {
        name.trim_start_matches('p').parse().unwrap()
    }
}

/// A body yielding `data` in pieces of `piece` bytes.
pub(crate) fn body(data: &[u8], piece: usize) -> Body {
    let pieces: Vec<std::io::Result<Bytes>> = data
        .chunks(piece.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(pieces).boxed()
}

/// Reads a whole GET body.
pub(crate) async fn read_all(
    engine: &Engine,
    bucket: &str,
    key: &str,
) -> archipel_engine::Result<Vec<u8>> {
    read_range(engine, bucket, key, None).await
}

/// Reads a GET body of `range`.
pub(crate) async fn read_range(
    engine: &Engine,
    bucket: &str,
    key: &str,
    range: Option<archipel_engine::ByteRange>,
) -> archipel_engine::Result<Vec<u8>> {
    let mut out = engine.get_object(bucket, key, range).await?;
    let mut data = Vec::new();
    while let Some(piece) = out.body.next().await {
        data.extend_from_slice(&piece?);
    }
    Ok(data)
}

/// Deterministic test bytes.
pub(crate) fn pattern(seed: u64, n: usize) -> Vec<u8> {
    archipel_testkit::conformance::pattern(seed, n)
}
