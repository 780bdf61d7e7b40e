//! The control plane on a real vault (six directory providers, the embedded store): the
//! registry seeds from the configuration, follows edits of records it seeded, keeps providers
//! added through the API and reports every difference; bucket settings of older builds move
//! into the bucket records; a scrub job runs to its end and reports what it verified.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use archipel_engine::{Body, PutOptions};
use archipel_meta::CheckpointName;
use archipel_vault::{JobKind, JobParams, JobState, ProviderSpec, Vault, VaultSpec};
use bytes::Bytes;

fn spec(dir: &std::path::Path) -> VaultSpec {
    VaultSpec::zero_config(&dir.join("data")).unwrap()
}

async fn put(v: &Vault, bucket: &str, key: &str, len: usize) {
    let body: Body = Box::pin(futures::stream::once(async move {
        Ok::<_, std::io::Error>(Bytes::from(vec![7u8; len]))
    }));
    v.engine()
        .put_object(bucket, key, body, PutOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_follows_the_configuration_it_seeded_and_keeps_what_the_api_added() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(tmp.path());
    let v = Vault::open(&s, true).await.unwrap();
    assert!(v.registry_notes().is_empty(), "{:?}", v.registry_notes());
    let extra = tmp.path().join("extra");
    std::fs::create_dir(&extra).unwrap();
    let added = v
        .add_provider(ProviderSpec::dir("p7", extra.clone(), None))
        .await
        .unwrap();
    assert_eq!(added.provider.state, "active");
    assert!(v.engine().providers().iter().any(|p| p.name == "p7"));
    assert!(matches!(
        v.add_provider(ProviderSpec::dir("p7", extra.clone(), None))
            .await
            .unwrap_err(),
        archipel_vault::VaultError::ProviderExists { .. }
    ));
    v.close().await;

    // Reopened from the same configuration: p7 is used (and reported), p1's moved directory
    // is followed (and reported).
    let mut s2 = s.clone();
    let moved = tmp.path().join("p1-moved");
    std::fs::create_dir(&moved).unwrap();
    s2.providers[0] = ProviderSpec::dir("p1", moved.clone(), None);
    let v = Vault::open(&s2, true).await.unwrap();
    let notes = v.registry_notes();
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("p7") && n.contains("not in the configuration"))
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("p1") && n.contains("follows it"))
    );
    let names: Vec<String> = v
        .providers()
        .iter()
        .map(|b| b.spec.info.name.clone())
        .collect();
    assert_eq!(names.len(), 7, "{names:?}");
    let reg = v.list_registry().await.unwrap();
    let p1 = reg.iter().find(|e| e.name == "p1").unwrap();
    assert_eq!(p1.location, moved.display().to_string());
    assert_eq!(p1.generation, 2);
    // A state change through the API is kept, and retiring takes the provider out.
    let e = v
        .update_provider("p7", Some(archipel_meta::ProviderState::Draining), None)
        .await
        .unwrap();
    assert_eq!(e.state, "draining");
    assert_eq!(
        v.engine()
            .providers()
            .iter()
            .find(|p| p.name == "p7")
            .unwrap()
            .state,
        archipel_meta::ProviderState::Draining
    );
    v.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_settings_of_older_builds_move_into_the_bucket_record() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(tmp.path());
    let v = Vault::open(&s, false).await.unwrap();
    v.engine()
        .create_bucket("site", "root", None)
        .await
        .unwrap();
    let meta = v.meta();
    let cp = |n: &str| CheckpointName::new(n).unwrap();
    meta.put_checkpoint(
        &cp("bucket-cors/site"),
        br#"[{"origins":["*"],"methods":["GET"],"headers":[],"expose":[],"max_age":60,"id":null}]"#,
    )
    .await
    .unwrap();
    meta.put_checkpoint(&cp("bucket-public/site"), b"read")
        .await
        .unwrap();
    meta.put_checkpoint(&cp("bucket-public/gone"), b"read")
        .await
        .unwrap();

    v.close().await;

    let v = Vault::open(&s, false).await.unwrap();
    let settings = v.engine().bucket_settings("site").await.unwrap();
    assert!(settings.public_read);
    let cors = settings.cors.unwrap();
    assert_eq!(cors[0].origins, ["*"]);
    assert_eq!(cors[0].max_age, Some(60));
    for n in [
        "bucket-cors/site",
        "bucket-public/site",
        "bucket-public/gone",
    ] {
        assert_eq!(v.meta().get_checkpoint(&cp(n)).await.unwrap(), None, "{n}");
    }
    v.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrub_job_verifies_every_shard_and_can_be_cancelled() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(tmp.path());
    let v = Vault::open(&s, false).await.unwrap();
    v.engine()
        .create_bucket("data", "root", None)
        .await
        .unwrap();
    for i in 0..12 {
        put(&v, "data", &format!("k{i:02}"), 100_000 + i).await;
    }
    let j = v
        .start_job(JobKind::Scrub, JobParams::default())
        .await
        .unwrap();
    let done = loop {
        let r = v.job(&j.id).await.unwrap();
        if r.state.is_final() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done.state, JobState::Done, "{done:?}");
    assert_eq!(done.progress.items_done, 12);
    assert_eq!(done.progress.items_total, Some(12));
    assert_eq!(done.result.shards_checked, 12 * 6);
    assert_eq!(done.result.bad_shards, 0);
    assert_eq!(done.runs.len(), 1);

    // Slowed to 50 KiB/s, cancelled: it stops before the end and says so.
    let params = JobParams {
        bucket: Some("data".into()),
        rate_bytes_per_s: Some(50 * 1024),
        ..JobParams::default()
    };
    let j = v.start_job(JobKind::Scrub, params).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    v.cancel_job(&j.id).await.unwrap();
    let stopped = loop {
        let r = v.job(&j.id).await.unwrap();
        if r.state.is_final() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stopped.state, JobState::Cancelled, "{stopped:?}");
    assert!(stopped.progress.items_done < 12, "{stopped:?}");
    assert_eq!(v.list_jobs().await.unwrap().len(), 2);
    assert!(matches!(
        v.start_job(
            JobKind::Scrub,
            JobParams {
                bucket: Some("nope".into()),
                ..JobParams::default()
            }
        )
        .await
        .unwrap_err(),
        archipel_vault::VaultError::Engine(archipel_engine::EngineError::NoSuchBucket { .. })
    ));
    v.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_in_many_small_passes_equals_status_in_one() {
    use archipel_provider::ProviderExt;
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(tmp.path());
    let v = Vault::open(&s, false).await.unwrap();
    v.engine().create_bucket("aaa", "root", None).await.unwrap();
    v.engine().create_bucket("bbb", "root", None).await.unwrap();
    for i in 0..25 {
        put(
            &v,
            if i % 2 == 0 { "aaa" } else { "bbb" },
            &format!("k{i}"),
            1000 + i,
        )
        .await;
    }
    put(&v, "aaa", "empty", 0).await;
    // One shard lost on p1, and one stray blob there.
    let p1 = v.providers()[0].slot.provider.clone();
    let blobs = p1.list_all("v1/").await.unwrap();
    p1.delete(&blobs[0].name).await.unwrap();
    let stray = archipel_provider::BlobName::new("v1/00/stray.0").unwrap();
    p1.put_bytes(&stray, b"not a shard".to_vec()).await.unwrap();

    let one = archipel_vault::status::collect(&v).await.unwrap();
    assert_eq!(one.objects, 26);
    assert_eq!(one.redundancy.degraded, 1, "{:?}", one.redundancy);
    assert_eq!(one.redundancy.unreadable, 0);
    assert_eq!(one.redundancy.min_tolerated_losses, Some(1));
    assert_eq!(one.providers[0].unreferenced_shards, 1);
    let shards: u64 = one.providers.iter().map(|p| p.shards).sum();
    assert_eq!(shards, 26 * 6 - 1, "the empty object has its shards too");
    // Budget 1: one partition per pass, 256 passes over the metadata; the same answer.
    let many = archipel_vault::status::collect_with_budget(&v, 1)
        .await
        .unwrap();
    let strip = |s: &archipel_vault::Status| {
        let mut j = serde_json::to_value(s).unwrap();
        for p in j["providers"].as_array_mut().unwrap() {
            p["list_ms"] = serde_json::Value::Null;
        }
        j
    };
    assert_eq!(strip(&one), strip(&many));
    v.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_runs_only_where_its_lease_is_held() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(tmp.path());
    let v = Vault::open(&s, false).await.unwrap();
    let schedule = archipel_vault::services::Schedule {
        gc_every: Duration::from_secs(30),
        orphans_every: Duration::from_secs(3600),
        orphan_min_age: Duration::from_secs(3600),
        uploads_every: Duration::from_secs(3600),
        upload_max_age: Duration::from_secs(7 * 86_400),
        repair_every: Duration::from_secs(3600),
        inventory_every: Duration::from_secs(3600),
        repair: archipel_engine::RepairOptions::default(),
        scrub_interval: Duration::from_secs(7 * 86_400),
        scrub_rate: None,
        temp_min_age: Duration::from_secs(7 * 3600),
    };
    // Another gateway holds the GC for the next minute: this one does not run it.
    let lease = CheckpointName::new("service:gc").unwrap();
    let now = archipel_meta::UnixMillis::now();
    assert!(
        v.meta()
            .take_lease(
                &lease,
                "other-gateway",
                now,
                archipel_meta::UnixMillis(now.0 + 60_000)
            )
            .await
            .unwrap()
    );
    assert!(!v.run_service_round("gc", &schedule).await.unwrap());
    assert!(v.list_services().await.unwrap().is_empty());
    // Given up, it runs here, and its round is recorded.
    assert!(
        v.meta()
            .release_lease(&lease, "other-gateway")
            .await
            .unwrap()
    );
    assert!(v.run_service_round("gc", &schedule).await.unwrap());
    assert!(
        v.run_service_round("upload-expiry", &schedule)
            .await
            .unwrap()
    );
    let services = v.list_services().await.unwrap();
    let gc = services.iter().find(|r| r.name == "gc").unwrap();
    assert!(
        gc.last_ok && gc.runs == 1 && gc.owner == v.jobs().owner(),
        "{gc:?}"
    );
    assert!(
        services
            .iter()
            .any(|r| r.name == "upload-expiry" && r.last_ok)
    );
    // The other gateway cannot take it while this one's round and wait last.
    let now = archipel_meta::UnixMillis::now();
    assert!(
        !v.meta()
            .take_lease(
                &lease,
                "other-gateway",
                now,
                archipel_meta::UnixMillis(now.0 + 1)
            )
            .await
            .unwrap()
    );
    v.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scrub_service_starts_a_full_scrub_when_one_is_due_and_reports_per_provider() {
    let tmp = tempfile::tempdir().unwrap();
    let s = spec(tmp.path());
    let v = Vault::open(&s, false).await.unwrap();
    v.engine()
        .create_bucket("data", "root", None)
        .await
        .unwrap();
    for i in 0..4 {
        put(&v, "data", &format!("k{i}"), 50_000).await;
    }
    let wait_done = async |v: &Vault| loop {
        let jobs = v.list_jobs().await.unwrap();
        if jobs.iter().all(|j| j.state.is_final()) {
            break jobs;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let hour = Duration::from_secs(3600);
    // Never scrubbed: the schedule starts now, and its first scrub is one interval away…
    let said = v.schedule_scrub(hour, None).await.unwrap();
    assert!(said.starts_with("no scrub yet"), "{said}");
    let said = v.schedule_scrub(hour, None).await.unwrap();
    assert!(
        said.starts_with("last scrub (or the schedule's start)"),
        "{said}"
    );
    assert!(v.list_jobs().await.unwrap().is_empty());
    // …or sooner with a shorter one.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let said = v
        .schedule_scrub(Duration::from_millis(10), None)
        .await
        .unwrap();
    assert!(said.starts_with("started scrub"), "{said}");
    let jobs = wait_done(&v).await;
    assert_eq!(jobs.len(), 1);
    let r = &jobs[0].result;
    assert_eq!(r.per_provider.len(), 6, "{r:?}");
    assert!(
        r.per_provider
            .values()
            .all(|p| p.checked == 4 && p.bad == 0),
        "{r:?}"
    );
    // Not again within the interval…
    let said = v.schedule_scrub(hour, None).await.unwrap();
    assert!(said.starts_with("last scrub (or"), "{said}");
    assert_eq!(v.list_jobs().await.unwrap().len(), 1);
    // …and again once it has passed.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let said = v
        .schedule_scrub(Duration::from_millis(10), None)
        .await
        .unwrap();
    assert!(said.starts_with("started scrub"), "{said}");
    assert_eq!(wait_done(&v).await.len(), 2);
    let status = archipel_vault::status::collect(&v).await.unwrap();
    let last = status.last_scrub.expect("the last scrub is reported");
    assert_eq!((last.state.as_str(), last.objects), ("done", 4));
    assert_eq!(last.per_provider.len(), 6);
    v.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audits_stay_within_the_daily_budget_and_keep_dated_evidence() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(tmp.path());
    // 20 objects of 40,000 bytes, 4 + 2: each chunk read is 10,000 bytes and a 16-byte tag.
    let chunk = 10_016u64;
    s.audit.bytes_per_day = 7 * chunk + 100;
    s.audit.every = Duration::from_millis(10);
    let v = Vault::open(&s, false).await.unwrap();
    v.engine()
        .create_bucket("data", "root", None)
        .await
        .unwrap();
    for i in 0..20 {
        put(&v, "data", &format!("k{i}"), 40_000).await;
    }
    let p = v.engine().providers()[0].name.clone();
    let run = async |budget: Option<u64>| {
        let j = v.audit_providers(Some(&p), budget, None).await.unwrap();
        loop {
            let r = v.job(&j.id).await.unwrap();
            if r.state.is_final() {
                assert_eq!(r.state, JobState::Done, "{r:?}");
                break r.audit[0].clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // The day's budget: 5 chunks now, the 2 left later, then nothing.
    let a = run(Some(5 * chunk)).await;
    assert_eq!((a.population, a.samples, a.verified), (20, 5, 5), "{a:?}");
    assert_eq!(a.bytes_read, 5 * chunk);
    assert_eq!(
        a.verdict, "weak",
        "5 clean samples do not show 99.9 %: {a:?}"
    );
    assert!(
        a.present_at_least > 0.0 && a.present_at_least < 0.999,
        "{a:?}"
    );
    let b = run(None).await;
    assert_eq!(b.budget_bytes, 2 * chunk + 100, "{b:?}");
    assert_eq!((b.samples, b.bytes_read), (2, 2 * chunk), "{b:?}");
    let c = run(None).await;
    assert_eq!(
        (c.budget_bytes, c.samples, c.bytes_read),
        (100, 0, 0),
        "{c:?}"
    );
    assert_eq!(c.verdict, "inconclusive", "{c:?}");
    assert!(
        c.note.as_deref().unwrap().contains("fits no sampled chunk"),
        "{c:?}"
    );
    // An explicit budget is the operator's call: every shard, the fraction exact.
    let d = run(Some(1 << 20)).await;
    assert!(d.exhaustive && d.target_met, "{d:?}");
    assert_eq!((d.verdict.as_str(), d.present_at_least), ("pass", 1.0));
    // Dated evidence, newest first, each with the digest of its content.
    let kept = v.audits(Some(&p), 10).await.unwrap();
    assert_eq!(kept.len(), 4);
    assert_eq!(kept[0], d);
    assert_eq!(kept[3], a);
    for r in &kept {
        assert_eq!(
            r.digest.as_deref(),
            Some(r.compute_digest().unwrap().as_str())
        );
    }
    // The schedule (the last audit ended more than its 10 ms ago) audits every provider,
    // within what is left of each one's day; off with a daily budget of 0.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let said = v.schedule_audit().await.unwrap();
    assert!(said.starts_with("started audit"), "{said}");
    let id = said.rsplit(' ').next().unwrap().to_string();
    let all = loop {
        let r = v.job(&id).await.unwrap();
        if r.state.is_final() {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(all.audit.len(), 6, "{all:?}");
    assert!(all.audit.iter().all(|a| a.verdict != "fail"), "{all:?}");
    let again = v.schedule_audit().await.unwrap();
    assert!(
        again.starts_with("last audit") || again.starts_with("started"),
        "{again}"
    );
    v.close().await;
    s.audit.bytes_per_day = 0;
    let v = Vault::open(&s, false).await.unwrap();
    let said = v.schedule_audit().await.unwrap();
    assert!(said.contains("off"), "{said}");
    v.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_created_without_a_policy_get_the_configured_one() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(tmp.path());
    let mut p = archipel_engine::Policy::new(3, 2).unwrap();
    p.rules.max_per_operator = Some(5);
    s.policy = Some(p.clone());
    let v = Vault::open(&s, false).await.unwrap();
    // Through the vault (admin API, CLI) and through the engine (S3 CreateBucket) alike.
    assert_eq!(v.create_bucket("aaa", None).await.unwrap(), p);
    v.engine().create_bucket("bbb", "root", None).await.unwrap();
    assert_eq!(v.engine().bucket_policy("bbb").await.unwrap(), p);
    v.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_compacts_the_journal_and_recovery_from_it_is_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = spec(&tmp.path().join("live"));
    s.key.file = Some(tmp.path().join("vault.key"));
    let v = Vault::open(&s, true).await.unwrap();
    let engine = v.engine().clone();
    engine.create_bucket("data", "root", None).await.unwrap();
    for i in 0..120 {
        put(&v, "data", &format!("k{i:03}"), 100 + i).await;
    }
    for i in (0..120).step_by(10) {
        engine
            .delete_object(
                "data",
                &format!("k{i:03}"),
                &archipel_meta::DeleteCondition::Unconditional,
            )
            .await
            .unwrap();
    }
    let tail = engine.journal_tail(None).await;
    assert!(tail >= 130, "{tail} journal segments");
    // Debris under the journal's prefix (no metadata name of this vault's): compaction
    // removes it.
    let junk = archipel_provider::BlobName::new("j1/00112233445566778899aabbccddeeff.0").unwrap();
    let p1 = engine.provider("p1").unwrap();
    archipel_provider::ProviderExt::put_bytes(p1.as_ref(), &junk, b"not a segment".to_vec())
        .await
        .unwrap();
    // The first snapshot is due as soon as there is a journal.
    let first = v
        .snapshot_journal(false)
        .await
        .unwrap()
        .expect("the first is due");
    assert!(first.records > 108, "{first:?}");
    assert!(first.segments_removed >= tail, "{first:?}");
    assert!(first.failed.is_empty(), "{first:?}");
    assert_eq!(first.foreign_removed, 1, "{first:?}");
    assert!(
        archipel_provider::ProviderExt::get_bytes(p1.as_ref(), &junk, None)
            .await
            .is_err()
    );
    assert_eq!(v.last_snapshot().await.unwrap().as_ref(), Some(&first));
    assert!(v.snapshot_journal(false).await.unwrap().is_none());
    let left = engine.journal_tail(None).await;
    assert!(left < 5, "{left} segments left after compaction");

    // Mutations after the snapshot: an overwrite, a delete, a new object, a new bucket.
    put(&v, "data", "k001", 7).await;
    engine
        .delete_object(
            "data",
            "k002",
            &archipel_meta::DeleteCondition::Unconditional,
        )
        .await
        .unwrap();
    put(&v, "data", "new", 3000).await;
    engine.create_bucket("more", "root", None).await.unwrap();
    put(&v, "more", "x", 1).await;
    // A second snapshot replaces the first.
    let second = v.snapshot_journal(true).await.unwrap().unwrap();
    assert!(second.snapshot_parts_removed >= 2, "{second:?}");
    engine
        .delete_object(
            "data",
            "k003",
            &archipel_meta::DeleteCondition::Unconditional,
        )
        .await
        .unwrap();
    put(&v, "more", "y", 10).await;
    drop((engine, p1));
    v.close().await;

    // The drill rebuilds from the second snapshot and the short tail after it, and finds
    // the rebuilt store identical to the live one.
    let report = archipel_vault::recover::check(&s, &|_: &'static str, _, _| {})
        .await
        .unwrap();
    let check = report.check.as_ref().unwrap();
    assert_eq!(check.difference_count, 0, "{:?}", check.differences);
    assert!(check.compared > 100, "{check:?}");
    assert_eq!(
        report
            .snapshot
            .as_deref()
            .map(|s| s.split(':').next().unwrap().to_string()),
        Some(format!("{}/{}", second.run, second.number)),
        "{report:?}"
    );
    assert_eq!(report.segments_superseded, 0, "{report:?}");
    assert!(report.segments < 10, "{report:?}");
    // 120 written, 12 deleted, then k002 and k003 deleted and `new` added; `more` holds 2.
    assert_eq!(report.objects, 120 - 12 - 2 + 1 + 2, "{report:?}");
    assert!(
        report.unreadable.is_empty() && report.gaps.is_empty(),
        "{report:?}"
    );
}
