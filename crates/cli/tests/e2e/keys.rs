//! `archipel key` end to end: keys made and granted with the CLI on a stopped vault, then
//! enforced by `archipel serve` against the unmodified aws cli — a read-only key reads but
//! cannot write, a key without grants reads nothing, a widened grant writes, a deleted key no
//! longer authenticates.

use crate::harness::{Server, op, op_ok};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn a_read_only_key_from_the_cli_can_get_but_not_put_until_granted_write() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the access key end-to-end test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let data = tmp.path().join("data");

    // A vault with a bucket and an object, made by root over S3.
    let server = Server::start(&data);
    let root = server.aws_root(&aws, &work);
    root.ok(&["s3", "mb", "s3://shared"]);
    std::fs::write(work.join("doc.txt"), b"shared document\n").unwrap();
    root.ok(&["s3", "cp", "doc.txt", "s3://shared/doc.txt"]);
    server.stop();

    // Mistakes are refused before anything is created.
    let (ok, _, err) = op(&data, &["key", "create", "--read"]);
    assert!(!ok);
    assert!(err.contains("need --bucket"), "{err}");
    let (ok, _, err) = op(&data, &["key", "create", "--bucket", "shared"]);
    assert!(!ok);
    assert!(err.contains("at least one of --read"), "{err}");
    let (ok, _, err) = op(&data, &["key", "create", "--bucket", "nope", "--read"]);
    assert!(!ok);
    assert!(
        err.contains("nope") && err.contains("no key was created"),
        "{err}"
    );
    assert_eq!(json(&op_ok(&data, &["key", "list", "--json"])), json("[]"));

    // A read-only key for alice (JSON), and one without grants for bob (human output).
    let alice = json(&op_ok(
        &data,
        &[
            "key", "create", "--owner", "alice", "--bucket", "shared", "--read", "--json",
        ],
    ));
    let (alice_id, alice_secret) = (
        alice["id"].as_str().unwrap().to_string(),
        alice["secret"].as_str().unwrap().to_string(),
    );
    assert!(
        alice_id.starts_with("AK") && alice_id.len() == 20,
        "{alice}"
    );
    assert_eq!(alice_secret.len(), 40, "{alice}");
    assert_eq!(alice["grants"][0]["bucket"], "shared");
    assert_eq!(alice["grants"][0]["read"], true);
    assert_eq!(alice["grants"][0]["write"], false);
    let out = op_ok(&data, &["key", "create", "--owner", "bob"]);
    assert!(out.starts_with("created access key for bob\n"), "{out}");
    assert!(out.contains("shown only this once"), "{out}");
    assert!(out.contains("may: nothing yet"), "{out}");
    let bob_id = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("access key id:"))
        .unwrap()
        .trim()
        .to_string();
    let bob_secret = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("secret access key:"))
        .unwrap()
        .trim()
        .to_string();

    // Listing never shows secrets.
    let list = op_ok(&data, &["key", "list", "--json"]);
    assert!(!list.contains(&alice_secret) && !list.contains(&bob_secret));
    let list = json(&list);
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    assert_eq!(list[0]["owner"], "alice");
    assert_eq!(list[0]["id"], alice_id.as_str());
    assert_eq!(list[0]["enabled"], true);
    assert_eq!(list[1]["owner"], "bob");
    assert_eq!(list[1]["grants"], json("[]"));

    // Served: alice reads and lists, but may not write, delete or create buckets.
    let server = Server::start(&data);
    let root = server.aws_root(&aws, &work);
    let as_alice = root.with_key(&alice_id, &alice_secret);
    as_alice.ok(&["s3", "cp", "s3://shared/doc.txt", "alice.txt"]);
    assert_eq!(
        std::fs::read(work.join("alice.txt")).unwrap(),
        b"shared document\n"
    );
    let listing = as_alice.ok(&["s3", "ls", "s3://shared/"]);
    assert!(listing.contains("doc.txt"), "{listing}");
    let err = as_alice.fails(&["s3", "cp", "doc.txt", "s3://shared/by-alice.txt"]);
    assert!(err.contains("AccessDenied"), "{err}");
    let err = as_alice.fails(&["s3", "rm", "s3://shared/doc.txt"]);
    assert!(err.contains("AccessDenied"), "{err}");
    let err = as_alice.fails(&["s3", "mb", "s3://alice-own"]);
    assert!(err.contains("AccessDenied"), "{err}");
    // Bob authenticates but has no grant.
    let as_bob = root.with_key(&bob_id, &bob_secret);
    let err = as_bob.fails(&["s3", "cp", "s3://shared/doc.txt", "bob.txt"]);
    assert!(err.contains("AccessDenied") || err.contains("403"), "{err}");
    server.stop();

    // Widen alice's grant, delete bob.
    let out = op_ok(
        &data,
        &["key", "grant", &alice_id, "shared", "--read", "--write"],
    );
    assert_eq!(
        out,
        format!("access key {alice_id} may now read, write in shared\n")
    );
    let (ok, _, err) = op(&data, &["key", "grant", &alice_id, "shared"]);
    assert!(!ok);
    assert!(err.contains("--none to revoke"), "{err}");
    let (ok, _, err) = op(&data, &["key", "grant", &alice_id, "nope", "--read"]);
    assert!(!ok);
    assert!(err.contains("nope"), "{err}");
    let out = op_ok(&data, &["key", "delete", &bob_id]);
    assert_eq!(out, format!("deleted access key {bob_id} and its grants\n"));
    let (ok, _, err) = op(&data, &["key", "delete", &bob_id]);
    assert!(!ok);
    assert!(err.contains("no access key"), "{err}");

    let server = Server::start(&data);
    let root = server.aws_root(&aws, &work);
    let as_alice = root.with_key(&alice_id, &alice_secret);
    as_alice.ok(&["s3", "cp", "doc.txt", "s3://shared/by-alice.txt"]);
    let err = root
        .with_key(&bob_id, &bob_secret)
        .fails(&["s3", "ls", "s3://shared/"]);
    assert!(err.contains("InvalidAccessKeyId"), "{err}");
    server.stop();

    // Revoke: the grant is gone from the listing.
    let out = op_ok(&data, &["key", "grant", &alice_id, "shared", "--none"]);
    assert_eq!(
        out,
        format!("access key {alice_id} may no longer do anything in shared\n")
    );
    let list = json(&op_ok(&data, &["key", "list", "--json"]));
    assert_eq!(list[0]["grants"], json("[]"), "{list}");
}

/// `archipel key split` → any 3 of 5 shares open the vault (the key file gone), 2 do not, a
/// mistyped share is named; the gateway serves from shares; `key combine` gives the key back.
#[test]
fn any_three_of_five_key_shares_open_the_vault_two_do_not_and_a_typo_is_named() {
    let Some(aws) = archipel_testkit::require_tool("aws", "the key share test") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data);
    let root = server.aws_root(&aws, &work);
    root.ok(&["s3", "mb", "s3://vaulted"]);
    std::fs::write(work.join("doc.txt"), b"only with three custodians\n").unwrap();
    root.ok(&["s3", "cp", "doc.txt", "s3://vaulted/doc.txt"]);
    server.stop();

    let shares_dir = tmp.path().join("shares");
    let out = op_ok(
        &data,
        &[
            "key",
            "split",
            "--shares",
            "5",
            "--threshold",
            "3",
            "--out-dir",
            shares_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.matches("wrote ").count(), 5, "{out}");
    let share = |i: usize| shares_dir.join(format!("share-{i}.txt"));
    for i in 1..=5 {
        let meta = std::fs::metadata(share(i)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    // The key file leaves the machine.
    let key = std::fs::read_to_string(data.join("key")).unwrap();
    std::fs::remove_file(data.join("key")).unwrap();
    let (ok, _, err) = op(&data, &["bucket", "list"]);
    assert!(!ok && err.contains("key shares"), "{err}");

    let with = |ids: &[usize]| -> Vec<String> {
        let mut args = Vec::new();
        for i in ids {
            args.push("--key-share-file".to_string());
            args.push(share(*i).display().to_string());
        }
        args
    };
    // Every set of three gives the key back, exactly.
    for (n, set) in [[1, 2, 3], [1, 3, 5], [2, 4, 5], [3, 4, 5]]
        .iter()
        .enumerate()
    {
        let out_key = tmp.path().join(format!("key-{n}"));
        let mut args = vec!["key".to_string(), "combine".into(), "--out".into()];
        args.push(out_key.display().to_string());
        args.extend(with(set));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        op_ok(&data, &args);
        assert_eq!(
            std::fs::read_to_string(&out_key).unwrap().lines().last(),
            key.lines().last(),
            "shares {set:?}"
        );
    }
    // Two do not.
    let mut args = vec!["bucket".to_string(), "list".into()];
    args.extend(with(&[2, 5]));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, err) = op(&data, &args);
    assert!(
        !ok && err.contains("2 key shares given; this split needs 3"),
        "{err}"
    );
    // A mistyped share is named.
    let text = std::fs::read_to_string(share(4)).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("archipel-share-1"))
        .unwrap();
    let at = line.rfind('-').unwrap() + 1;
    let mut typo = line.as_bytes().to_vec();
    typo[at] = if typo[at] == b'7' { b'8' } else { b'7' };
    let typo = String::from_utf8(typo).unwrap();
    let mut args = vec!["bucket".to_string(), "list".into()];
    args.extend(with(&[1, 2]));
    args.push("--key-share".into());
    args.push(typo);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _, err) = op(&data, &args);
    assert!(
        !ok && err.contains("key share #1")
            && err.contains("key share 4")
            && err.contains("mistyped"),
        "{err}"
    );

    // The gateway starts from three shares and serves what was written before the split.
    let port = archipel_testkit::free_port();
    let mut args = vec![
        "--data-dir".to_string(),
        data.display().to_string(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--admin-listen".into(),
        "off".into(),
    ];
    args.extend(with(&[5, 1, 3]));
    let server = Server::start_with(&args, tmp.path(), port);
    assert!(server.banner.contains("3 key shares"), "{}", server.banner);
    let root = server.aws_root(&aws, &work);
    root.ok(&["s3", "cp", "s3://vaulted/doc.txt", "back.txt"]);
    assert_eq!(
        std::fs::read(work.join("back.txt")).unwrap(),
        b"only with three custodians\n"
    );
    server.stop();
}
