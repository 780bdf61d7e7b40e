//! `provider test`: reachability, permissions (write, read back, delete), latency and
//! throughput of a provider, measured on the provider itself (deadlines only: no retries, no
//! concurrency limit). Works beside a running gateway: [`Vault::test_providers`] tests the
//! instances the engine uses.

use std::sync::Arc;
use std::time::{Duration, Instant};

use archipel_provider::{BlobName, ErrorKind, Provider, ProviderError, ProviderExt};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::open::Vault;
use crate::spec::ProviderSpec;

/// One check's outcome: how long it took, or why it failed; `None` in the report when an
/// earlier failure made it pointless.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// Whether the step succeeded.
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// How long it took, in milliseconds.
    pub ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why it failed.
    pub error: Option<String>,
}

/// Median latencies of small operations, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Latency {
    /// How many round trips were measured.
    pub rounds: u32,
    /// The size of each blob.
    pub blob_bytes: u64,
    /// Median put.
    pub put_ms: f64,
    /// Median get.
    pub get_ms: f64,
    /// Median delete.
    pub delete_ms: f64,
}

/// Sequential throughput of one blob, in MiB/s.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// The size of the blob.
    pub bytes: u64,
    /// Write rate.
    pub write_mib_s: f64,
    /// Read rate.
    pub read_mib_s: f64,
}

/// One provider's test report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderTest {
    /// The provider.
    pub name: String,
    /// `dir`, `s3` or `webdav`.
    pub kind: String,
    /// Where it is (no credentials).
    pub location: String,
    /// Whether every step passed.
    pub ok: bool,
    /// Opened and listed.
    pub reachable: Option<Check>,
    /// A probe blob written.
    pub write: Option<Check>,
    /// The probe read back, byte for byte.
    pub read: Option<Check>,
    /// The probe deleted, and gone.
    pub delete: Option<Check>,
    /// Small round trips.
    pub latency: Option<Latency>,
    /// One larger blob written and read.
    pub throughput: Option<Throughput>,
    /// The first failure, with a hint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A failed step: which, and the provider's error.
struct Failure {
    step: &'static str,
    text: String,
}

fn fail(step: &'static str, s: &ProviderSpec, e: &ProviderError) -> Failure {
    Failure {
        step,
        text: crate::stack::explain(e, &s.backend),
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// `len` bytes that do not compress (a provider that compresses must not flatter itself).
fn payload(len: usize) -> Result<Vec<u8>> {
    let seed = crate::secrets::random::<8>()?;
    let mut x = u64::from_le_bytes(seed) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    Ok(out)
}

fn probe_name(tag: &str) -> Result<BlobName> {
    let suffix = crate::secrets::hex(&crate::secrets::random::<8>()?);
    BlobName::new(format!("probe/{tag}-{suffix}"))
        .map_err(|e| VaultError::Internal(format!("probe blob name: {e}")))
}

/// Puts, reads back (checking the bytes), deletes and checks the blob is gone: the three
/// durations.
async fn round_trip(
    p: &Arc<dyn Provider>,
    s: &ProviderSpec,
    blob: &BlobName,
    body: &[u8],
) -> Result<(Duration, Duration, Duration), Failure> {
    let t = Instant::now();
    p.put_bytes(blob, body.to_vec())
        .await
        .map_err(|e| fail("write", s, &e))?;
    let put = t.elapsed();
    let t = Instant::now();
    let back = p.get_bytes(blob, None).await;
    let get = t.elapsed();
    let back = match back {
        Ok(b) => b,
        Err(e) => {
            let _ = p.delete(blob).await;
            return Err(fail("read", s, &e));
        }
    };
    if back != body {
        let _ = p.delete(blob).await;
        return Err(Failure {
            step: "read",
            text: format!(
                "the blob read back ({} bytes) differs from what was written ({} bytes)",
                back.len(),
                body.len()
            ),
        });
    }
    let t = Instant::now();
    p.delete(blob).await.map_err(|e| fail("delete", s, &e))?;
    let del = t.elapsed();
    match p.head(blob).await {
        Err(e) if e.kind == ErrorKind::NotFound => Ok((put, get, del)),
        Err(e) => Err(fail("delete", s, &e)),
        Ok(_) => Err(Failure {
            step: "delete",
            text: "the blob is still there after its delete succeeded".into(),
        }),
    }
}

/// Tests one provider: reachable (list), write, read back, delete and gone, then the median
/// latency of `rounds` small round trips and, with `size > 0`, the throughput of one blob of
/// `size` bytes. `live` is the provider as a running vault holds it (with its deadlines
/// only); without it the provider is opened from `s`.
pub async fn test_provider(
    s: &ProviderSpec,
    live: Option<Arc<dyn Provider>>,
    rounds: u32,
    size: u64,
) -> Result<ProviderTest> {
    let mut t = ProviderTest {
        name: s.info.name.clone(),
        kind: s.backend.kind().to_string(),
        location: s.backend.location(),
        ok: false,
        reachable: None,
        write: None,
        read: None,
        delete: None,
        latency: None,
        throughput: None,
        error: None,
    };
    let failed = |t: &mut ProviderTest, f: Failure| {
        let c = Some(Check {
            ok: false,
            ms: None,
            error: Some(f.text.clone()),
        });
        match f.step {
            "reachable" => t.reachable = c,
            "write" => t.write = c,
            "read" => t.read = c,
            _ => t.delete = c,
        }
        t.error = Some(format!("{} failed: {}", f.step, f.text));
    };
    let good = |d: Duration| {
        Some(Check {
            ok: true,
            ms: Some(ms(d)),
            error: None,
        })
    };

    // Reachable: open it and list the probe folder.
    let started = Instant::now();
    let opened = match live {
        Some(p) => Ok(p),
        None => crate::stack::open_for_test(s).await,
    };
    let listed = match opened {
        Ok(p) => p.list("probe/", None, 1).await.map(|_| p),
        Err(e) => Err(e),
    };
    let p = match listed {
        Ok(p) => p,
        Err(e) => {
            failed(&mut t, fail("reachable", s, &e));
            return Ok(t);
        }
    };
    t.reachable = good(started.elapsed());

    // Permissions: write, read back, delete (and gone).
    let blob = probe_name("check")?;
    let body = format!("archipel probe {blob}").into_bytes();
    let started = Instant::now();
    if let Err(e) = p.put_bytes(&blob, body.clone()).await {
        failed(&mut t, fail("write", s, &e));
        return Ok(t);
    }
    t.write = good(started.elapsed());
    let started = Instant::now();
    let back = p.get_bytes(&blob, None).await;
    let read_time = started.elapsed();
    match back {
        Ok(b) if b == body => t.read = good(read_time),
        other => {
            let _ = p.delete(&blob).await;
            let f = match other {
                Err(e) => fail("read", s, &e),
                Ok(b) => Failure {
                    step: "read",
                    text: format!(
                        "the probe read back ({} bytes) differs from what was written ({} bytes)",
                        b.len(),
                        body.len()
                    ),
                },
            };
            failed(&mut t, f);
            return Ok(t);
        }
    }
    let started = Instant::now();
    let deleted = match p.delete(&blob).await {
        Ok(()) => match (started.elapsed(), p.head(&blob).await) {
            (d, Err(e)) if e.kind == ErrorKind::NotFound => Ok(d),
            (_, Err(e)) => Err(fail("delete", s, &e)),
            (_, Ok(_)) => Err(Failure {
                step: "delete",
                text: "the probe is still there after its delete succeeded".into(),
            }),
        },
        Err(e) => Err(fail("delete", s, &e)),
    };
    match deleted {
        Ok(d) => t.delete = good(d),
        Err(f) => {
            failed(&mut t, f);
            return Ok(t);
        }
    }

    // Latency: the median of small round trips.
    const SMALL: usize = 4096;
    let body = payload(SMALL)?;
    let (mut puts, mut gets, mut dels) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let blob = probe_name("latency")?;
        match round_trip(&p, s, &blob, &body).await {
            Ok((put, get, del)) => {
                puts.push(ms(put));
                gets.push(ms(get));
                dels.push(ms(del));
            }
            Err(f) => {
                t.error = Some(format!("latency: {} failed: {}", f.step, f.text));
                return Ok(t);
            }
        }
    }
    t.latency = Some(Latency {
        rounds,
        blob_bytes: SMALL as u64,
        put_ms: median(puts),
        get_ms: median(gets),
        delete_ms: median(dels),
    });

    // Throughput: one larger blob, written then read back.
    if size > 0 {
        let len = usize::try_from(size)
            .map_err(|_| VaultError::Invalid(format!("size {size} is too large")))?;
        let body = payload(len)?;
        let blob = probe_name("throughput")?;
        match round_trip(&p, s, &blob, &body).await {
            Ok((put, get, _)) => {
                let rate = |d: Duration| {
                    let secs = d.as_secs_f64().max(1e-9);
                    ((size as f64 / (1024.0 * 1024.0)) / secs * 10.0).round() / 10.0
                };
                t.throughput = Some(Throughput {
                    bytes: size,
                    write_mib_s: rate(put),
                    read_mib_s: rate(get),
                });
            }
            Err(f) => {
                t.error = Some(format!("throughput: {} failed: {}", f.step, f.text));
                return Ok(t);
            }
        }
    }
    t.ok = true;
    Ok(t)
}

impl Vault {
    /// Tests the providers named (all when `names` is empty) on the instances this vault
    /// uses, concurrently.
    pub async fn test_providers(
        &self,
        names: &[String],
        rounds: u32,
        size: u64,
    ) -> Result<Vec<ProviderTest>> {
        let built = self.providers();
        for n in names {
            if !built.iter().any(|b| &b.slot.info.name == n) {
                return Err(VaultError::NoSuchProvider { name: n.clone() });
            }
        }
        let chosen: Vec<_> = built
            .iter()
            .filter(|b| names.is_empty() || names.contains(&b.slot.info.name))
            .collect();
        let tests = futures::future::join_all(
            chosen
                .iter()
                .map(|b| test_provider(&b.spec, Some(b.bare.clone()), rounds, size)),
        )
        .await;
        tests.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert!((median(vec![3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(vec![4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
        assert!(median(Vec::new()).abs() < 1e-9);
    }
}
