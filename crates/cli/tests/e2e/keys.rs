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
