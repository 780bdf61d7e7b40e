//! PUT and GET throughput of 64 MiB blobs per provider kind, against raw disk writes and reads
//! of the same bytes measured in the same run.
//!
//! `cargo run --release -p archipel-testkit --example provider_throughput` (needs moto_server
//! and rclone for the S3 and WebDAV rows; missing tools are skipped with a message).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use archipel_provider::{BlobName, LocalDir, Provider, PutBody, PutMode, Remote};
use archipel_testkit::conformance::pattern;
use bytes::Bytes;
use futures::StreamExt;

const SIZE: usize = 64 * 1024 * 1024;
const ROUNDS: usize = 3;

fn mbps(secs: f64) -> f64 {
    SIZE as f64 / secs / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

async fn measure(p: &dyn Provider, data: &[u8]) -> (f64, f64) {
    let (mut puts, mut gets) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let blob = BlobName::new(format!("bench/blob-{round}")).unwrap();
        // Chunks prepared outside the timed region, as the engine hands over encoded stripes.
        let chunks: Vec<_> = data
            .chunks(1024 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let t = Instant::now();
        p.put(
            &blob,
            PutBody::Stream(futures::stream::iter(chunks).boxed()),
            PutMode::Overwrite,
        )
        .await
        .unwrap();
        puts.push(mbps(t.elapsed().as_secs_f64()));
        // Consume the stream as it arrives (the engine decodes chunk by chunk).
        let t = Instant::now();
        let mut s = p.get(&blob, None).await.unwrap();
        let mut n = 0;
        while let Some(c) = s.next().await {
            n += c.unwrap().len();
        }
        gets.push(mbps(t.elapsed().as_secs_f64()));
        assert_eq!(n, SIZE);
        p.delete(&blob).await.unwrap();
    }
    (median(puts), median(gets))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let data = pattern(1, SIZE);
    let dir = tempfile::tempdir().unwrap();
    let mut rows: Vec<(String, f64, f64)> = Vec::new();

    // Baseline: the same bytes written (and fsynced) and read back directly.
    let (mut w, mut r) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let path = dir.path().join(format!("raw-{round}"));
        let t = Instant::now();
        let mut f = std::fs::File::create(&path).unwrap();
        for c in data.chunks(1024 * 1024) {
            f.write_all(c).unwrap();
        }
        f.sync_all().unwrap();
        w.push(mbps(t.elapsed().as_secs_f64()));
        let t = Instant::now();
        let mut f = std::fs::File::open(&path).unwrap();
        let mut buf = vec![0u8; 1024 * 1024];
        let mut n = 0;
        loop {
            let k = std::io::Read::read(&mut f, &mut buf).unwrap();
            if k == 0 {
                break;
            }
            n += k;
        }
        r.push(mbps(t.elapsed().as_secs_f64()));
        assert_eq!(n, SIZE);
        std::fs::remove_file(&path).unwrap();
    }
    rows.push(("raw disk (baseline)".into(), median(w), median(r)));

    let local = LocalDir::open("local", dir.path().join("local"))
        .await
        .unwrap();
    let (p, g) = measure(&local, &data).await;
    rows.push(("local directory".into(), p, g));

    if let Some(moto) = archipel_testkit::moto::moto() {
        let cfg = moto.bucket("throughput").await;
        let s3: Arc<dyn Provider> = Arc::new(Remote::s3("moto", &cfg).unwrap());
        let (p, g) = measure(&*s3, &data).await;
        rows.push(("S3 (moto_server)".into(), p, g));
    }
    if let Some(server) = archipel_testkit::webdav::start() {
        let dav = Remote::webdav("webdav", &server.config).unwrap();
        let (p, g) = measure(&dav, &data).await;
        rows.push(("WebDAV (rclone serve webdav)".into(), p, g));
    }

    let (bw, br) = (rows[0].1, rows[0].2);
    println!("64 MiB blobs, median of {ROUNDS} rounds, MB/s (ratio to raw disk in this run)");
    println!("{:<30} {:>16} {:>16}", "provider", "PUT", "GET");
    for (name, p, g) in &rows {
        println!(
            "{name:<30} {p:>9.0} ({:>4.2}x) {g:>9.0} ({:>4.2}x)",
            p / bw,
            g / br
        );
    }
}
