//! Faults: transient ones are absorbed by retries, permanent ones surface with the right
//! kind, hangs hit the timeout, interrupted puts leave nothing visible.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use archipel_provider::layers::Fault;
use archipel_provider::{
    BlobName, ErrorKind, FaultLayer, Limit, LocalDir, Metrics, Provider, ProviderExt, PutBody,
    PutMode, Retry, RetryPolicy, Timeout,
};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

fn name(s: &str) -> BlobName {
    BlobName::new(s).unwrap()
}

async fn disk() -> (Arc<dyn Provider>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (
        Arc::new(LocalDir::open("disk", dir.path()).await.unwrap()),
        dir,
    )
}

fn fast_retry(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        base: Duration::from_millis(1),
        max: Duration::from_millis(5),
    }
}

#[tokio::test]
async fn transient_faults_are_recovered_by_retries() {
    let (disk, _dir) = disk().await;
    let faulty = Arc::new(FaultLayer::new(disk, 42));
    faulty.set(Fault {
        fail_rate: 0.5,
        ..Fault::default()
    });
    let p = Retry::new(faulty.clone(), fast_retry(20));
    for i in 0..40 {
        let b = name(&format!("t/{i}"));
        p.put_bytes(&b, vec![i as u8; 100])
            .await
            .expect("put survives transient faults");
        assert_eq!(
            p.get_bytes(&b, None).await.expect("get survives"),
            vec![i as u8; 100]
        );
    }
    assert!(
        faulty.injected() >= 20,
        "faults were injected: {}",
        faulty.injected()
    );
}

#[tokio::test]
async fn permanent_faults_surface_with_their_kind_without_retrying() {
    let (disk, _dir) = disk().await;
    let faulty = Arc::new(FaultLayer::new(disk, 1));
    faulty.set(Fault {
        fail_rate: 1.0,
        error_kind: Some(ErrorKind::PermissionDenied),
        ..Fault::default()
    });
    let p = Retry::new(faulty.clone(), fast_retry(5));
    let err = p.head(&name("x")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PermissionDenied);
    assert!(!err.is_retryable());
    assert_eq!(faulty.injected(), 1, "a permanent error is not retried");
}

#[tokio::test]
async fn a_dark_provider_fails_after_retries_and_works_when_back() {
    let (disk, _dir) = disk().await;
    let faulty = Arc::new(FaultLayer::new(disk, 2));
    let p = Retry::new(faulty.clone(), fast_retry(3));
    p.put_bytes(&name("d/1"), Bytes::from_static(b"before"))
        .await
        .unwrap();
    faulty.go_dark();
    let err = p.get_bytes(&name("d/1"), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert!(err.is_retryable());
    assert_eq!(faulty.injected(), 3, "all attempts were made");
    faulty.come_back();
    assert_eq!(p.get_bytes(&name("d/1"), None).await.unwrap(), b"before");
}

#[tokio::test]
async fn a_hanging_provider_hits_the_timeout() {
    let (disk, _dir) = disk().await;
    let faulty = Arc::new(FaultLayer::new(disk, 3));
    faulty.set(Fault {
        hang: true,
        ..Fault::default()
    });
    let p = Timeout::new(
        faulty,
        Duration::from_millis(100),
        Duration::from_millis(100),
    );
    let err = p.head(&name("h")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn corrupt_reads_change_the_bytes() {
    let (disk, _dir) = disk().await;
    let faulty = Arc::new(FaultLayer::new(disk, 4));
    faulty.put_bytes(&name("c"), vec![0u8; 4096]).await.unwrap();
    faulty.set(Fault {
        corrupt_reads: true,
        ..Fault::default()
    });
    let got = faulty.get_bytes(&name("c"), None).await.unwrap();
    assert_eq!(got.len(), 4096);
    assert_eq!(
        got.iter().map(|b| b.count_ones()).sum::<u32>(),
        1,
        "exactly one bit flipped"
    );
}

#[tokio::test]
async fn a_put_interrupted_mid_stream_leaves_no_visible_blob() {
    let dir = tempfile::tempdir().unwrap();
    let disk: Arc<dyn Provider> = Arc::new(LocalDir::open("disk", dir.path()).await.unwrap());
    let faulty = FaultLayer::new(disk.clone(), 5);
    faulty.set(Fault {
        fail_mid_stream: true,
        ..Fault::default()
    });
    let chunks: Vec<_> = (0..4)
        .map(|_| Ok(Bytes::from(vec![7u8; 1 << 20])))
        .collect();
    let body = PutBody::Stream(futures::stream::iter(chunks).boxed());
    let err = faulty
        .put(&name("partial"), body, PutMode::Overwrite)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
    assert_eq!(
        disk.head(&name("partial")).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(
        disk.list_all("").await.unwrap().is_empty(),
        "nothing listed"
    );
    let tmp = std::fs::read_dir(dir.path().join(".tmp")).unwrap().count();
    assert_eq!(tmp, 0, "the temp file was removed");
}

#[tokio::test]
async fn reads_failing_mid_stream_return_an_error_not_short_data() {
    let (disk, _dir) = disk().await;
    let faulty = FaultLayer::new(disk, 6);
    faulty
        .put_bytes(&name("m"), vec![1u8; 3 << 20])
        .await
        .unwrap();
    faulty.set(Fault {
        fail_mid_stream: true,
        ..Fault::default()
    });
    let err = faulty.get_bytes(&name("m"), None).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable);
}

/// Counts requests in flight at once.
#[derive(Debug)]
struct InFlight {
    inner: Arc<dyn Provider>,
    now: AtomicUsize,
    max: AtomicUsize,
}

#[async_trait]
impl Provider for InFlight {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn capabilities(&self) -> archipel_provider::Capabilities {
        self.inner.capabilities()
    }
    async fn put(
        &self,
        b: &BlobName,
        body: PutBody,
        m: PutMode,
    ) -> archipel_provider::Result<archipel_provider::BlobMeta> {
        self.inner.put(b, body, m).await
    }
    async fn get(
        &self,
        b: &BlobName,
        r: Option<std::ops::Range<u64>>,
    ) -> archipel_provider::Result<archipel_provider::ByteStream> {
        self.inner.get(b, r).await
    }
    async fn head(&self, b: &BlobName) -> archipel_provider::Result<archipel_provider::BlobMeta> {
        let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(n, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
        self.inner.head(b).await
    }
    async fn delete(&self, b: &BlobName) -> archipel_provider::Result<()> {
        self.inner.delete(b).await
    }
    async fn list(
        &self,
        p: &str,
        a: Option<&BlobName>,
        l: usize,
    ) -> archipel_provider::Result<archipel_provider::ListPage> {
        self.inner.list(p, a, l).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_layer_caps_concurrent_requests() {
    let (disk, _dir) = disk().await;
    disk.put_bytes(&name("l"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let counting = Arc::new(InFlight {
        inner: disk,
        now: AtomicUsize::new(0),
        max: AtomicUsize::new(0),
    });
    let limited = Arc::new(Limit::new(counting.clone(), 3));
    futures::future::join_all((0..12).map(|_| {
        let l = limited.clone();
        async move { l.head(&name("l")).await.unwrap() }
    }))
    .await;
    assert_eq!(
        counting.max.load(Ordering::SeqCst),
        3,
        "at most 3 at once, and the cap was reached"
    );
}

#[tokio::test]
async fn metrics_count_requests_errors_and_bytes() {
    let (disk, _dir) = disk().await;
    let m = Metrics::new(disk);
    m.put_bytes(&name("a"), vec![0u8; 1000]).await.unwrap();
    m.put_bytes(&name("b"), vec![0u8; 24]).await.unwrap();
    assert_eq!(
        m.get_bytes(&name("a"), Some(10..110)).await.unwrap().len(),
        100
    );
    assert!(m.head(&name("missing")).await.is_err());
    let s = m.snapshot();
    assert_eq!(s.provider, "disk");
    assert_eq!(s.bytes_written, 1024);
    assert_eq!(s.bytes_read, 100);
    let op = |name: &str| s.ops.iter().find(|o| o.op == name).unwrap().clone();
    assert_eq!((op("put").requests, op("put").errors), (2, 0));
    assert_eq!((op("get").requests, op("get").errors), (1, 0));
    assert_eq!((op("head").requests, op("head").errors), (1, 1));
}

#[tokio::test]
async fn a_provider_on_an_unwritable_directory_fails_at_open_naming_it() {
    let err = LocalDir::open("ro-disk", "/proc/archipel-cannot-write-here")
        .await
        .unwrap_err();
    assert_eq!(err.provider, "ro-disk");
    assert!(err.to_string().contains("ro-disk"), "{err}");
}

#[tokio::test]
async fn metrics_histograms_see_a_slow_provider() {
    let (disk, _dir) = disk().await;
    disk.put_bytes(&name("s"), Bytes::from_static(b"x"))
        .await
        .unwrap();
    let faulty = Arc::new(FaultLayer::new(disk, 7));
    faulty.set(Fault {
        latency: Duration::from_millis(30),
        ..Fault::default()
    });
    let m = Metrics::new(faulty);
    for _ in 0..5 {
        m.head(&name("s")).await.unwrap();
    }
    let s = m.snapshot();
    let head = s.ops.iter().find(|o| o.op == "head").unwrap();
    assert_eq!(head.latency_buckets.iter().sum::<u64>(), 5);
    assert!(
        head.latency_quantile_us(0.95) >= 30_000,
        "p95 bound {}",
        head.latency_quantile_us(0.95)
    );
}
