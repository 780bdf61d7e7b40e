//! Placement: which `k + m` providers hold the shards of an object.
//!
//! A [`Policy`] fixes `k` data and `m` parity shards, the write quorum, and [`PlacementRules`]
//! over provider labels: at most one shard per provider (always), at most N per operator, at
//! most N per jurisdiction, allowed jurisdictions. [`Policy::validate`] tells at bucket
//! creation whether the providers can satisfy it — an impossible policy is an error then, not
//! at the first PUT.
//!
//! [`Policy::place`] ranks the eligible providers by weighted rendezvous hashing of the object
//! id (each provider scores `weight / -ln(u)` with `u` a hash of object id and provider name),
//! then takes the best-ranked set that satisfies the rules, by a depth-first search (bounded by
//! a generous step budget) so a satisfiable policy does not fail because a greedy choice painted
//! itself into a corner; a property test checks every "impossible" against brute force. The
//! same object id always gets the same providers; adding a provider moves only the shards it
//! now wins (about `n / providers` of them), and load spreads in proportion to weight.

use std::collections::{BTreeMap, BTreeSet};

/// Lifecycle of a provider in the vault: one enum, kept in the registry (`archipel_meta`)
/// and read by placement.
pub use archipel_meta::ProviderState;

/// What placement needs to know about a provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    /// Unique name.
    pub name: String,
    /// Who runs it (a company, a department, "self").
    pub operator: String,
    /// Where it is, as an ISO 3166 country code.
    pub jurisdiction: String,
    /// Relative share of new shards (≥ 1).
    pub weight: u32,
    /// Lifecycle state.
    pub state: ProviderState,
}

/// Constraints over provider labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementRules {
    /// At most this many shards of one object per operator.
    pub max_per_operator: Option<usize>,
    /// At most this many shards of one object per jurisdiction (`≤ m` means the object
    /// survives the loss of any one jurisdiction; `< k` means no jurisdiction alone can read it).
    pub max_per_jurisdiction: Option<usize>,
    /// Only providers in these jurisdictions (e.g. the EU member states).
    pub allowed_jurisdictions: Option<BTreeSet<String>>,
}

/// A bucket's erasure and placement policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Data shards.
    pub k: usize,
    /// Parity shards: how many providers may be lost.
    pub m: usize,
    /// Shards that must be durable before a PUT is acknowledged (`k ≤ quorum ≤ k + m`).
    pub write_quorum: usize,
    /// Label constraints.
    pub rules: PlacementRules,
}

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlacementError {
    /// The policy itself is inconsistent (k = 0, quorum out of range, …).
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
    /// The providers cannot satisfy the policy.
    #[error("placement impossible: {0}")]
    Impossible(String),
}

/// The providers chosen for one object: `providers[i]` holds shard `i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Provider names, in shard order.
    pub providers: Vec<String>,
}

/// How an object's shards spread over operators and jurisdictions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementReport {
    /// Shards per operator.
    pub per_operator: BTreeMap<String, usize>,
    /// Shards per jurisdiction.
    pub per_jurisdiction: BTreeMap<String, usize>,
    /// Whether losing every provider of any one jurisdiction leaves at least `k` shards.
    pub survives_any_jurisdiction_loss: bool,
    /// Whether no single jurisdiction holds `k` shards (so none can decode alone, even with
    /// the key).
    pub no_jurisdiction_holds_k: bool,
}

impl Policy {
    /// `k + m` with the default write quorum `k + 1` (capped at `k + m`) and no label rules.
    pub fn new(k: usize, m: usize) -> Result<Self, PlacementError> {
        let p = Policy {
            k,
            m,
            write_quorum: (k + 1).min(k + m),
            rules: PlacementRules::default(),
        };
        p.check()?;
        Ok(p)
    }

    /// The default for a vault with `providers` active providers: 4+2 from six providers on;
    /// with fewer, the most parity that keeps overhead ≤ 2× while tolerating two losses where
    /// possible: 3+2 (5), 2+2 (4), 2+1 (3), 1+1 (2, a mirror), 1+0 (1, no redundancy).
    pub fn default_for(providers: usize) -> Result<Self, PlacementError> {
        let (k, m) = match providers {
            0 => return Err(PlacementError::Impossible("no providers".into())),
            1 => (1, 0),
            2 => (1, 1),
            3 => (2, 1),
            4 => (2, 2),
            5 => (3, 2),
            _ => (4, 2),
        };
        Self::new(k, m)
    }

    /// Total shards.
    pub fn n(&self) -> usize {
        self.k + self.m
    }

    fn check(&self) -> Result<(), PlacementError> {
        let bad = |s: String| Err(PlacementError::InvalidPolicy(s));
        if self.k == 0 {
            return bad("k (data shards) must be at least 1".into());
        }
        if self.n() > 255 {
            return bad(format!("k + m = {} exceeds 255", self.n()));
        }
        if self.write_quorum < self.k || self.write_quorum > self.n() {
            return bad(format!(
                "write quorum {} must be between k = {} and k + m = {}",
                self.write_quorum,
                self.k,
                self.n()
            ));
        }
        for (what, cap) in [
            ("max_per_operator", self.rules.max_per_operator),
            ("max_per_jurisdiction", self.rules.max_per_jurisdiction),
        ] {
            if cap == Some(0) {
                return bad(format!("{what} must be at least 1"));
            }
        }
        Ok(())
    }

    /// Checks the policy against the vault's providers: an error names what cannot be met.
    pub fn validate(&self, providers: &[ProviderInfo]) -> Result<(), PlacementError> {
        self.check()?;
        self.place_excluding(providers, b"validate", &[])
            .map(|_| ())
    }

    /// Chooses the providers for the object `object_id`.
    pub fn place(
        &self,
        providers: &[ProviderInfo],
        object_id: &[u8],
    ) -> Result<Placement, PlacementError> {
        self.place_excluding(providers, object_id, &[])
    }

    /// Like [`Policy::place`], never choosing the providers named in `exclude` (down ones).
    pub fn place_excluding(
        &self,
        providers: &[ProviderInfo],
        object_id: &[u8],
        exclude: &[&str],
    ) -> Result<Placement, PlacementError> {
        self.place_ranked(providers, object_id, exclude, |_| true)
    }

    /// Like [`Policy::place`], choosing providers for which `prefer` holds before any other
    /// (e.g. healthy ones before ones that failed lately) as far as the rules allow.
    pub fn place_preferring(
        &self,
        providers: &[ProviderInfo],
        object_id: &[u8],
        prefer: impl Fn(&ProviderInfo) -> bool,
    ) -> Result<Placement, PlacementError> {
        self.place_ranked(providers, object_id, &[], prefer)
    }

    fn place_ranked(
        &self,
        providers: &[ProviderInfo],
        object_id: &[u8],
        exclude: &[&str],
        prefer: impl Fn(&ProviderInfo) -> bool,
    ) -> Result<Placement, PlacementError> {
        self.check()?;
        let mut ranked = self.ranked(providers, object_id, |p| {
            !exclude.contains(&p.name.as_str())
        });
        // Stable: rank order within the preferred and within the others.
        ranked.sort_by_key(|p| !prefer(p));
        if ranked.len() < self.n() {
            return Err(PlacementError::Impossible(format!(
                "{} shards need {} eligible providers, only {} are (active, allowed jurisdiction{})",
                self.n(),
                self.n(),
                ranked.len(),
                if exclude.is_empty() {
                    ""
                } else {
                    ", not excluded"
                }
            )));
        }
        // Cheap necessary conditions first: enough distinct operators and jurisdictions.
        let distinct = |f: fn(&ProviderInfo) -> &str| {
            ranked.iter().map(|p| f(p)).collect::<BTreeSet<_>>().len()
        };
        let roomy = |cap: Option<usize>, groups: usize| {
            cap.is_none_or(|c| c.saturating_mul(groups) >= self.n())
        };
        let feasible_counts = roomy(
            self.rules.max_per_operator,
            distinct(|p| p.operator.as_str()),
        ) && roomy(
            self.rules.max_per_jurisdiction,
            distinct(|p| p.jurisdiction.as_str()),
        );
        let mut chosen = Vec::with_capacity(self.n());
        let mut ops = BTreeMap::new();
        let mut jurs = BTreeMap::new();
        let mut budget = SEARCH_BUDGET;
        if feasible_counts && self.search(&ranked, 0, &mut chosen, &mut ops, &mut jurs, &mut budget)
        {
            Ok(Placement {
                providers: chosen
                    .iter()
                    .map(|p: &&ProviderInfo| p.name.clone())
                    .collect(),
            })
        } else {
            Err(PlacementError::Impossible(self.why_impossible(&ranked)))
        }
    }

    /// Why no placement keeps the caps over `ranked` (the eligible providers): each cap with
    /// how many shards its groups can take at most, e.g. `at most 2 per jurisdiction: the
    /// jurisdictions can take 5 of the 6 shards (DE 1, FR 2, NL 2)`.
    fn why_impossible(&self, ranked: &[&ProviderInfo]) -> String {
        let mut clauses = Vec::new();
        for (cap, what, plural, f) in [
            (
                self.rules.max_per_operator,
                "operator",
                "operators",
                (|p: &ProviderInfo| p.operator.clone()) as fn(&ProviderInfo) -> String,
            ),
            (
                self.rules.max_per_jurisdiction,
                "jurisdiction",
                "jurisdictions",
                |p: &ProviderInfo| p.jurisdiction.clone(),
            ),
        ] {
            let Some(cap) = cap else { continue };
            let mut groups: BTreeMap<String, usize> = BTreeMap::new();
            for p in ranked {
                *groups.entry(f(p)).or_default() += 1;
            }
            let room: usize = groups.values().map(|n| (*n).min(cap)).sum();
            let detail: Vec<String> = groups
                .iter()
                .map(|(g, n)| format!("{g} {}", (*n).min(cap)))
                .collect();
            clauses.push(format!(
                "at most {cap} per {what}: the {plural} can take {room} of the {} shards ({})",
                self.n(),
                detail.join(", ")
            ));
        }
        if clauses.is_empty() {
            clauses.push("the rules".to_string());
        }
        format!(
            "no {} of the {} eligible providers keep {}",
            self.n(),
            ranked.len(),
            clauses.join("; and ")
        )
    }

    /// A provider to take over shard `failed` of `current` (e.g. a PUT whose provider went down
    /// mid-write): the best-ranked eligible provider not already used that keeps the rules.
    pub fn spare(
        &self,
        providers: &[ProviderInfo],
        object_id: &[u8],
        current: &Placement,
        failed: usize,
    ) -> Option<String> {
        let used: BTreeSet<&str> = current.providers.iter().map(String::as_str).collect();
        let ranked = self.ranked(providers, object_id, |p| !used.contains(p.name.as_str()));
        let by_name: BTreeMap<&str, &ProviderInfo> =
            providers.iter().map(|p| (p.name.as_str(), p)).collect();
        let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
        let mut jurs: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, name) in current.providers.iter().enumerate() {
            if i == failed {
                continue;
            }
            if let Some(p) = by_name.get(name.as_str()) {
                *ops.entry(p.operator.as_str()).or_default() += 1;
                *jurs.entry(p.jurisdiction.as_str()).or_default() += 1;
            }
        }
        ranked
            .into_iter()
            .find(|p| {
                within(
                    self.rules.max_per_operator,
                    ops.get(p.operator.as_str()).copied(),
                ) && within(
                    self.rules.max_per_jurisdiction,
                    jurs.get(p.jurisdiction.as_str()).copied(),
                )
            })
            .map(|p| p.name.clone())
    }

    /// How `placement` spreads over operators and jurisdictions.
    pub fn report(&self, providers: &[ProviderInfo], placement: &Placement) -> PlacementReport {
        let by_name: BTreeMap<&str, &ProviderInfo> =
            providers.iter().map(|p| (p.name.as_str(), p)).collect();
        let mut per_operator = BTreeMap::new();
        let mut per_jurisdiction = BTreeMap::new();
        for name in &placement.providers {
            let (op, jur) = by_name.get(name.as_str()).map_or(("?", "?"), |p| {
                (p.operator.as_str(), p.jurisdiction.as_str())
            });
            *per_operator.entry(op.to_string()).or_insert(0) += 1;
            *per_jurisdiction.entry(jur.to_string()).or_insert(0) += 1;
        }
        let max_j = per_jurisdiction.values().copied().max().unwrap_or(0);
        let total = placement.providers.len();
        PlacementReport {
            survives_any_jurisdiction_loss: total - max_j >= self.k,
            no_jurisdiction_holds_k: max_j < self.k,
            per_operator,
            per_jurisdiction,
        }
    }

    /// Eligible providers (active, allowed, passing `keep`), best rendezvous score first.
    fn ranked<'a>(
        &self,
        providers: &'a [ProviderInfo],
        object_id: &[u8],
        keep: impl Fn(&ProviderInfo) -> bool,
    ) -> Vec<&'a ProviderInfo> {
        let mut v: Vec<(f64, &ProviderInfo)> = providers
            .iter()
            .filter(|p| p.state == ProviderState::Active && p.weight > 0)
            .filter(|p| {
                self.rules
                    .allowed_jurisdictions
                    .as_ref()
                    .is_none_or(|a| a.contains(&p.jurisdiction))
            })
            .filter(|p| keep(p))
            .map(|p| (score(object_id, p), p))
            .collect();
        v.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.name.cmp(&b.1.name)));
        v.into_iter().map(|(_, p)| p).collect()
    }

    /// Depth-first search in rank order for `n` providers within the caps; the first complete
    /// set found is the best-ranked feasible one.
    fn search<'a>(
        &self,
        ranked: &[&'a ProviderInfo],
        from: usize,
        chosen: &mut Vec<&'a ProviderInfo>,
        ops: &mut BTreeMap<&'a str, usize>,
        jurs: &mut BTreeMap<&'a str, usize>,
        budget: &mut u32,
    ) -> bool {
        if chosen.len() == self.n() {
            return true;
        }
        if *budget == 0 {
            return false;
        }
        *budget -= 1;
        if ranked.len() - from < self.n() - chosen.len() {
            return false;
        }
        for i in from..ranked.len() {
            let p = ranked[i];
            let (o, j) = (p.operator.as_str(), p.jurisdiction.as_str());
            if !within(self.rules.max_per_operator, ops.get(o).copied())
                || !within(self.rules.max_per_jurisdiction, jurs.get(j).copied())
            {
                continue;
            }
            chosen.push(p);
            *ops.entry(o).or_default() += 1;
            *jurs.entry(j).or_default() += 1;
            if self.search(ranked, i + 1, chosen, ops, jurs, budget) {
                return true;
            }
            chosen.pop();
            *ops.entry(o).or_default() -= 1;
            *jurs.entry(j).or_default() -= 1;
            if ranked.len() - (i + 1) < self.n() - chosen.len() {
                return false;
            }
        }
        false
    }
}

/// Search steps before giving up (reported as impossible): bounds a pathological validation.
impl Policy {
    /// Encodes the policy as the bucket record stores it: readable `name=value` lines.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!(
            "archipel-policy 1\nk={}\nm={}\nwrite_quorum={}\n",
            self.k, self.m, self.write_quorum
        );
        if let Some(n) = self.rules.max_per_operator {
            s.push_str(&format!("max_per_operator={n}\n"));
        }
        if let Some(n) = self.rules.max_per_jurisdiction {
            s.push_str(&format!("max_per_jurisdiction={n}\n"));
        }
        if let Some(j) = &self.rules.allowed_jurisdictions {
            let list: Vec<&str> = j.iter().map(String::as_str).collect();
            s.push_str(&format!("allowed_jurisdictions={}\n", list.join(",")));
        }
        s.into_bytes()
    }

    /// Decodes [`Policy::encode`]'s output; an error names the offending line.
    pub fn decode(bytes: &[u8]) -> Result<Self, PlacementError> {
        let bad = |m: String| PlacementError::InvalidPolicy(m);
        let text = std::str::from_utf8(bytes).map_err(|_| bad("policy is not UTF-8".into()))?;
        let mut lines = text.lines();
        if lines.next() != Some("archipel-policy 1") {
            return Err(bad(
                "unknown policy format (expected \"archipel-policy 1\")".into(),
            ));
        }
        let (mut k, mut m, mut q) = (None, None, None);
        let mut rules = PlacementRules::default();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| bad(format!("policy line {line:?} is not name=value")))?;
            let num = || {
                value
                    .parse::<usize>()
                    .map_err(|_| bad(format!("policy {name}: {value:?} is not a number")))
            };
            match name {
                "k" => k = Some(num()?),
                "m" => m = Some(num()?),
                "write_quorum" => q = Some(num()?),
                "max_per_operator" => rules.max_per_operator = Some(num()?),
                "max_per_jurisdiction" => rules.max_per_jurisdiction = Some(num()?),
                "allowed_jurisdictions" => {
                    rules.allowed_jurisdictions = Some(
                        value
                            .split(',')
                            .filter(|j| !j.is_empty())
                            .map(str::to_string)
                            .collect(),
                    )
                }
                _ => {} // written by a newer version: ignored
            }
        }
        let (Some(k), Some(m)) = (k, m) else {
            return Err(bad("policy lacks k or m".into()));
        };
        let mut p = Policy::new(k, m)?;
        if let Some(q) = q {
            p.write_quorum = q;
        }
        p.rules = rules;
        p.check()?;
        Ok(p)
    }
}

const SEARCH_BUDGET: u32 = 1_000_000;

/// Whether one more shard keeps a count within `cap`.
fn within(cap: Option<usize>, count: Option<usize>) -> bool {
    cap.is_none_or(|c| count.unwrap_or(0) < c)
}

/// 64-bit FNV-1a over the parts, finished with the splitmix64 mixer: stable across builds.
fn hash64(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Weighted rendezvous score: `weight / -ln(u)`, `u ∈ (0, 1)` from the hash.
fn score(object_id: &[u8], p: &ProviderInfo) -> f64 {
    let h = hash64(&[object_id, p.name.as_bytes()]);
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(p.weight) / -u.ln()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn policies_encode_readably_and_round_trip() {
        let mut p = Policy::new(4, 2).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            String::from_utf8_lossy(&p.encode()),
            "archipel-policy 1\nk=4\nm=2\nwrite_quorum=5\n"
        );
        p.write_quorum = 6;
        p.rules.max_per_operator = Some(2);
        p.rules.max_per_jurisdiction = Some(3);
        p.rules.allowed_jurisdictions = Some(["DE".to_string(), "FR".to_string()].into());
        assert_eq!(Policy::decode(&p.encode()), Ok(p.clone()));
        let mut future = p.encode();
        future.extend_from_slice(b"some_new_rule=1\n");
        assert_eq!(Policy::decode(&future), Ok(p), "unknown lines are ignored");
        for (bad, says) in [
            (&b"k=4\nm=2\n"[..], "unknown policy format"),
            (b"archipel-policy 1\nk=four\nm=2\n", "not a number"),
            (b"archipel-policy 1\nm=2\n", "lacks k"),
            (
                b"archipel-policy 1\nk=4\nm=2\nwrite_quorum=9\n",
                "write quorum",
            ),
        ] {
            let e = Policy::decode(bad)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(e.contains(says), "{e}");
        }
    }

    fn provider(name: &str, operator: &str, jurisdiction: &str) -> ProviderInfo {
        ProviderInfo {
            name: name.into(),
            operator: operator.into(),
            jurisdiction: jurisdiction.into(),
            weight: 1,
            state: ProviderState::Active,
        }
    }

    fn six() -> Vec<ProviderInfo> {
        vec![
            provider("fr-1", "ovh", "FR"),
            provider("fr-2", "scaleway", "FR"),
            provider("de-1", "hetzner", "DE"),
            provider("de-2", "ionos", "DE"),
            provider("nl-1", "self", "NL"),
            provider("ch-1", "infomaniak", "CH"),
        ]
    }

    #[test]
    fn defaults_follow_the_provider_count() {
        let shapes: Vec<(usize, usize)> = (1..=8)
            .map(|n| Policy::default_for(n).map(|p| (p.k, p.m)).unwrap())
            .collect();
        assert_eq!(
            shapes,
            [
                (1, 0),
                (1, 1),
                (2, 1),
                (2, 2),
                (3, 2),
                (4, 2),
                (4, 2),
                (4, 2)
            ]
        );
        assert_eq!(Policy::default_for(6).unwrap().write_quorum, 5);
        assert_eq!(Policy::default_for(1).unwrap().write_quorum, 1);
        assert!(Policy::default_for(0).is_err());
    }

    #[test]
    fn invalid_policies_are_refused_with_the_reason() {
        let mut p = Policy::new(4, 2).unwrap();
        p.write_quorum = 3;
        let err = p.validate(&six()).unwrap_err().to_string();
        assert!(
            err.contains("write quorum 3 must be between k = 4 and k + m = 6"),
            "{err}"
        );
        assert!(Policy::new(0, 2).is_err());
        assert!(Policy::new(200, 100).is_err());
    }

    #[test]
    fn an_impossible_policy_fails_at_validation_naming_the_rule() {
        let mut p = Policy::new(4, 2).unwrap();
        p.rules.max_per_jurisdiction = Some(1); // 4 jurisdictions for 6 shards
        let err = p.validate(&six()).unwrap_err().to_string();
        assert!(err.contains("at most 1 per jurisdiction"), "{err}");
        let mut eu = Policy::new(4, 2).unwrap();
        eu.rules.allowed_jurisdictions =
            Some(["FR", "DE", "NL"].iter().map(|s| s.to_string()).collect());
        let err = eu.validate(&six()).unwrap_err().to_string();
        assert!(err.contains("only 5 are"), "{err}");
    }

    #[test]
    fn surviving_any_jurisdiction_needs_at_most_m_per_jurisdiction() {
        let mut p = Policy::new(4, 2).unwrap();
        p.rules.max_per_jurisdiction = Some(2);
        let providers = six();
        for id in 0..200u32 {
            let pl = p.place(&providers, &id.to_le_bytes()).unwrap();
            let r = p.report(&providers, &pl);
            assert!(
                r.survives_any_jurisdiction_loss && r.no_jurisdiction_holds_k,
                "{r:?}"
            );
        }
    }

    #[test]
    fn exhaustive_search_finds_what_greedy_would_miss() {
        // Greedy by rank could take both "a" providers of operator X in jurisdictions that
        // block the rest; the search must still find the unique feasible set.
        let providers = vec![
            provider("p1", "x", "FR"),
            provider("p2", "x", "DE"),
            provider("p3", "y", "FR"),
            provider("p4", "z", "DE"),
        ];
        let mut p = Policy::new(1, 1).unwrap();
        p.rules.max_per_operator = Some(1);
        p.rules.max_per_jurisdiction = Some(1);
        for id in 0..100u32 {
            let pl = p.place(&providers, &id.to_le_bytes()).unwrap();
            let r = p.report(&providers, &pl);
            assert!(
                r.per_operator.values().all(|&c| c <= 1)
                    && r.per_jurisdiction.values().all(|&c| c <= 1)
            );
        }
    }

    #[test]
    fn draining_and_excluded_providers_get_no_new_shards_and_spares_keep_the_rules() {
        let mut providers = six();
        providers.push(provider("se-1", "bahnhof", "SE"));
        providers.push(provider("pl-1", "cyfrowy", "PL"));
        providers.push(provider("at-1", "self", "AT"));
        providers[0].state = ProviderState::Draining;
        let mut p = Policy::new(4, 2).unwrap();
        p.rules.max_per_operator = Some(1);
        let mut spares = 0;
        for id in 0..100u32 {
            let id = id.to_le_bytes();
            let pl = p.place_excluding(&providers, &id, &["de-1"]).unwrap();
            assert!(!pl.providers.iter().any(|n| n == "fr-1" || n == "de-1"));
            // Shard 0's provider fails mid-write: the spare is new and keeps one per operator.
            let spare = p.spare(&providers, &id, &pl, 0);
            if let Some(s) = &spare {
                assert!(!pl.providers.contains(s));
                let mut with = pl.clone();
                with.providers[0] = s.clone();
                assert!(
                    p.report(&providers, &with)
                        .per_operator
                        .values()
                        .all(|&c| c == 1)
                );
                spares += 1;
            }
        }
        assert!(spares > 0, "some placements have a spare");
    }

    proptest! {
        #[test]
        fn placement_is_deterministic_distinct_and_within_the_rules(
            labels in prop::collection::vec((0u8..4, 0u8..4, 1u32..4), 1..14),
            k in 1usize..5,
            m in 0usize..4,
            cap_op in prop::option::of(1usize..4),
            cap_j in prop::option::of(1usize..4),
            id in any::<u64>(),
        ) {
            let providers: Vec<ProviderInfo> = labels.iter().enumerate().map(|(i, (o, j, w))| ProviderInfo {
                name: format!("p{i}"), operator: format!("op{o}"), jurisdiction: format!("J{j}"),
                weight: *w, state: ProviderState::Active,
            }).collect();
            let Ok(mut p) = Policy::new(k, m) else { return Ok(()) };
            p.rules.max_per_operator = cap_op;
            p.rules.max_per_jurisdiction = cap_j;
            match p.place(&providers, &id.to_le_bytes()) {
                Ok(pl) => {
                    prop_assert_eq!(pl.providers.len(), k + m);
                    prop_assert_eq!(pl.providers.iter().collect::<BTreeSet<_>>().len(), k + m);
                    let r = p.report(&providers, &pl);
                    prop_assert!(r.per_operator.values().all(|&c| cap_op.is_none_or(|cap| c <= cap)));
                    prop_assert!(r.per_jurisdiction.values().all(|&c| cap_j.is_none_or(|cap| c <= cap)));
                    prop_assert_eq!(p.place(&providers, &id.to_le_bytes()).unwrap(), pl);
                }
                Err(_) => {
                    // Impossible must really be impossible: brute force over all subsets.
                    let n = providers.len();
                    let feasible = (0u32..1 << n).any(|mask| {
                        if mask.count_ones() as usize != k + m { return false; }
                        let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
                        let mut js: BTreeMap<&str, usize> = BTreeMap::new();
                        for (i, p) in providers.iter().enumerate() {
                            if mask >> i & 1 == 1 {
                                *ops.entry(&p.operator).or_default() += 1;
                                *js.entry(&p.jurisdiction).or_default() += 1;
                            }
                        }
                        ops.values().all(|&c| cap_op.is_none_or(|cap| c <= cap))
                            && js.values().all(|&c| cap_j.is_none_or(|cap| c <= cap))
                    });
                    prop_assert!(!feasible, "placement said impossible but a feasible set exists");
                }
            }
        }
    }

    #[test]
    fn load_spreads_by_weight_and_adding_a_provider_moves_few_shards() {
        let mut providers: Vec<ProviderInfo> = (0..8)
            .map(|i| provider(&format!("p{i}"), &format!("o{i}"), "FR"))
            .collect();
        providers[0].weight = 3;
        let p = Policy::new(2, 1).unwrap();
        let objects = 6_000u32;
        let place_all = |providers: &[ProviderInfo]| -> Vec<Placement> {
            (0..objects)
                .map(|i| p.place(providers, &i.to_le_bytes()).unwrap())
                .collect()
        };
        let before = place_all(&providers);
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for pl in &before {
            for n in &pl.providers {
                *count.entry(n.clone()).or_default() += 1;
            }
        }
        let heavy = count["p0"] as f64;
        let light: f64 = (1..8).map(|i| count[&format!("p{i}")] as f64).sum::<f64>() / 7.0;
        assert!(
            heavy > 1.5 * light,
            "weight 3 gets clearly more shards: {heavy} vs {light}"
        );
        providers.push(provider("p8", "o8", "FR"));
        let after = place_all(&providers);
        let moved = before
            .iter()
            .zip(&after)
            .map(|(a, b)| {
                a.providers
                    .iter()
                    .filter(|n| !b.providers.contains(n))
                    .count()
            })
            .sum::<usize>();
        let total = objects as usize * 3;
        assert!(
            moved > 0 && moved < total / 4,
            "adding 1 of 9 providers moved {moved} of {total} shards"
        );
    }

    #[test]
    fn preferred_providers_are_chosen_first_within_the_rules() {
        let mut p = Policy::new(3, 2).unwrap();
        p.write_quorum = 4;
        let avoid = ["fr-2", "de-1"];
        for id in 0..50u32 {
            let id = id.to_be_bytes();
            let placed = p
                .place_preferring(&six(), &id, |q| !avoid.contains(&q.name.as_str()))
                .unwrap();
            let avoided = placed
                .providers
                .iter()
                .filter(|n| avoid.contains(&n.as_str()))
                .count();
            assert_eq!(avoided, 1, "5 shards, 4 preferred providers: {placed:?}");
        }
        // The rules still hold: at most 2 per jurisdiction, and both DE providers avoided,
        // means FR, NL, CH and one DE provider.
        p.rules.max_per_jurisdiction = Some(2);
        let placed = p
            .place_preferring(&six(), b"x", |q| q.jurisdiction != "DE")
            .unwrap();
        let de = placed
            .providers
            .iter()
            .filter(|n| n.starts_with("de-"))
            .count();
        assert_eq!(de, 1, "{placed:?}");
    }
}
