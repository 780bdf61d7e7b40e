//! Model-based test: seeded random operation sequences applied both to the store and to a
//! `BTreeMap` reference; every result and the final state must agree.

use std::collections::BTreeMap;
use std::sync::Arc;

use archipel_meta::*;

use crate::{etag, key, new_bucket};

/// Key pieces chosen so that prefixes, multi-byte characters and delimiters collide often.
const PIECES: [&str; 7] = ["a", "b", "/", "é", "ab", "-", "~"];
const DELIMITERS: [Option<&str>; 5] = [None, Some("/"), Some("-"), Some("ab"), Some("é")];

#[derive(Default)]
struct Model {
    objects: BTreeMap<String, NewVersion>,
}

impl Model {
    fn live(&self, k: &str) -> Option<&NewVersion> {
        self.objects.get(k).filter(|v| !v.delete_marker)
    }

    fn commit(
        &mut self,
        b: &BucketName,
        k: &str,
        v: &NewVersion,
        cond: &CommitCondition,
    ) -> Result<Superseded> {
        let live = self.live(k).cloned();
        match (cond, &live) {
            (CommitCondition::IfAbsent, Some(cur)) => {
                return Err(MetaError::AlreadyExists {
                    bucket: b.clone(),
                    key: key(k),
                    current_etag: cur.etag.clone(),
                });
            }
            (CommitCondition::IfExists, None) => {
                return Err(MetaError::NoLiveVersion {
                    bucket: b.clone(),
                    key: key(k),
                    delete_marker: self.objects.contains_key(k),
                });
            }
            (CommitCondition::IfMatch(e), cur) if cur.as_ref().map(|c| &c.etag) != Some(e) => {
                return Err(MetaError::EtagMismatch {
                    bucket: b.clone(),
                    key: key(k),
                    expected: e.clone(),
                    current: cur.as_ref().map(|c| c.etag.clone()),
                });
            }
            _ => {}
        }
        let previous = self.objects.insert(k.to_string(), v.clone());
        Ok(Superseded {
            previous: previous.map(|version| ObjectVersion {
                bucket: b.clone(),
                key: key(k),
                version,
            }),
        })
    }

    fn delete(&mut self, b: &BucketName, k: &str, cond: &DeleteCondition) -> Result<Superseded> {
        let cur = self.live(k).map(|v| v.etag.clone());
        match cond {
            DeleteCondition::Unconditional => {}
            DeleteCondition::IfExists if cur.is_none() => {
                return Err(MetaError::NoLiveVersion {
                    bucket: b.clone(),
                    key: key(k),
                    delete_marker: self.objects.contains_key(k),
                });
            }
            DeleteCondition::IfExists => {}
            DeleteCondition::IfMatch(e) if cur.as_ref() != Some(e) => {
                return Err(MetaError::EtagMismatch {
                    bucket: b.clone(),
                    key: key(k),
                    expected: e.clone(),
                    current: cur,
                });
            }
            DeleteCondition::IfMatch(_) => {}
        }
        let previous = self.objects.remove(k);
        Ok(Superseded {
            previous: previous.map(|version| ObjectVersion {
                bucket: b.clone(),
                key: key(k),
                version,
            }),
        })
    }

    /// The listing, straight from its definition in `ListQuery`'s docs.
    fn list(&self, q: &ListQuery) -> ObjectPage {
        let delim = q.delimiter.as_deref().filter(|d| !d.is_empty());
        let mut entries: Vec<(String, Option<ObjectSummary>)> = Vec::new();
        for (k, v) in self
            .objects
            .iter()
            .filter(|(k, v)| !v.delete_marker && k.starts_with(&q.prefix))
        {
            let rest = &k[q.prefix.len()..];
            let entry = match delim.and_then(|d| rest.find(d).map(|i| (i, d))) {
                Some((i, d)) => (k[..q.prefix.len() + i + d.len()].to_string(), None),
                None => (
                    k.clone(),
                    Some(ObjectSummary {
                        key: key(k),
                        version_id: v.version_id.clone(),
                        size: v.size,
                        etag: v.etag.clone(),
                        last_modified: v.last_modified,
                    }),
                ),
            };
            if entries.last().map(|e| &e.0) != Some(&entry.0) {
                entries.push(entry);
            }
        }
        entries.retain(|e| {
            q.start_after
                .as_ref()
                .is_none_or(|s| e.0.as_str() > s.as_str())
        });
        let max = q.max_keys.min(MAX_PAGE);
        let is_truncated = max > 0 && entries.len() > max;
        entries.truncate(max);
        let mut page = ObjectPage {
            is_truncated,
            ..ObjectPage::default()
        };
        if is_truncated {
            page.next_start_after = entries.last().map(|e| e.0.clone());
        }
        for (name, summary) in entries {
            match summary {
                Some(s) => page.objects.push(s),
                None => page.common_prefixes.push(name),
            }
        }
        page
    }
}

fn random_key(rng: &mut fastrand::Rng) -> String {
    (0..rng.usize(1..=4))
        .map(|_| PIECES[rng.usize(..PIECES.len())])
        .collect()
}

fn random_version(rng: &mut fastrand::Rng, n: usize) -> NewVersion {
    let id = format!("v{n}");
    let mut v = if rng.u8(..10) == 0 {
        crate::delete_marker(&id)
    } else {
        crate::version(&id)
    };
    // A few etags repeat, so that if-match sometimes matches.
    v.etag = etag(&format!("e{}", rng.u8(..6)));
    v
}

async fn run_seed(store: &Arc<dyn MetaStore>, seed: u64, ops: usize) {
    let bucket_name = format!("model-{seed}");
    store
        .create_bucket(&new_bucket(&bucket_name))
        .await
        .unwrap();
    let b = BucketName::s3(bucket_name).unwrap();
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut model = Model::default();
    for n in 0..ops {
        let k = random_key(&mut rng);
        let context = format!("seed {seed} op {n} key {k:?}");
        match rng.u8(..10) {
            0..=3 => {
                let v = random_version(&mut rng, n);
                let cond = match rng.u8(..4) {
                    0 => CommitCondition::Unconditional,
                    1 => CommitCondition::IfAbsent,
                    2 => CommitCondition::IfExists,
                    _ => CommitCondition::IfMatch(etag(&format!("e{}", rng.u8(..6)))),
                };
                let got = store.commit(&b, &key(&k), &v, &cond).await;
                assert_eq!(
                    got,
                    model.commit(&b, &k, &v, &cond),
                    "{context}: commit {cond:?}"
                );
            }
            4 => {
                let cond = match rng.u8(..3) {
                    0 => DeleteCondition::Unconditional,
                    1 => DeleteCondition::IfExists,
                    _ => DeleteCondition::IfMatch(etag(&format!("e{}", rng.u8(..6)))),
                };
                let got = store.delete(&b, &key(&k), &cond).await;
                assert_eq!(
                    got,
                    model.delete(&b, &k, &cond),
                    "{context}: delete {cond:?}"
                );
            }
            5 => {
                let got = store.get(&b, &key(&k)).await.unwrap().map(|o| o.version);
                assert_eq!(got.as_ref(), model.objects.get(&k), "{context}: get");
            }
            _ => {
                let prefix: String = (0..rng.usize(0..=2))
                    .map(|_| PIECES[rng.usize(..PIECES.len())])
                    .collect();
                let mut query = ListQuery {
                    prefix,
                    delimiter: DELIMITERS[rng.usize(..DELIMITERS.len())].map(Into::into),
                    start_after: rng.bool().then(|| random_key(&mut rng)),
                    max_keys: rng.usize(0..=7),
                };
                // Follow the pages to the end: each must match the model's.
                for _ in 0..200 {
                    let got = store.list(&b, &query).await.unwrap();
                    assert_eq!(got, model.list(&query), "{context}: list {query:?}");
                    match got.next_start_after {
                        Some(next) => query.start_after = Some(next),
                        None => break,
                    }
                }
            }
        }
    }
    // Final state: every key the model holds reads back the same, and nothing else lists.
    for (k, v) in &model.objects {
        assert_eq!(
            store
                .get(&b, &key(k))
                .await
                .unwrap()
                .map(|o| o.version)
                .as_ref(),
            Some(v),
            "seed {seed}: final {k:?}"
        );
    }
    let listed: Vec<String> = store
        .list_all(&b, "")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key.to_string())
        .collect();
    let expected: Vec<String> = model
        .objects
        .iter()
        .filter(|(_, v)| !v.delete_marker)
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(listed, expected, "seed {seed}: final listing");
}

pub(crate) async fn random_operations_match_a_btreemap_model(store: Arc<dyn MetaStore>) {
    for seed in [1, 2, 3] {
        run_seed(&store, seed, 400).await;
    }
}
