//! Recovery from the key and the providers alone, against real servers: six `rclone serve
//! webdav` providers behind a running gateway hold buckets with their own policies, CORS and
//! public-read settings, two access keys with grants, objects of every size class (empty to
//! multipart), overwrites, deletes and an upload in progress — the first of them in a snapshot
//! taken through the gateway (`archipel snapshot`, which compacts the journal behind it), the
//! rest in the journal after it. The gateway is stopped and its
//! data directory deleted (the key file lives beside the configuration); two of the six
//! providers are killed; `archipel recover` is SIGKILLed half-way, run again (it resumes),
//! and the recovered vault serves every bucket, setting, grant, version and byte as before —
//! deleted objects stay deleted, both access keys work — while the two providers are still
//! down. The recovery drill (`recover --check`) then finds no difference with the live store.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::{Aws, Server, archipel, pattern, run};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn cli(dir: &Path, config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = run(archipel()
        .current_dir(dir)
        .args(args)
        .arg("--config")
        .arg(config));
    assert!(ok, "archipel {args:?} failed:\n{out}\n{err}");
    out
}

/// What a client can see of the vault: per bucket its CORS, ACL and every object's size,
/// ETag and bytes' digest; the uploads in progress; the buckets' policies.
fn observe(aws: &Aws, dir: &Path, config: &Path, buckets: &[&str]) -> BTreeMap<String, String> {
    let mut seen = BTreeMap::new();
    let policies = json(&cli(dir, config, &["bucket", "list", "--json"]));
    seen.insert("policies".into(), policies.to_string());
    for b in buckets {
        let listing = aws.ok(&["s3api", "list-objects-v2", "--bucket", b]);
        let listing = json(if listing.trim().is_empty() {
            "{}"
        } else {
            &listing
        });
        // One download of the whole bucket, then every object's bytes by key.
        let out = dir.join("download").join(b);
        let _ = std::fs::remove_dir_all(&out);
        std::fs::create_dir_all(&out).unwrap();
        aws.ok(&["s3", "sync", &format!("s3://{b}"), out.to_str().unwrap()]);
        let mut objects = Vec::new();
        for o in listing["Contents"].as_array().cloned().unwrap_or_default() {
            let key = o["Key"].as_str().unwrap().to_string();
            let bytes = std::fs::read(out.join(&key)).unwrap();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&bytes, &mut h);
            objects.push(format!(
                "{key} {} {} {:016x}",
                o["Size"],
                o["ETag"],
                std::hash::Hasher::finish(&h)
            ));
        }
        seen.insert(format!("{b} objects"), objects.join("\n"));
        let (_, cors, _) = aws.run(&["s3api", "get-bucket-cors", "--bucket", b]);
        seen.insert(format!("{b} cors"), cors);
        let acl = aws.ok(&["s3api", "get-bucket-acl", "--bucket", b]);
        seen.insert(format!("{b} acl"), acl);
        let uploads = aws.ok(&["s3api", "list-multipart-uploads", "--bucket", b]);
        let uploads = json(if uploads.trim().is_empty() {
            "{}"
        } else {
            &uploads
        });
        seen.insert(format!("{b} uploads"), uploads["Uploads"].to_string());
    }
    seen
}

#[test]
fn a_vault_rebuilt_from_the_key_and_the_providers_alone_is_the_same_vault() {
    let Some(aws_bin) = archipel_testkit::require_tool("aws", "the recovery test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let Some((mut davs, config, port)) =
        crate::harness::six_webdav_vault(dir, "[key]\nfile = \"vault.key\"\n")
    else {
        return;
    };
    let server = Server::start_with(
        &["--config".into(), config.display().to_string()],
        dir,
        port,
    );
    let aws = server.aws_root(&aws_bin, dir);
    let root = (server.access_key.clone(), server.secret_key.clone());

    // Buckets: one with the default policy, one 3+2 with CORS and public read, one emptied
    // and deleted.
    aws.ok(&["s3", "mb", "s3://plain"]);
    cli(
        dir,
        &config,
        &["bucket", "create", "photos", "--data", "3", "--parity", "2"],
    );
    aws.ok(&[
        "s3api",
        "put-bucket-cors",
        "--bucket",
        "photos",
        "--cors-configuration",
        r#"{"CORSRules":[{"AllowedMethods":["GET","PUT"],"AllowedOrigins":["https://app.example"],"MaxAgeSeconds":600}]}"#,
    ]);
    aws.ok(&[
        "s3api",
        "put-bucket-acl",
        "--bucket",
        "photos",
        "--acl",
        "public-read",
    ]);
    aws.ok(&["s3", "mb", "s3://scratch"]);

    // Two access keys with grants.
    let k1 = json(&cli(
        dir,
        &config,
        &[
            "key", "create", "--owner", "app", "--bucket", "photos", "--read", "--write", "--json",
        ],
    ));
    let k2 = json(&cli(
        dir,
        &config,
        &[
            "key", "create", "--owner", "auditor", "--bucket", "plain", "--read", "--json",
        ],
    ));

    // Objects of every size class, a multipart one, overwrites and deletes.
    let files = dir.join("files");
    std::fs::create_dir_all(&files).unwrap();
    for (name, len) in [
        ("empty", 0usize),
        ("one", 1),
        ("page", 4096),
        ("medium", 300_000),
        ("large", 5 << 20),
        ("multi", 20 << 20),
    ] {
        let p = files.join(name);
        std::fs::write(&p, pattern(len as u64 + 7, len)).unwrap();
        aws.ok(&[
            "s3",
            "cp",
            p.to_str().unwrap(),
            &format!("s3://photos/{name}"),
        ]);
        aws.ok(&[
            "s3",
            "cp",
            p.to_str().unwrap(),
            &format!("s3://plain/{name}"),
        ]);
    }
    // A snapshot through the gateway: what was written so far is in it, the rest of the test
    // in the journal after it (a tail the recovery replays over the snapshot).
    let snap = json(&cli(dir, &config, &["snapshot", "--json"]));
    assert!(snap["records"].as_u64().unwrap() > 12, "{snap}");
    assert!(snap["segments_removed"].as_u64().unwrap() > 10, "{snap}");
    let last = json(&cli(dir, &config, &["snapshot", "--last", "--json"]));
    assert_eq!(last, snap);
    // Enough small objects that the journal has a few hundred segments.
    let many = dir.join("many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..300 {
        std::fs::write(many.join(format!("f{i:03}")), pattern(i, 100 + i as usize)).unwrap();
    }
    aws.ok(&["s3", "sync", many.to_str().unwrap(), "s3://plain/many/"]);
    let over = files.join("over");
    std::fs::write(&over, b"the second version").unwrap();
    aws.ok(&["s3", "cp", over.to_str().unwrap(), "s3://photos/page"]);
    aws.ok(&["s3", "cp", over.to_str().unwrap(), "s3://plain/many/f007"]);
    for gone in [
        "s3://photos/one",
        "s3://plain/many/f100",
        "s3://plain/medium",
    ] {
        aws.ok(&["s3", "rm", gone]);
    }
    aws.ok(&["s3", "cp", over.to_str().unwrap(), "s3://scratch/tmp"]);
    aws.ok(&["s3", "rm", "s3://scratch/tmp"]);
    aws.ok(&["s3", "rb", "s3://scratch"]);
    // An upload in progress with one part.
    let up = json(&aws.ok(&[
        "s3api",
        "create-multipart-upload",
        "--bucket",
        "photos",
        "--key",
        "pending",
    ]));
    let upload_id = up["UploadId"].as_str().unwrap().to_string();
    let part = files.join("part");
    std::fs::write(&part, pattern(99, 5 << 20)).unwrap();
    aws.ok(&[
        "s3api",
        "upload-part",
        "--bucket",
        "photos",
        "--key",
        "pending",
        "--part-number",
        "1",
        "--upload-id",
        &upload_id,
        "--body",
        part.to_str().unwrap(),
    ]);

    let buckets = ["plain", "photos"];
    let before = observe(&aws, dir, &config, &buckets);
    let keys_before = cli(dir, &config, &["key", "list", "--json"]);
    server.stop();

    // The data directory is gone; the key file and the configuration are what is left.
    std::fs::remove_dir_all(dir.join("data")).unwrap();
    davs[1].kill();
    davs[4].kill();

    // A recovery killed half-way through applying the journal…
    let mut child = archipel()
        .current_dir(dir)
        .args(["recover", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        // The journal's phase, not the snapshot's ("applying the snapshot…").
        if line.starts_with("applying…") {
            break;
        }
        assert!(Instant::now() < deadline, "recover never started applying");
    }
    std::thread::sleep(Duration::from_millis(150));
    child.kill().unwrap();
    let killed = child.wait_with_output().unwrap();
    assert!(
        !String::from_utf8_lossy(&killed.stdout).contains("recovered vault"),
        "the recovery finished before it could be killed: make the journal longer"
    );
    // … is run again, and resumes.
    let started = Instant::now();
    let report = cli(dir, &config, &["recover", "--json"]);
    let took = started.elapsed();
    let report = json(&report);
    assert_eq!(report["resumed"], true, "{report}");
    let taken = format!("{}/{}", snap["run"], snap["number"]);
    assert!(
        report["snapshot"]
            .as_str()
            .is_some_and(|s| s.starts_with(&format!("{taken}:"))),
        "{report}"
    );
    assert!(
        report["segments_applied"].as_u64().unwrap() < report["segments"].as_u64().unwrap(),
        "{report}"
    );
    assert_eq!(report["buckets"], 2, "{report}");
    assert_eq!(report["unreadable_count"], 0, "{report}");
    assert_eq!(report["uploads"], 1, "{report}");
    assert_eq!(report["access_keys"], 2, "{report}");
    assert_eq!(
        report["root_credentials"].as_str(),
        Some(root.0.as_str()),
        "{report}"
    );
    assert!(report["gaps"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(
        report["unreachable"].as_array().unwrap().len(),
        2,
        "{report}"
    );
    eprintln!(
        "recovered {} objects from {} journal segments in {took:?} with 2 of 6 providers down",
        report["objects"], report["segments"]
    );
    // A second recovery into the same directory is refused.
    let (ok, _, err) = run(archipel()
        .current_dir(dir)
        .args(["recover", "--config"])
        .arg(&config));
    assert!(!ok && err.contains("recovered vault already"), "{err}");

    // The recovered vault, still with two providers down, is the vault it was.
    let server = Server::start_with(
        &["--config".into(), config.display().to_string()],
        dir,
        port,
    );
    // The root key is the one the lost data directory held.
    assert_eq!(
        (server.access_key.clone(), server.secret_key.clone()),
        root,
        "the root credentials changed with the recovery"
    );
    let aws = server.aws_root(&aws_bin, dir);
    let after = observe(&aws, dir, &config, &buckets);
    for (what, was) in &before {
        assert_eq!(after.get(what), Some(was), "{what} differs after recovery");
    }
    assert_eq!(cli(dir, &config, &["key", "list", "--json"]), keys_before);
    assert!(
        !aws.run(&["s3api", "head-object", "--bucket", "photos", "--key", "one"])
            .0
    );
    assert!(!aws.run(&["s3api", "head-bucket", "--bucket", "scratch"]).0);
    // Both access keys work, within their grants.
    let app = aws.with_key(k1["id"].as_str().unwrap(), k1["secret"].as_str().unwrap());
    app.ok(&["s3", "cp", over.to_str().unwrap(), "s3://photos/by-app"]);
    assert!(!app.run(&["s3", "ls", "s3://plain"]).0);
    let auditor = aws.with_key(k2["id"].as_str().unwrap(), k2["secret"].as_str().unwrap());
    assert!(auditor.ok(&["s3", "ls", "s3://plain/"]).contains("large"));
    assert!(
        !auditor
            .run(&["s3", "cp", over.to_str().unwrap(), "s3://plain/x"])
            .0
    );
    // The upload in progress can be completed.
    let parts = json(&aws.ok(&[
        "s3api",
        "list-parts",
        "--bucket",
        "photos",
        "--key",
        "pending",
        "--upload-id",
        &upload_id,
    ]));
    let etag = parts["Parts"][0]["ETag"].as_str().unwrap().to_string();
    aws.ok(&[
        "s3api",
        "complete-multipart-upload",
        "--bucket",
        "photos",
        "--key",
        "pending",
        "--upload-id",
        &upload_id,
        "--multipart-upload",
        &format!(r#"{{"Parts":[{{"PartNumber":1,"ETag":{etag:?}}}]}}"#),
    ]);
    server.stop();

    // The drill: recover into a scratch directory and compare with the live store.
    davs[1].restart();
    davs[4].restart();
    let drill = json(&cli(dir, &config, &["recover", "--check", "--json"]));
    assert_eq!(drill["check"]["difference_count"], 0, "{drill}");
    assert!(
        drill["check"]["compared"].as_u64().unwrap() > 300,
        "{drill}"
    );
}
