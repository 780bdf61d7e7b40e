//! `x-amz-checksum-*` (CRC32, CRC32C, CRC64NVME, SHA1, SHA256): computed while the body streams
//! into the engine, compared at its end with the value the client sent — in a header, or in an
//! aws-chunked trailer — and a mismatch fails the body, so the engine stores nothing. The value
//! is kept with the object and returned on GET/HEAD with `x-amz-checksum-mode: ENABLED`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use s3s::TrailingHeaders;
use s3s::checksum::ChecksumHasher;
use s3s::dto::Checksum;

/// The algorithms, their header names and how to switch them on in a hasher.
const ALGORITHMS: [(&str, &str); 5] = [
    ("CRC32", "x-amz-checksum-crc32"),
    ("CRC32C", "x-amz-checksum-crc32c"),
    ("CRC64NVME", "x-amz-checksum-crc64nvme"),
    ("SHA1", "x-amz-checksum-sha1"),
    ("SHA256", "x-amz-checksum-sha256"),
];

/// What the client announced for one request body.
#[derive(Debug, Default, Clone)]
pub(crate) struct Expected {
    /// `(header name, value)` given up front.
    pub(crate) values: Vec<(&'static str, String)>,
    /// Header names whose value arrives in the trailer.
    pub(crate) trailing: Vec<&'static str>,
}

impl Expected {
    /// From the checksum fields s3s parsed, the `x-amz-trailer` header and the SDK's declared
    /// algorithm.
    pub(crate) fn new(given: &Checksum, headers: &http::HeaderMap) -> Expected {
        let mut e = Expected::default();
        let fields = [
            &given.checksum_crc32,
            &given.checksum_crc32c,
            &given.checksum_crc64nvme,
            &given.checksum_sha1,
            &given.checksum_sha256,
        ];
        for ((_, name), v) in ALGORITHMS.iter().zip(fields) {
            if let Some(v) = v {
                e.values.push((name, v.clone()));
            }
        }
        if let Some(t) = headers.get("x-amz-trailer").and_then(|v| v.to_str().ok()) {
            for part in t.split(',') {
                let part = part.trim().to_ascii_lowercase();
                if let Some((_, name)) = ALGORITHMS.iter().find(|(_, n)| *n == part) {
                    e.trailing.push(name);
                }
            }
        }
        e
    }

    fn names(&self) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = self.values.iter().map(|(n, _)| *n).collect();
        v.extend(self.trailing.iter().copied());
        v.sort_unstable();
        v.dedup();
        v
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.values.is_empty() && self.trailing.is_empty()
    }
}

fn hasher_for(names: &[&str]) -> ChecksumHasher {
    let mut h = ChecksumHasher::default();
    for n in names {
        match *n {
            "x-amz-checksum-crc32" => h.crc32 = Some(Default::default()),
            "x-amz-checksum-crc32c" => h.crc32c = Some(Default::default()),
            "x-amz-checksum-crc64nvme" => h.crc64nvme = Some(Default::default()),
            "x-amz-checksum-sha1" => h.sha1 = Some(Default::default()),
            "x-amz-checksum-sha256" => h.sha256 = Some(Default::default()),
            _ => {}
        }
    }
    h
}

fn value_of<'a>(c: &'a Checksum, name: &str) -> Option<&'a String> {
    match name {
        "x-amz-checksum-crc32" => c.checksum_crc32.as_ref(),
        "x-amz-checksum-crc32c" => c.checksum_crc32c.as_ref(),
        "x-amz-checksum-crc64nvme" => c.checksum_crc64nvme.as_ref(),
        "x-amz-checksum-sha1" => c.checksum_sha1.as_ref(),
        "x-amz-checksum-sha256" => c.checksum_sha256.as_ref(),
        _ => None,
    }
}

/// The outcome, readable once the body has been consumed.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// The body's checksums `(header name, base64)`, when it ended and matched; shared with
    /// the engine as late headers, so they are stored with the object.
    pub(crate) computed: archipel_engine::LateHeaders,
    /// Set when a checksum did not match (the body was failed).
    pub(crate) mismatch: AtomicBool,
}

impl Outcome {
    pub(crate) fn mismatched(&self) -> bool {
        self.mismatch.load(Ordering::SeqCst)
    }

    pub(crate) fn values(&self) -> Vec<(String, String)> {
        self.computed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// A body stream that checksums what passes and fails at the end on a mismatch.
pub(crate) struct Verifying<S> {
    inner: S,
    hasher: Option<ChecksumHasher>,
    expected: Expected,
    trailers: Option<TrailingHeaders>,
    outcome: Arc<Outcome>,
}

impl<S> Verifying<S> {
    pub(crate) fn new(
        inner: S,
        expected: Expected,
        trailers: Option<TrailingHeaders>,
    ) -> (Self, Arc<Outcome>) {
        let outcome = Arc::new(Outcome::default());
        let v = Verifying {
            inner,
            hasher: Some(hasher_for(&expected.names())),
            expected,
            trailers,
            outcome: outcome.clone(),
        };
        (v, outcome)
    }

    fn finish(&mut self) -> Result<(), std::io::Error> {
        let Some(h) = self.hasher.take() else {
            return Ok(());
        };
        let sums = h.finalize();
        let mut wanted: Vec<(&'static str, String)> = self.expected.values.clone();
        for name in &self.expected.trailing {
            let v = self.trailers.as_ref().and_then(|t| {
                t.read(|h| {
                    h.get(*name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                })
                .flatten()
            });
            match v {
                Some(v) => wanted.push((name, v)),
                None => {
                    self.outcome.mismatch.store(true, Ordering::SeqCst);
                    return Err(std::io::Error::other(format!(
                        "the trailer announced {name} but did not carry it"
                    )));
                }
            }
        }
        let mut computed = Vec::new();
        for (name, want) in wanted {
            let got = value_of(&sums, name).cloned().unwrap_or_default();
            if got != want.trim() {
                self.outcome.mismatch.store(true, Ordering::SeqCst);
                return Err(std::io::Error::other(format!(
                    "{name}: the body's checksum is {got}, the request said {want}"
                )));
            }
            computed.push((name.to_string(), got));
        }
        *self
            .outcome
            .computed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = computed;
        Ok(())
    }
}

impl<S> Stream for Verifying<S>
where
    S: Stream<Item = std::io::Result<Bytes>> + Unpin,
{
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(b))) => {
                if let Some(h) = &mut this.hasher {
                    h.update(&b);
                }
                Poll::Ready(Some(Ok(b)))
            }
            Poll::Ready(None) => match this.finish() {
                Ok(()) => Poll::Ready(None),
                Err(e) => Poll::Ready(Some(Err(e))),
            },
            other => other,
        }
    }
}

/// Fills a response's checksum fields from stored `(header, value)` pairs.
pub(crate) fn to_checksum(stored: &[(String, String)]) -> Checksum {
    let mut c = Checksum::default();
    for (k, v) in stored {
        let v = Some(v.clone());
        match k.as_str() {
            "x-amz-checksum-crc32" => c.checksum_crc32 = v,
            "x-amz-checksum-crc32c" => c.checksum_crc32c = v,
            "x-amz-checksum-crc64nvme" => c.checksum_crc64nvme = v,
            "x-amz-checksum-sha1" => c.checksum_sha1 = v,
            "x-amz-checksum-sha256" => c.checksum_sha256 = v,
            _ => {}
        }
    }
    c
}
