//! What the engine has recently seen of each provider: read latencies (time to first byte) and
//! failures. Reads go to the providers that answered best; a provider that just failed is
//! tried last for a while; hedging waits for a provider only as long as its recent p95.
//!
//! Writes keep a second series: how long each shard's put took to return once its whole stream
//! had been handed over (the provider's fsync, rename or final HTTP round trip). Its p95 over
//! every provider sets the *write patience*: how long a write that already has its quorum
//! waits for the remaining shards before committing without them (see `write.rs`).
//!
//! Observations age out, so a provider that was slow or down is probed again once its record
//! is stale instead of being avoided forever.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Latency samples kept per provider.
const SAMPLES: usize = 64;

/// The shortest write patience.
pub const PATIENCE_FLOOR: Duration = Duration::from_millis(250);
/// The longest write patience: a hung provider delays a write by at most this much.
pub const PATIENCE_CEILING: Duration = Duration::from_millis(1500);
/// The longest a provider counts as down after failures in a row.
pub const DOWN_AT_MOST: Duration = Duration::from_secs(60);
/// The write patience before enough put latencies are known.
pub const PATIENCE_DEFAULT: Duration = Duration::from_secs(1);

#[derive(Debug, Default)]
struct Record {
    samples: VecDeque<(Instant, Duration)>,
    /// Put finish latencies (stream handed over → put returned).
    put_samples: VecDeque<(Instant, Duration)>,
    down_until: Option<Instant>,
    /// Hedged reads overtook it twice in a row: treat it as slow until then.
    slow_until: Option<Instant>,
    /// Hedged reads that overtook it since it last answered in time.
    overtaken: u32,
    consecutive_errors: u32,
    /// A write is probing the provider after its down period (others still avoid it).
    probe_until: Option<Instant>,
}

/// Recent health of every provider; shared by all requests of an engine.
#[derive(Debug)]
pub struct Health {
    records: Mutex<HashMap<String, Record>>,
    /// How long a sample counts.
    memory: Duration,
    /// How long a provider is tried last after a failure.
    down_for: Duration,
}

/// A provider's standing for reads, best first when sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Standing {
    /// Answering normally (or not observed lately).
    Good,
    /// Answering, but much slower than its peers.
    Slow,
    /// Failed recently.
    Down,
}

impl Default for Health {
    fn default() -> Self {
        Health::new(Duration::from_secs(30), Duration::from_secs(5))
    }
}

impl Health {
    /// Samples are remembered for `memory`; a failed provider is avoided for `down_for`.
    pub fn new(memory: Duration, down_for: Duration) -> Self {
        Health {
            records: Mutex::new(HashMap::new()),
            memory,
            down_for,
        }
    }

    fn with<R>(&self, provider: &str, f: impl FnOnce(&mut Record) -> R) -> R {
        let mut map = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(map.entry(provider.to_string()).or_default())
    }

    /// Records a successful request that took `latency` to its first byte.
    pub fn record_ok(&self, provider: &str, latency: Duration) {
        let now = Instant::now();
        self.with(provider, |r| {
            if r.samples.len() == SAMPLES {
                r.samples.pop_front();
            }
            r.samples.push_back((now, latency));
            r.down_until = None;
            r.consecutive_errors = 0;
            r.probe_until = None;
            r.overtaken = 0;
        });
    }

    /// Records a successful put that returned `finish` after its stream had been handed over.
    pub fn record_put(&self, provider: &str, finish: Duration) {
        let now = Instant::now();
        self.with(provider, |r| {
            if r.put_samples.len() == SAMPLES {
                r.put_samples.pop_front();
            }
            r.put_samples.push_back((now, finish));
            r.down_until = None;
            r.consecutive_errors = 0;
            r.probe_until = None;
        });
    }

    /// How long a write that has its quorum waits for its remaining shards: 4× the recent p95
    /// of put finish latencies over every provider, between [`PATIENCE_FLOOR`] and
    /// [`PATIENCE_CEILING`]; [`PATIENCE_DEFAULT`] with fewer than 8 recent samples.
    pub fn write_patience(&self) -> Duration {
        let records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let cutoff = Instant::now().checked_sub(self.memory);
        let mut v: Vec<Duration> = records
            .values()
            .flat_map(|r| r.put_samples.iter())
            .filter(|(t, _)| cutoff.is_none_or(|c| *t >= c))
            .map(|(_, d)| *d)
            .collect();
        if v.len() < 8 {
            return PATIENCE_DEFAULT;
        }
        v.sort_unstable();
        let idx = ((v.len() - 1) as f64 * 0.95).round() as usize;
        let p95 = v.get(idx).copied().unwrap_or(PATIENCE_DEFAULT);
        (p95 * 4).clamp(PATIENCE_FLOOR, PATIENCE_CEILING)
    }

    /// Records that a request had not answered after `waited` when a hedged request overtook
    /// it. Overtaken twice in a row, the provider counts as slow for a while (reads go
    /// elsewhere, then probe it again); once is forgiven, as a hiccup. Its latency samples
    /// are left alone, so its hedge delay does not grow with each hedge.
    pub fn record_overtaken(&self, provider: &str, waited: Duration) {
        let until = Instant::now() + self.down_for;
        tracing::debug!("provider {provider}: overtaken by a hedged read after {waited:?}");
        self.with(provider, |r| {
            r.overtaken = r.overtaken.saturating_add(1);
            if r.overtaken >= 2 {
                r.slow_until = Some(until);
            }
        });
    }

    /// Records that the provider answered a probe: it no longer counts as down.
    pub fn record_alive(&self, provider: &str) {
        self.with(provider, |r| {
            r.down_until = None;
            r.consecutive_errors = 0;
            r.probe_until = None;
        });
    }

    /// Records a failed request (unreachable, timed out, refused). The provider counts as
    /// down for `down_for`, doubled with each further failure in a row after a down period
    /// ended (at most [`DOWN_AT_MOST`]); failures while it is down change nothing.
    pub fn record_error(&self, provider: &str) {
        let now = Instant::now();
        self.with(provider, |r| {
            // Failures of requests that overlapped are one outage, not several.
            if r.down_until.is_some_and(|t| t > now) {
                return;
            }
            let doublings = r.consecutive_errors.min(4);
            let down = (self.down_for * (1u32 << doublings)).min(DOWN_AT_MOST);
            r.down_until = Some(now + down);
            r.consecutive_errors = r.consecutive_errors.saturating_add(1);
            r.probe_until = None;
        });
    }

    /// Whether a write should leave the provider out (when the others make its quorum): it
    /// is down; or its down period is over but it has not answered since, and another write
    /// is already probing it. Otherwise this write is the probe, alone for a while, so a
    /// hung provider costs one write its patience per down period, not every write that
    /// happens to start then.
    pub(crate) fn avoid_for_write(&self, provider: &str) -> bool {
        let now = Instant::now();
        self.with(provider, |r| {
            if r.down_until.is_some_and(|t| t > now) {
                return true;
            }
            if r.consecutive_errors == 0 {
                return false;
            }
            if r.probe_until.is_some_and(|t| t > now) {
                return true;
            }
            r.probe_until = Some(now + PATIENCE_CEILING * 2);
            false
        })
    }

    /// Whether writes can count on the provider: it has not failed since it last answered.
    /// A provider that failed and whose down period is over is a *suspect* until a probe
    /// answers (see [`Health::avoid_for_write`]).
    pub(crate) fn trusted_for_write(&self, provider: &str) -> bool {
        self.with(provider, |r| r.consecutive_errors == 0)
    }

    /// Whether a write could probe the provider now: its down period is over, it has not
    /// answered since, and no other write is probing it. Claims nothing.
    pub(crate) fn probe_free(&self, provider: &str) -> bool {
        let now = Instant::now();
        self.with(provider, |r| {
            r.consecutive_errors > 0
                && r.down_until.is_none_or(|t| t <= now)
                && r.probe_until.is_none_or(|t| t <= now)
        })
    }

    /// Whether the provider failed within the last `down_for`.
    pub fn is_down(&self, provider: &str) -> bool {
        let now = Instant::now();
        self.with(provider, |r| r.down_until.is_some_and(|t| t > now))
    }

    fn recent(&self, r: &Record) -> Vec<Duration> {
        let cutoff = Instant::now().checked_sub(self.memory);
        let mut v: Vec<Duration> = r
            .samples
            .iter()
            .filter(|(t, _)| cutoff.is_none_or(|c| *t >= c))
            .map(|(_, d)| *d)
            .collect();
        v.sort_unstable();
        v
    }

    /// The provider's recent `q`-quantile latency, if it has at least 4 recent samples.
    pub fn quantile(&self, provider: &str, q: f64) -> Option<Duration> {
        let records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let r = records.get(provider)?;
        let v = self.recent(r);
        if v.len() < 4 {
            return None;
        }
        let idx = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        v.get(idx).copied()
    }

    /// The `q`-quantile over every provider's recent samples (what a provider with no history
    /// of its own can be expected to do), if there are at least 4.
    pub fn overall_quantile(&self, q: f64) -> Option<Duration> {
        let records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut v: Vec<Duration> = records.values().flat_map(|r| self.recent(r)).collect();
        if v.len() < 4 {
            return None;
        }
        v.sort_unstable();
        let idx = ((v.len() - 1) as f64 * q.clamp(0.0, 1.0)).round() as usize;
        v.get(idx).copied()
    }

    /// Standing of each provider in `names` (same order): down if it failed recently; slow if a
    /// hedged read overtook it recently, or its recent median latency is more than 4× (and
    /// 5 ms above) the median of its peers'.
    pub(crate) fn standings(&self, names: &[&str]) -> Vec<Standing> {
        let now = Instant::now();
        let records = self
            .records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let medians: Vec<Option<Duration>> = names
            .iter()
            .map(|n| {
                records.get(*n).and_then(|r| {
                    let v = self.recent(r);
                    v.get(v.len() / 2).copied()
                })
            })
            .collect();
        let mut known: Vec<Duration> = medians.iter().flatten().copied().collect();
        known.sort_unstable();
        let typical = known.get(known.len() / 2).copied();
        names
            .iter()
            .zip(&medians)
            .map(|(n, med)| {
                let down = records
                    .get(*n)
                    .and_then(|r| r.down_until)
                    .is_some_and(|t| t > now);
                let overtaken = records
                    .get(*n)
                    .and_then(|r| r.slow_until)
                    .is_some_and(|t| t > now);
                if down {
                    Standing::Down
                } else if overtaken {
                    Standing::Slow
                } else if let (Some(m), Some(t)) = (med, typical)
                    && *m > t * 4
                    && *m > t + Duration::from_millis(5)
                {
                    Standing::Slow
                } else {
                    Standing::Good
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_down_period_one_write_at_a_time_probes_and_outages_back_off() {
        let h = Health::new(Duration::from_secs(30), Duration::from_millis(40));
        assert!(!h.avoid_for_write("p"));
        h.record_error("p");
        h.record_error("p"); // overlapping failures: one outage
        assert!(h.avoid_for_write("p") && h.is_down("p"));
        std::thread::sleep(Duration::from_millis(50));
        // The down period is over: the first write probes, the others still avoid it.
        assert!(!h.avoid_for_write("p"));
        assert!(h.avoid_for_write("p"));
        assert!(h.avoid_for_write("p"));
        // The probe failed too: down again, twice as long.
        h.record_error("p");
        std::thread::sleep(Duration::from_millis(50));
        assert!(h.is_down("p"), "the second outage lasts 80 ms");
        std::thread::sleep(Duration::from_millis(40));
        assert!(!h.is_down("p"));
        // The probe succeeds: everyone writes to it again.
        assert!(!h.avoid_for_write("p"));
        h.record_put("p", Duration::from_millis(3));
        assert!(!h.avoid_for_write("p") && !h.avoid_for_write("p"));
    }
}
