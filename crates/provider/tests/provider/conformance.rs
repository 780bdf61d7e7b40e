//! Every implementation, bare and wrapped in the full layer stack, runs the whole suite.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use archipel_provider::{
    FaultLayer, Limit, LocalDir, Metrics, Provider, Retry, RetryPolicy, S3, Timeout,
};
use archipel_testkit::conformance::Subject;

/// Retry ∘ Timeout ∘ Limit ∘ Metrics ∘ Fault (injecting nothing) ∘ provider.
pub(crate) fn layered(p: Arc<dyn Provider>) -> Arc<dyn Provider> {
    let p: Arc<dyn Provider> = Arc::new(FaultLayer::new(p, 1));
    let p: Arc<dyn Provider> = Arc::new(Metrics::new(p));
    let p: Arc<dyn Provider> = Arc::new(Limit::new(p, 8));
    let p: Arc<dyn Provider> = Arc::new(Timeout::new(
        p,
        Duration::from_secs(30),
        Duration::from_secs(120),
    ));
    Arc::new(Retry::new(p, RetryPolicy::default()))
}

async fn local() -> Option<Subject> {
    let dir = tempfile::tempdir().unwrap();
    let p = LocalDir::open("disk-a", dir.path()).await.unwrap();
    Some((Arc::new(p), Box::new(dir)))
}

static BUCKETS: AtomicU32 = AtomicU32::new(0);

async fn s3_moto() -> Option<Subject> {
    let moto = archipel_testkit::moto::moto()?;
    let n = BUCKETS.fetch_add(1, Ordering::Relaxed);
    let cfg = moto
        .bucket(&format!("conformance-{}-{n}", std::process::id()))
        .await;
    let p = S3::s3("moto", &cfg).unwrap();
    p.check().await.unwrap();
    Some((Arc::new(p), Box::new(())))
}

mod local_dir {
    archipel_testkit::provider_conformance!(super::local().await);
}

mod local_dir_layered {
    archipel_testkit::provider_conformance!(
        super::local().await.map(|(p, k)| (super::layered(p), k))
    );
}

mod s3_on_moto {
    archipel_testkit::provider_conformance!(super::s3_moto().await);
}

mod s3_on_moto_layered {
    archipel_testkit::provider_conformance!(
        super::s3_moto().await.map(|(p, k)| (super::layered(p), k))
    );
}

async fn webdav() -> Option<Subject> {
    let server = archipel_testkit::webdav::start()?;
    let p = archipel_provider::Remote::webdav("rclone-webdav", &server.config).unwrap();
    p.check().await.unwrap();
    Some((Arc::new(p), Box::new(server)))
}

mod webdav_on_rclone {
    archipel_testkit::provider_conformance!(super::webdav().await);
}

mod webdav_on_rclone_layered {
    archipel_testkit::provider_conformance!(
        super::webdav().await.map(|(p, k)| (super::layered(p), k))
    );
}
