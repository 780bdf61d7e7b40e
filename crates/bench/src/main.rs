//! `archipel-bench`: the end-to-end benchmark. It builds and starts `archipel serve` on
//! 127.0.0.1 over six directory providers (4+2) in a temporary directory, drives it with a
//! concurrent S3 client (SigV4 presigned requests from `rusty-s3`, HTTP from `reqwest`), and
//! measures in the same run the baseline: the same bytes written (× 1.5, the 4+2 expansion,
//! with fsync) to and read from the same disk directly, both buffered and with `O_DIRECT`; the
//! ratios are to the faster of the two. Before each large read phase — baseline and Archipel
//! alike — the files are evicted from the page cache (`posix_fadvise(DONTNEED)`), so both read
//! the disk. The gateway's CPU time per GiB (from `/proc`) is reported beside each rate: unlike
//! the rates, it hardly depends on the (virtual) disk's mood.
//!
//! Phases: large objects (PUT and GET, healthy and with two providers emptied), small objects
//! (PUT and GET rates and latencies), one multi-GiB PUT and GET (the gateway's peak RSS), and
//! GET latency with one provider slowed by 500 ms against the healthy latency; on request
//! (`--only`) a mixed load over minutes, PUTs with a hung provider, and recovery of a vault
//! from its key and providers alone (time and peak RSS of `archipel recover`). Prints a table
//! and writes JSON.
//!
//! `cargo run --release -p archipel-bench [-- --dir PATH] [--json PATH] [--quick] [--only PHASES]`

use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use serde_json::json;

const MIB: usize = 1024 * 1024;
const ACCESS_KEY: &str = "AKIABENCHMARK0000001";
const SECRET_KEY: &str = "archipel-bench-secret-0000000000000000000";

/// End-to-end benchmark of `archipel serve` against the raw disk.
#[derive(Parser, Debug)]
#[command(name = "archipel-bench")]
struct Args {
    /// Directory (on the disk to measure) for the vault and the baseline files.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Where to write the JSON results.
    #[arg(long, default_value = "target/bench/archipel-bench.json")]
    json: PathBuf,
    /// The `archipel` binary (default: build it with `cargo build --release -p archipel`).
    #[arg(long)]
    archipel: Option<PathBuf>,
    /// Smaller sizes, for a quick look (not for the README).
    #[arg(long)]
    quick: bool,
    /// Run only these phases (comma-separated; default: all). `large` includes the GET with
    /// two providers gone.
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Phase>,
    /// How long the mixed phase runs, in seconds (default 600; 60 with --quick).
    #[arg(long)]
    mixed_secs: Option<u64>,
    /// Concurrent clients of the mixed phase.
    #[arg(long, default_value_t = 32)]
    mixed_clients: usize,
    /// How many objects the recover phase writes and then recovers (default 100,000; 5,000
    /// with --quick).
    #[arg(long)]
    recover_objects: Option<usize>,
}

/// A part of the benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Phase {
    /// Large objects: PUT, GET, GET with two providers gone.
    Large,
    /// Small objects: PUT and GET rates and latencies.
    Small,
    /// One multi-GiB object and the gateway's peak RSS.
    Huge,
    /// GET latency with one provider slowed.
    Latency,
    /// Many clients, mixed PUT/GET/DELETE of small objects, for minutes: the gateway's RSS
    /// over time (a fresh gateway).
    Mixed,
    /// PUT latency over six `rclone serve webdav` providers, healthy and with one of them
    /// paused (SIGSTOP): what one hung provider costs a write (a fresh gateway).
    Hung,
    /// Recovery from the key and the providers alone: a fresh vault of many small objects
    /// (some deleted), its data directory moved away, `archipel recover` timed with its peak
    /// RSS, then the recovered vault serves what was written.
    Recover,
}

struct Sizes {
    large_count: usize,
    large_size: usize,
    large_conc: usize,
    small_count: usize,
    small_size: usize,
    small_conc: usize,
    huge_size: usize,
    latency_gets: usize,
}

struct Server {
    child: Child,
    endpoint: String,
}

/// A `/proc/PID/status` field of process `pid` given in kB (`VmHWM`, `VmRSS`), in MiB; 0 if
/// unreadable (the process is gone).
fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

impl Server {
    fn status_mib(&self, field: &str) -> f64 {
        status_mib(self.child.id(), field)
    }

    /// The gateway's peak resident set so far, in MiB.
    fn rss_peak_mib(&self) -> f64 {
        self.status_mib("VmHWM")
    }

    /// The gateway's resident set now, in MiB.
    fn rss_mib(&self) -> f64 {
        self.status_mib("VmRSS")
    }

    /// CPU time (user + system) the gateway process has used so far, in seconds.
    fn cpu_secs(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i)?.parse::<f64>().ok())
            .sum();
        ticks / f64::from(rustix::param::clock_ticks_per_second() as u32)
    }

    fn stop(mut self) -> anyhow::Result<()> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let status = self.child.wait()?;
        if !status.success() {
            bail!("archipel serve exited with {status}");
        }
        Ok(())
    }
}

impl Drop for Server {
    /// A benchmark that fails half-way does not leave its gateway running.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Writes the configuration: six directory providers, 4+2; `slow` adds latency to one.
fn write_config(root: &Path, port: u16, slow: Option<(usize, u64)>) -> anyhow::Result<PathBuf> {
    let mut c = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"off\"\ndata_dir = \"{data}\"\nroot_access_key = \"{ACCESS_KEY}\"\nroot_secret_key = \"{SECRET_KEY}\"\n\n[policy]\ndata = 4\nparity = 2\n",
        data = root.join("data").display()
    );
    for i in 1..=6 {
        c.push_str(&format!(
            "\n[[provider]]\nname = \"p{i}\"\nkind = \"dir\"\npath = \"{}\"\noperator = \"op{i}\"\njurisdiction = \"FR\"\n",
            root.join("providers").join(format!("p{i}")).display()
        ));
        if let Some((n, ms)) = slow
            && n == i
        {
            c.push_str(&format!("inject_latency_ms = {ms}\n"));
        }
    }
    let path = root.join("archipel.toml");
    std::fs::write(&path, c)?;
    Ok(path)
}

fn start(bin: &Path, config: &Path, port: u16) -> anyhow::Result<Server> {
    let mut child = Command::new(bin)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("archipel serve exited with {status} before listening");
        }
        if t.elapsed() > Duration::from_secs(60) {
            bail!("archipel serve did not listen on 127.0.0.1:{port} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    })
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    bucket: Bucket,
    creds: Credentials,
}

const SIGN_FOR: Duration = Duration::from_secs(3600);

impl Client {
    fn new(endpoint: &str) -> anyhow::Result<Client> {
        let bucket = Bucket::new(endpoint.parse()?, UrlStyle::Path, "bench", "us-east-1")?;
        Ok(Client {
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .tcp_nodelay(true)
                .build()?,
            bucket,
            creds: Credentials::new(ACCESS_KEY, SECRET_KEY),
        })
    }

    async fn create_bucket(&self) -> anyhow::Result<()> {
        let url = self.bucket.create_bucket(&self.creds).sign(SIGN_FOR);
        let r = self.http.put(url).send().await?;
        if !r.status().is_success() && r.status().as_u16() != 409 {
            bail!("create bucket: {}", r.status());
        }
        Ok(())
    }

    async fn put(&self, key: &str, body: reqwest::Body, len: u64) -> anyhow::Result<()> {
        let url = self
            .bucket
            .put_object(Some(&self.creds), key)
            .sign(SIGN_FOR);
        let r = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, len)
            .body(body)
            .send()
            .await?;
        if !r.status().is_success() {
            bail!(
                "PUT {key}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> anyhow::Result<u64> {
        let url = self
            .bucket
            .get_object(Some(&self.creds), key)
            .sign(SIGN_FOR);
        let r = self.http.get(url).send().await?;
        if !r.status().is_success() {
            bail!("GET {key}: {}", r.status());
        }
        let mut n = 0u64;
        let mut s = r.bytes_stream();
        while let Some(b) = s.try_next().await? {
            n += b.len() as u64;
        }
        Ok(n)
    }
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn quantile_ms(v: &mut [Duration], q: f64) -> f64 {
    v.sort_unstable();
    v.get(((v.len().saturating_sub(1)) as f64 * q).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// The baseline: for each object, six files of `size / 4` bytes written with fsync (the 4+2
/// expansion), `conc` objects at a time; then four of the six read back. Object bytes per
/// second, in MB/s.
fn raw_disk(
    dir: &Path,
    count: usize,
    size: usize,
    conc: usize,
    piece: &[u8],
) -> anyhow::Result<(f64, f64, f64, f64)> {
    std::fs::create_dir_all(dir)?;
    let shard = size.div_ceil(4);
    let run = |f: &(dyn Fn(usize) -> anyhow::Result<()> + Sync)| -> anyhow::Result<Duration> {
        let t = Instant::now();
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..conc)
                .map(|_| {
                    s.spawn(|| -> anyhow::Result<()> {
                        loop {
                            let o = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            if o >= count {
                                return Ok(());
                            }
                            f(o)?;
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join()
                    .map_err(|_| anyhow!("baseline thread panicked"))??;
            }
            Ok::<_, anyhow::Error>(())
        })?;
        Ok(t.elapsed())
    };
    let write = run(&|o| {
        for s in 0..6 {
            let mut f = std::fs::File::create(dir.join(format!("{o}.{s}")))?;
            let mut left = shard;
            while left > 0 {
                let n = left.min(piece.len());
                f.write_all(&piece[..n])?;
                left -= n;
            }
            f.sync_all()?;
        }
        Ok(())
    })?;
    evict(dir)?;
    let read = run(&|o| {
        for s in 0..4 {
            std::hint::black_box(std::fs::read(dir.join(format!("{o}.{s}")))?);
        }
        Ok(())
    })?;
    // The same writes with direct I/O (`O_DIRECT`, from a 4 KiB-aligned buffer), as the
    // gateway's directory providers write large blobs.
    let mut raw = vec![0u8; piece.len() + 4096];
    let start = raw.as_ptr().align_offset(4096);
    if start >= 4096 || !shard.is_multiple_of(4096) {
        bail!("cannot align the direct-I/O baseline buffer");
    }
    raw[start..start + piece.len()].copy_from_slice(piece);
    let aligned = &raw[start..start + piece.len() / 4096 * 4096];
    let direct = run(&|o| {
        for s in 0..6 {
            let f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_DIRECT)
                .open(dir.join(format!("direct-{o}.{s}")))?;
            let mut at = 0;
            while at < shard {
                let n = (shard - at).min(aligned.len());
                f.write_all_at(&aligned[..n], at as u64)?;
                at += n;
            }
            f.sync_all()?;
        }
        Ok(())
    })?;
    let total = (count * size) as u64;
    evict(dir)?;
    let rlen = piece.len() / 4096 * 4096;
    let direct_read = run(&|o| {
        let mut buf = vec![0u8; rlen + 4096];
        let at = buf.as_ptr().align_offset(4096);
        let buf = &mut buf[at..at + rlen];
        for s in 0..4 {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(dir.join(format!("direct-{o}.{s}")))?;
            let mut pos = 0u64;
            loop {
                let n = f.read_at(buf, pos)?;
                if n == 0 {
                    break;
                }
                std::hint::black_box(&buf[..n]);
                pos += n as u64;
            }
        }
        Ok(())
    })?;
    std::fs::remove_dir_all(dir)?;
    Ok((
        mbps(total, write),
        mbps(total, direct),
        mbps(total, read),
        mbps(total, direct_read),
    ))
}

/// Drops every file under `dir` from the page cache (they are fsync'd, so their pages are
/// clean), so that what reads them next reads the disk.
fn evict(dir: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            evict(&path)?;
        } else if let Ok(f) = std::fs::File::open(&path) {
            rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)?;
        }
    }
    Ok(())
}

fn body_of(piece: &Bytes, len: usize) -> reqwest::Body {
    if len <= piece.len() {
        return reqwest::Body::from(piece.slice(..len));
    }
    let piece = piece.clone();
    let mut left = len;
    let s = futures::stream::iter(std::iter::from_fn(move || {
        if left == 0 {
            return None;
        }
        let n = left.min(piece.len());
        left -= n;
        Some(Ok::<_, std::io::Error>(piece.slice(..n)))
    }));
    reqwest::Body::wrap_stream(s)
}

/// Large PUTs then GETs: MB/s of each, and the gateway's CPU seconds per GiB of each.
async fn large_phase(
    c: &Client,
    server: &Server,
    s: &Sizes,
    piece: &Bytes,
    providers: &Path,
) -> anyhow::Result<(f64, f64, f64, f64)> {
    let total = (s.large_count * s.large_size) as u64;
    let gib = total as f64 / (1u64 << 30) as f64;
    let cpu = server.cpu_secs();
    let t = Instant::now();
    futures::stream::iter(0..s.large_count)
        .map(|i| {
            let (c, piece) = (c.clone(), piece.clone());
            let size = s.large_size;
            async move {
                c.put(&format!("large/{i}"), body_of(&piece, size), size as u64)
                    .await
            }
        })
        .buffer_unordered(s.large_conc)
        .try_collect::<Vec<()>>()
        .await?;
    let put = mbps(total, t.elapsed());
    let put_cpu = (server.cpu_secs() - cpu) / gib;
    evict(providers)?;
    let cpu = server.cpu_secs();
    let get = get_large(c, s).await?;
    let get_cpu = (server.cpu_secs() - cpu) / gib;
    Ok((put, get, put_cpu, get_cpu))
}

async fn get_large(c: &Client, s: &Sizes) -> anyhow::Result<f64> {
    let total = (s.large_count * s.large_size) as u64;
    let t = Instant::now();
    let got: Vec<u64> = futures::stream::iter(0..s.large_count)
        .map(|i| {
            let c = c.clone();
            async move { c.get(&format!("large/{i}")).await }
        })
        .buffer_unordered(s.large_conc)
        .try_collect()
        .await?;
    if got.iter().sum::<u64>() != total {
        bail!(
            "large GETs returned {} bytes, expected {total}",
            got.iter().sum::<u64>()
        );
    }
    Ok(mbps(total, t.elapsed()))
}

async fn small_phase(c: &Client, s: &Sizes, piece: &Bytes) -> anyhow::Result<serde_json::Value> {
    let run = |get: bool| {
        let (c, piece) = (c.clone(), piece.clone());
        let (count, size, conc) = (s.small_count, s.small_size, s.small_conc);
        async move {
            let t = Instant::now();
            let mut lat: Vec<Duration> = futures::stream::iter(0..count)
                .map(|i| {
                    let (c, piece) = (c.clone(), piece.clone());
                    async move {
                        let t = Instant::now();
                        let key = format!("small/{i}");
                        if get {
                            if c.get(&key).await? != size as u64 {
                                bail!("GET {key}: wrong size");
                            }
                        } else {
                            c.put(&key, body_of(&piece, size), size as u64).await?;
                        }
                        Ok::<_, anyhow::Error>(t.elapsed())
                    }
                })
                .buffer_unordered(conc)
                .try_collect()
                .await?;
            let rate = count as f64 / t.elapsed().as_secs_f64();
            Ok::<_, anyhow::Error>((
                rate,
                quantile_ms(&mut lat, 0.5),
                quantile_ms(&mut lat, 0.99),
            ))
        }
    };
    let (put, p50, p99) = run(false).await?;
    let (get, g50, g99) = run(true).await?;
    println!(
        "small objects, {} × {} KiB, {} at a time: PUT {put:.0}/s (p50 {p50:.1} ms, p99 {p99:.1} ms); GET {get:.0}/s (p50 {g50:.1} ms, p99 {g99:.1} ms)",
        s.small_count,
        s.small_size / 1024,
        s.small_conc
    );
    Ok(
        json!({"count": s.small_count, "size": s.small_size, "concurrency": s.small_conc,
        "put_per_s": put, "put_p50_ms": p50, "put_p99_ms": p99,
        "get_per_s": get, "get_p50_ms": g50, "get_p99_ms": g99}),
    )
}

/// Runs `bin` with `args` to its end, and returns its standard output, its wall time and its
/// peak RSS in MiB (its `VmHWM`, sampled every 10 ms: the mark only rises, so the last sample
/// before it exits is its peak to within what it allocates in its last 10 ms).
fn run_measured(bin: &Path, args: &[&std::ffi::OsStr]) -> anyhow::Result<(String, Duration, f64)> {
    let t = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut stdout = child.stdout.take().context("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut out).map(|_| out)
    });
    let mut peak = 0.0f64;
    let status = loop {
        peak = peak.max(status_mib(child.id(), "VmHWM"));
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let elapsed = t.elapsed();
    let out = reader
        .join()
        .map_err(|_| anyhow!("the output reader panicked"))??;
    if !status.success() {
        bail!("{} {args:?} failed ({status}):\n{out}", bin.display());
    }
    Ok((out, elapsed, peak))
}

/// The recover phase; see [`Phase::Recover`].
async fn recover_phase(
    bin: &Path,
    root: &Path,
    count: usize,
    piece: &Bytes,
) -> anyhow::Result<serde_json::Value> {
    const SIZE: usize = 1024;
    const CONC: usize = 16;
    let root = root.join("recover");
    std::fs::create_dir_all(&root)?;
    let port = free_port()?;
    let config = write_config(&root, port, None)?;
    // The key lives beside the configuration, not in the data directory that is lost.
    let mut text = std::fs::read_to_string(&config)?;
    text.push_str(&format!(
        "\n[key]\nfile = \"{}\"\n",
        root.join("vault.key").display()
    ));
    std::fs::write(&config, text)?;
    let server = start(bin, &config, port)?;
    let c = Client::new(&server.endpoint)?;
    c.create_bucket().await?;
    let t = Instant::now();
    let mut last = Instant::now();
    let mut written = 0usize;
    let mut puts = futures::stream::iter(0..count)
        .map(|i| {
            let (c, piece) = (c.clone(), piece.clone());
            async move {
                c.put(&format!("r/{i:07}"), body_of(&piece, SIZE), SIZE as u64)
                    .await
            }
        })
        .buffer_unordered(CONC);
    while let Some(r) = puts.next().await {
        r?;
        written += 1;
        if last.elapsed() > Duration::from_secs(30) {
            last = Instant::now();
            println!(
                "  recover: {written} of {count} objects written ({:.0}/s)",
                written as f64 / t.elapsed().as_secs_f64()
            );
        }
    }
    drop(puts);
    let put_rate = count as f64 / t.elapsed().as_secs_f64();
    // Every hundredth object deleted: recovery must leave it deleted.
    let deleted: Vec<usize> = (0..count).step_by(100).collect();
    futures::stream::iter(deleted.iter().copied())
        .map(|i| {
            let c = c.clone();
            async move {
                let key = format!("r/{i:07}");
                let url = c.bucket.delete_object(Some(&c.creds), &key).sign(SIGN_FOR);
                let r = c.http.delete(url).send().await?;
                if !r.status().is_success() {
                    bail!("DELETE {key}: {}", r.status());
                }
                Ok(())
            }
        })
        .buffer_unordered(CONC)
        .try_collect::<Vec<()>>()
        .await?;
    server.stop()?;
    let cfg = config.as_os_str();
    let live = (count - deleted.len()) as u64;

    // The drill over the journal alone (no snapshot yet): every segment is read.
    let (out, journal_took, journal_rss) = run_measured(
        bin,
        &[
            "recover".as_ref(),
            "--check".as_ref(),
            "--json".as_ref(),
            "--config".as_ref(),
            cfg,
        ],
    )?;
    let drill: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("recover --check printed: {out}"))?;
    let journal_segments = drill["segments"].as_u64().unwrap_or(0);
    if drill["objects"].as_u64() != Some(live)
        || drill["check"]["difference_count"].as_u64() != Some(0)
    {
        bail!("the drill over the journal found {drill}");
    }
    println!(
        "recover of {count} × {} KiB objects ({} deleted; written at {put_rate:.0}/s, {CONC} at a time), journal only: {live} objects from {journal_segments} segments in {:.1} s ({:.0} objects/s), peak RSS {journal_rss:.0} MiB",
        SIZE / 1024,
        deleted.len(),
        journal_took.as_secs_f64(),
        live as f64 / journal_took.as_secs_f64()
    );

    // A snapshot (what the gateway's `journal-snapshot` service does by itself), then a tail
    // of 1 % more objects written after it.
    let (out, snap_took, _) = run_measured(
        bin,
        &[
            "snapshot".as_ref(),
            "--json".as_ref(),
            "--config".as_ref(),
            cfg,
        ],
    )?;
    let snap: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("snapshot printed: {out}"))?;
    let server = start(bin, &config, port)?;
    let tail = (count / 100).max(1);
    futures::stream::iter(0..tail)
        .map(|i| {
            let (c, piece) = (c.clone(), piece.clone());
            async move {
                c.put(&format!("t/{i:07}"), body_of(&piece, SIZE), SIZE as u64)
                    .await
            }
        })
        .buffer_unordered(CONC)
        .try_collect::<Vec<()>>()
        .await?;
    server.stop()?;
    let live = live + tail as u64;
    println!(
        "  snapshot: {} records in {} parts, {:.1} s (the command, vault open included); {} journal segments removed; then {tail} objects written after it",
        snap["records"],
        snap["parts"],
        snap_took.as_secs_f64(),
        snap["segments_removed"]
    );

    let data = root.join("data");
    let meta_bytes = dir_bytes(&data)?;
    std::fs::rename(&data, root.join("data-lost"))?;
    let (out, took, rss) = run_measured(
        bin,
        &[
            "recover".as_ref(),
            "--json".as_ref(),
            "--config".as_ref(),
            cfg,
        ],
    )?;
    let rep: serde_json::Value =
        serde_json::from_str(&out).with_context(|| format!("recover printed no JSON: {out}"))?;
    let objects = rep["objects"].as_u64().unwrap_or(0);
    if objects != live {
        bail!("recover restored {objects} objects, {live} were live");
    }
    let segments = rep["segments"].as_u64().unwrap_or(0);
    let phases: Vec<String> = rep["phases_ms"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    format!(
                        "{} {:.1} s",
                        p[0].as_str().unwrap_or("?"),
                        p[1].as_f64().unwrap_or(0.0) / 1e3
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    println!(
        "  recover from the snapshot and {segments} journal segments after it: {objects} objects in {:.1} s ({:.0} objects/s), peak RSS {rss:.0} MiB ({})",
        took.as_secs_f64(),
        objects as f64 / took.as_secs_f64(),
        phases.join(", ")
    );

    // The recovered vault serves what was written, and not what was deleted.
    let server = start(bin, &config, port)?;
    let sample: Vec<usize> = (0..count).step_by((count / 1000).max(1)).collect();
    for &i in &sample {
        let key = format!("r/{i:07}");
        if i % 100 == 0 {
            let url = c.bucket.head_object(Some(&c.creds), &key).sign(SIGN_FOR);
            let status = c.http.head(url).send().await?.status();
            if status.as_u16() != 404 {
                bail!("HEAD {key} of a deleted object after recovery: {status}");
            }
        } else if c.get(&key).await? != SIZE as u64 {
            bail!("GET {key} after recovery: wrong size");
        }
    }
    if c.get(&format!("t/{:07}", tail - 1)).await? != SIZE as u64 {
        bail!("the last object written after the snapshot was not recovered");
    }
    server.stop()?;
    println!(
        "  {} sampled objects read back after recovery; meta {:.1} MiB before the loss ({:.0} B per object)",
        sample.len() + 1,
        meta_bytes as f64 / MIB as f64,
        meta_bytes as f64 / live as f64
    );
    Ok(
        json!({"objects_written": count + tail, "object_size": SIZE, "deleted": deleted.len(),
        "put_per_s": put_rate,
        "journal_only": {"segments": journal_segments, "recover_s": journal_took.as_secs_f64(),
            "peak_rss_mib": journal_rss, "note": "recover --check (recovery into a scratch directory plus the comparison)"},
        "snapshot": {"command_s": snap_took.as_secs_f64(), "record": snap},
        "objects_recovered": objects, "tail_segments": segments,
        "recover_s": took.as_secs_f64(), "recover_objects_per_s": objects as f64 / took.as_secs_f64(),
        "recover_peak_rss_mib": rss, "meta_bytes": meta_bytes, "report": rep}),
    )
}

/// The bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        n += if m.is_dir() {
            dir_bytes(&e.path())?
        } else {
            m.len()
        };
    }
    Ok(n)
}

/// `rclone serve webdav` processes for the hung phase, killed when dropped.
struct Davs(Vec<(Child, u16)>);

impl Drop for Davs {
    fn drop(&mut self) {
        for (c, _) in &mut self.0 {
            let _ = Command::new("kill")
                .args(["-CONT", &c.id().to_string()])
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `count` PUTs of `size` bytes, `conc` at a time: their latencies.
async fn put_latencies(
    c: &Client,
    prefix: &str,
    count: usize,
    size: usize,
    conc: usize,
    piece: &Bytes,
) -> anyhow::Result<Vec<Duration>> {
    futures::stream::iter(0..count)
        .map(|i| {
            let (c, piece) = (c.clone(), piece.clone());
            let key = format!("{prefix}/{i}");
            async move {
                let t = Instant::now();
                c.put(&key, body_of(&piece, size), size as u64).await?;
                Ok::<_, anyhow::Error>(t.elapsed())
            }
        })
        .buffer_unordered(conc)
        .try_collect()
        .await
}

/// The hung phase; see [`Phase::Hung`].
async fn hung_phase(
    bin: &Path,
    root: &Path,
    count: usize,
    piece: &Bytes,
) -> anyhow::Result<serde_json::Value> {
    if Command::new("rclone")
        .arg("version")
        .stdout(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        println!("hung provider: skipped (rclone is not installed)");
        return Ok(json!({"skipped": "rclone is not installed"}));
    }
    let dir = root.join("hung");
    let mut davs = Davs(Vec::new());
    for i in 0..6 {
        let d = dir.join(format!("dav{i}"));
        std::fs::create_dir_all(&d)?;
        let port = free_port()?;
        let child = Command::new("rclone")
            .args(["serve", "webdav", "--addr", &format!("127.0.0.1:{port}")])
            .arg(&d)
            .args(["--config", "/dev/null", "-q"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start rclone serve webdav")?;
        davs.0.push((child, port));
    }
    for (_, port) in &davs.0 {
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
            if t.elapsed() > Duration::from_secs(30) {
                bail!("rclone serve webdav did not listen on 127.0.0.1:{port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let port = free_port()?;
    let mut c = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"off\"\ndata_dir = \"{data}\"\nroot_access_key = \"{ACCESS_KEY}\"\nroot_secret_key = \"{SECRET_KEY}\"\n\n[policy]\ndata = 4\nparity = 2\n",
        data = dir.join("data").display()
    );
    for (i, (_, p)) in davs.0.iter().enumerate() {
        c.push_str(&format!(
            "\n[[provider]]\nname = \"dav{i}\"\nkind = \"webdav\"\nurl = \"http://127.0.0.1:{p}\"\nroot = \"archipel\"\n"
        ));
    }
    let config = dir.join("archipel.toml");
    std::fs::write(&config, c)?;
    let server = start(bin, &config, port)?;
    let client = Client::new(&server.endpoint)?;
    client.create_bucket().await?;
    let (size, conc) = (4096, 8);
    put_latencies(&client, "warm", 100, size, conc, piece).await?;
    let t = Instant::now();
    let mut healthy = put_latencies(&client, "healthy", count, size, conc, piece).await?;
    let healthy_rate = count as f64 / t.elapsed().as_secs_f64();
    let paused = davs.0[3].0.id();
    let ok = Command::new("kill")
        .args(["-STOP", &paused.to_string()])
        .status()?;
    if !ok.success() {
        bail!("kill -STOP {paused} failed");
    }
    let t = Instant::now();
    let mut hung = put_latencies(&client, "hung", count, size, conc, piece).await?;
    let hung_rate = count as f64 / t.elapsed().as_secs_f64();
    let _ = Command::new("kill")
        .args(["-CONT", &paused.to_string()])
        .status();
    server.stop()?;
    drop(davs);
    let max = |v: &[Duration]| v.iter().max().map_or(0.0, |d| d.as_secs_f64() * 1000.0);
    let (h50, h99, hmax) = (
        quantile_ms(&mut healthy, 0.5),
        quantile_ms(&mut healthy, 0.99),
        max(&healthy),
    );
    let (s50, s99, smax) = (
        quantile_ms(&mut hung, 0.5),
        quantile_ms(&mut hung, 0.99),
        max(&hung),
    );
    println!(
        "PUT 4 KiB × {count}, {conc} at a time, six WebDAV providers: healthy {healthy_rate:.0}/s p50 {h50:.1} ms p99 {h99:.1} ms max {hmax:.0} ms; one paused (SIGSTOP): {hung_rate:.0}/s p50 {s50:.1} ms p99 {s99:.1} ms max {smax:.0} ms (p99 ratio {:.2})",
        s99 / h99
    );
    Ok(json!({"count": count, "size": size, "concurrency": conc,
        "healthy_per_s": healthy_rate, "healthy_p50_ms": h50, "healthy_p99_ms": h99, "healthy_max_ms": hmax,
        "hung_per_s": hung_rate, "hung_p50_ms": s50, "hung_p99_ms": s99, "hung_max_ms": smax,
        "p99_ratio": s99 / h99}))
}

/// `n` GETs of the latency objects, one at a time: their latencies.
async fn latency(c: &Client, n: usize, objects: usize) -> anyhow::Result<Vec<Duration>> {
    let mut lat = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        c.get(&format!("lat/{}", i % objects)).await?;
        lat.push(t.elapsed());
    }
    Ok(lat)
}

/// Counts of the mixed phase.
#[derive(Default)]
struct MixedCounts {
    puts: u64,
    gets: u64,
    deletes: u64,
    errors: u64,
    wrong_bytes: u64,
    first_error: Option<String>,
}

/// One client of the mixed phase: PUT, GET (checked byte for byte) and DELETE of its own
/// 64 keys, 1 KiB to 300 KB each, until `until`.
async fn mixed_client(c: Client, id: usize, until: Instant, piece: Bytes) -> MixedCounts {
    let mut n = MixedCounts::default();
    let mut state = (id as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // What each key holds: (offset into `piece`, length), or nothing.
    let mut held: Vec<Option<(usize, usize)>> = vec![None; 64];
    while Instant::now() < until {
        let slot = (next() % 64) as usize;
        let key = format!("mixed/{id}/{slot}");
        let roll = next() % 100;
        let r: anyhow::Result<()> = async {
            if roll < 45 || held[slot].is_none() {
                let len = 1024 + (next() % (300_000 - 1024)) as usize;
                let off = (next() as usize) % (piece.len() - len);
                let body = piece.slice(off..off + len);
                c.put(&key, reqwest::Body::from(body), len as u64).await?;
                held[slot] = Some((off, len));
                n.puts += 1;
            } else if roll < 90 {
                let (off, len) = held[slot].unwrap_or((0, 0));
                let url = c.bucket.get_object(Some(&c.creds), &key).sign(SIGN_FOR);
                let resp = c.http.get(url).send().await?;
                if !resp.status().is_success() {
                    bail!("GET {key}: {}", resp.status());
                }
                let got = resp.bytes().await?;
                if got != piece.slice(off..off + len) {
                    n.wrong_bytes += 1;
                }
                n.gets += 1;
            } else {
                let url = c.bucket.delete_object(Some(&c.creds), &key).sign(SIGN_FOR);
                let resp = c.http.delete(url).send().await?;
                if !resp.status().is_success() {
                    bail!("DELETE {key}: {}", resp.status());
                }
                held[slot] = None;
                n.deletes += 1;
            }
            Ok(())
        }
        .await;
        if let Err(e) = r {
            n.errors += 1;
            n.first_error.get_or_insert_with(|| e.to_string());
        }
    }
    n
}

/// The mixed phase on a fresh gateway: `clients` at once for `secs`, the gateway's RSS
/// sampled every second.
async fn mixed_phase(
    bin: &Path,
    config: &Path,
    port: u16,
    secs: u64,
    clients: usize,
    piece: &Bytes,
) -> anyhow::Result<serde_json::Value> {
    let server = start(bin, config, port)?;
    let c = Client::new(&server.endpoint)?;
    c.create_bucket().await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = server.rss_mib();
    let t0 = Instant::now();
    let until = t0 + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(mixed_client(c.clone(), i, until, piece.clone())))
        .collect();
    let mut samples: Vec<(f64, f64)> = Vec::new();
    let mut last_print = 0u64;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t = t0.elapsed().as_secs_f64();
        samples.push((t, server.rss_mib()));
        if t as u64 >= last_print + 30 {
            last_print = t as u64;
            println!(
                "  mixed: {t:4.0} s, gateway RSS {:.0} MiB",
                server.rss_mib()
            );
        }
    }
    let mut total = MixedCounts::default();
    for t in tasks {
        let n = t.await?;
        total.puts += n.puts;
        total.gets += n.gets;
        total.deletes += n.deletes;
        total.errors += n.errors;
        total.wrong_bytes += n.wrong_bytes;
        if total.first_error.is_none() {
            total.first_error = n.first_error;
        }
    }
    let elapsed = t0.elapsed();
    let end = server.rss_mib();
    let peak_hwm = server.rss_peak_mib();
    let peak_sampled = samples.iter().map(|s| s.1).fold(0.0, f64::max);
    let after_1min = samples
        .iter()
        .find(|s| s.0 >= 60.0)
        .or(samples.last())
        .map_or(0.0, |s| s.1);
    tokio::time::sleep(Duration::from_secs(30)).await;
    let settled = server.rss_mib();
    server.stop()?;
    let requests = total.puts + total.gets + total.deletes;
    println!(
        "mixed load, {clients} clients, {:.0} s: {requests} requests ({:.0}/s; {} PUT, {} GET, {} DELETE), {} errors, {} wrong bodies",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        total.puts,
        total.gets,
        total.deletes,
        total.errors,
        total.wrong_bytes
    );
    if let Some(e) = &total.first_error {
        println!("  first error: {e}");
    }
    println!(
        "  gateway RSS: idle {idle:.0} MiB, after 1 min {after_1min:.0}, at the end {end:.0} ({:+.0} % of the 1-minute value), peak {:.0} (VmHWM {peak_hwm:.0}), 30 s after {settled:.0}",
        (end / after_1min - 1.0) * 100.0,
        peak_sampled
    );
    Ok(
        json!({"clients": clients, "seconds": elapsed.as_secs_f64(), "requests": requests,
        "puts": total.puts, "gets": total.gets, "deletes": total.deletes,
        "errors": total.errors, "wrong_bodies": total.wrong_bytes,
        "rss_idle_mib": idle, "rss_after_1min_mib": after_1min, "rss_end_mib": end,
        "rss_peak_sampled_mib": peak_sampled, "rss_hwm_mib": peak_hwm, "rss_settled_mib": settled,
        "rss_samples": samples.iter().map(|s| json!([s.0, s.1])).collect::<Vec<_>>()}),
    )
}

fn build_archipel() -> anyhow::Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "archipel"])
        .status()
        .context("cannot run cargo to build archipel")?;
    if !status.success() {
        bail!("building archipel failed");
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("no directory for {}", exe.display()))?;
    Ok(dir.join("archipel"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sizes = if args.quick {
        Sizes {
            large_count: 4,
            large_size: 16 * MIB,
            large_conc: 4,
            small_count: 200,
            small_size: 4096,
            small_conc: 16,
            huge_size: 256 * MIB,
            latency_gets: 40,
        }
    } else {
        Sizes {
            large_count: 16,
            large_size: 64 * MIB,
            large_conc: 4,
            small_count: 2000,
            small_size: 4096,
            small_conc: 16,
            huge_size: 4096 * MIB,
            latency_gets: 1000,
        }
    };
    let bin = match &args.archipel {
        Some(p) => p.clone(),
        None => build_archipel()?,
    };
    let base = args.dir.clone().unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(&base)
        .with_context(|| format!("cannot create a directory in {}", base.display()))?;
    let root = tmp.path();
    let mut rnd = vec![0u8; MIB];
    getrandom::fill(&mut rnd).map_err(|e| anyhow!("random bytes: {e}"))?;
    let piece = Bytes::from(rnd);

    println!(
        "archipel-bench: {} (vault in {})",
        bin.display(),
        root.display()
    );
    let run = |p: Phase| args.only.is_empty() || args.only.contains(&p);
    let mut report = serde_json::Map::new();
    report.insert(
        "machine".into(),
        json!({"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)}),
    );
    let port = free_port()?;
    let config = write_config(root, port, None)?;
    let mut server = Some(start(&bin, &config, port)?);
    let c = Client::new(
        &server
            .as_ref()
            .map(|s| s.endpoint.clone())
            .unwrap_or_default(),
    )?;
    c.create_bucket().await?;

    if run(Phase::Large) {
        let (raw_buffered, raw_direct, raw_r_buffered, raw_r_direct) = raw_disk(
            &root.join("raw"),
            sizes.large_count,
            sizes.large_size,
            sizes.large_conc,
            &piece,
        )?;
        // The disk's best: the faster of buffered and direct writes (both fsync'd).
        let raw_w = raw_buffered.max(raw_direct);
        let raw_r = raw_r_buffered.max(raw_r_direct);
        let (put, get, put_cpu, get_cpu) = match &server {
            Some(srv) => large_phase(&c, srv, &sizes, &piece, &root.join("providers")).await?,
            None => bail!("the gateway is not running"),
        };
        println!(
            "large objects, {} × {} MiB, {} at a time (baseline: the same bytes × 1.5 to the same disk, fsync'd, the faster of buffered and O_DIRECT I/O; reads after evicting the page cache)",
            sizes.large_count,
            sizes.large_size / MIB,
            sizes.large_conc
        );
        println!(
            "  PUT {put:7.0} MB/s   baseline {raw_w:7.0} MB/s   ratio {:.2}   gateway CPU {put_cpu:.2} s/GiB   (baseline: buffered {raw_buffered:.0}, O_DIRECT {raw_direct:.0} MB/s)",
            put / raw_w
        );
        println!(
            "  GET {get:7.0} MB/s   baseline {raw_r:7.0} MB/s   ratio {:.2}   gateway CPU {get_cpu:.2} s/GiB   (baseline: buffered {raw_r_buffered:.0}, O_DIRECT {raw_r_direct:.0} MB/s)",
            get / raw_r
        );
        if let Some(s) = server.take() {
            s.stop()?;
        }
        // Two providers emptied (as if lost): reads rebuild from parity.
        for i in [2, 5] {
            let p = root.join("providers").join(format!("p{i}"));
            std::fs::rename(&p, root.join(format!("lost-p{i}")))?;
        }
        let degraded_server = start(&bin, &config, port)?;
        evict(&root.join("providers"))?;
        let degraded = get_large(&c, &sizes).await?;
        println!(
            "  GET with 2 of 6 providers gone {degraded:7.0} MB/s   ratio to healthy GET {:.2}",
            degraded / get
        );
        degraded_server.stop()?;
        for i in [2, 5] {
            let p = root.join("providers").join(format!("p{i}"));
            std::fs::remove_dir_all(&p)?;
            std::fs::rename(root.join(format!("lost-p{i}")), &p)?;
        }
        server = Some(start(&bin, &config, port)?);
        report.insert(
            "large".into(),
            json!({"count": sizes.large_count, "size": sizes.large_size, "concurrency": sizes.large_conc,
                "baseline_write_mbps": raw_w, "baseline_read_mbps": raw_r,
                "baseline_write_buffered_mbps": raw_buffered, "baseline_write_direct_mbps": raw_direct,
                "baseline_read_buffered_mbps": raw_r_buffered, "baseline_read_direct_mbps": raw_r_direct,
                "put_mbps": put, "get_mbps": get, "degraded_get_mbps": degraded,
                "put_gateway_cpu_s_per_gib": put_cpu, "get_gateway_cpu_s_per_gib": get_cpu,
                "put_ratio": put / raw_w, "get_ratio": get / raw_r, "degraded_ratio": degraded / get}),
        );
    }

    if run(Phase::Small) {
        report.insert("small".into(), small_phase(&c, &sizes, &piece).await?);
    }

    if run(Phase::Huge) {
        let t = Instant::now();
        c.put(
            "huge",
            body_of(&piece, sizes.huge_size),
            sizes.huge_size as u64,
        )
        .await?;
        let huge_put = mbps(sizes.huge_size as u64, t.elapsed());
        let t = Instant::now();
        let n = c.get("huge").await?;
        if n != sizes.huge_size as u64 {
            bail!("huge GET returned {n} bytes");
        }
        let huge_get = mbps(n, t.elapsed());
        let rss = server.as_ref().map_or(0.0, Server::rss_peak_mib);
        println!(
            "one {} MiB object: PUT {huge_put:.0} MB/s, GET {huge_get:.0} MB/s; gateway peak RSS over the whole run so far {rss:.0} MiB",
            sizes.huge_size / MIB
        );
        report.insert(
            "huge".into(),
            json!({"size": sizes.huge_size, "put_mbps": huge_put, "get_mbps": huge_get, "gateway_peak_rss_mib": rss}),
        );
    }
    if let Some(s) = server.take() {
        s.stop()?;
    }

    if run(Phase::Latency) {
        // Latency objects (1 MiB each), read one at a time from a fresh process, healthy and
        // with one provider 500 ms slower on every request.
        let server = start(&bin, &config, port)?;
        for i in 0..20 {
            c.put(&format!("lat/{i}"), body_of(&piece, MIB), MIB as u64)
                .await?;
        }
        server.stop()?;
        // Healthy and slowed runs alternate (four rounds each, a fresh process every time),
        // so that a noisy moment of the machine does not land on one side only.
        let slow_config = write_config(root, port, Some((1, 500)))?;
        let (mut healthy, mut slowed) = (Vec::new(), Vec::new());
        let rounds = 4;
        for _ in 0..rounds {
            for (cfg, into) in [(&config, &mut healthy), (&slow_config, &mut slowed)] {
                let server = start(&bin, cfg, port)?;
                into.extend(latency(&c, sizes.latency_gets / rounds, 20).await?);
                server.stop()?;
            }
        }
        let (h50, h99) = (
            quantile_ms(&mut healthy, 0.5),
            quantile_ms(&mut healthy, 0.99),
        );
        let (s50, s99) = (
            quantile_ms(&mut slowed, 0.5),
            quantile_ms(&mut slowed, 0.99),
        );
        println!(
            "GET 1 MiB, one at a time: healthy p50 {h50:.1} ms p99 {h99:.1} ms; one provider +500 ms: p50 {s50:.1} ms p99 {s99:.1} ms (p99 ratio {:.2})",
            s99 / h99
        );
        report.insert(
            "slow_provider".into(),
            json!({"delay_ms": 500, "healthy_p50_ms": h50, "healthy_p99_ms": h99,
                "slowed_p50_ms": s50, "slowed_p99_ms": s99, "p99_ratio": s99 / h99}),
        );
    }
    if run(Phase::Mixed) {
        let secs = args.mixed_secs.unwrap_or(if args.quick { 60 } else { 600 });
        report.insert(
            "mixed".into(),
            mixed_phase(&bin, &config, port, secs, args.mixed_clients, &piece).await?,
        );
    }
    if run(Phase::Hung) {
        let count = if args.quick { 300 } else { 2000 };
        report.insert("hung".into(), hung_phase(&bin, root, count, &piece).await?);
    }
    if run(Phase::Recover) {
        let count = args
            .recover_objects
            .unwrap_or(if args.quick { 5_000 } else { 100_000 });
        report.insert(
            "recover".into(),
            recover_phase(&bin, root, count, &piece).await?,
        );
    }
    let report = serde_json::Value::Object(report);
    if let Some(dir) = args.json.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&args.json, serde_json::to_string_pretty(&report)?)?;
    println!("JSON: {}", args.json.display());
    println!("{report}");
    Ok(())
}
