//! Snapshots of the human output of `bucket list`, `key list` and `provider list`. What changes
//! from run to run — times, key ids, the data directory — is masked with placeholders of the
//! same width, so the snapshots also pin the column layout.

use std::path::Path;

use crate::harness::{Server, archipel, op_ok, run};

/// Replaces every `YYYY-MM-DDTHH:MM:SSZ` time.
fn mask_times(text: &str) -> String {
    let shape = b"dddd-dd-ddTdd:dd:ddZ";
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let is_time = bytes.len() - i >= shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| match s {
                b'd' => b.is_ascii_digit(),
                s => s == b,
            });
        if is_time {
            out.push_str("<time>..............");
            i += shape.len();
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// Masks times, the given ids (each by a same-width label) and the data directory.
fn mask(text: &str, ids: &[(&str, &str)], data: &Path) -> String {
    let mut t = mask_times(text).replace(data.to_str().unwrap(), "<data>");
    for (id, label) in ids {
        let placeholder = format!("{label:.<width$}", width = id.len());
        t = t.replace(id, &placeholder);
    }
    t
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn bucket_list_key_list_and_provider_list_human_output() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let server = Server::start(&data);
    let root_key = server.access_key.clone();
    server.stop();

    // Empty.
    assert_eq!(
        op_ok(&data, &["bucket", "list"]),
        "no buckets (create one with `archipel bucket create NAME`)\n"
    );
    assert_eq!(
        mask(
            &op_ok(&data, &["key", "list"]),
            &[(&root_key, "<root>")],
            &data
        ),
        "no access keys (create one with `archipel key create --owner NAME --bucket BUCKET --read`)
(and the root key <root>..............: every permission on every bucket)
"
    );

    op_ok(&data, &["bucket", "create", "photos"]);
    op_ok(
        &data,
        &["bucket", "create", "mirror", "--data", "1", "--parity", "1"],
    );
    op_ok(
        &data,
        &[
            "bucket",
            "create",
            "local-archive",
            "--data",
            "3",
            "--parity",
            "2",
            "--max-per-operator",
            "5",
            "--allowed-jurisdictions",
            "local",
        ],
    );
    let new_key = |args: &[&str]| {
        let mut a = vec!["key", "create", "--json"];
        a.extend_from_slice(args);
        json(&op_ok(&data, &a))["id"].as_str().unwrap().to_string()
    };
    let alice = new_key(&["--owner", "alice", "--bucket", "photos", "--read"]);
    let backup = new_key(&["--owner", "backup-job", "--bucket", "mirror", "--write"]);
    let anonymous = new_key(&[]);
    op_ok(
        &data,
        &[
            "key",
            "grant",
            &backup,
            "local-archive",
            "--read",
            "--write",
            "--admin",
        ],
    );
    let ids = [
        (alice.as_str(), "<alice>"),
        (backup.as_str(), "<backup>"),
        (anonymous.as_str(), "<no-owner>"),
        (root_key.as_str(), "<root>"),
    ];

    assert_eq!(
        mask(&op_ok(&data, &["bucket", "list"]), &ids, &data),
        "\
NAME           CREATED               POLICY
local-archive  <time>..............  3+2 (quorum 4), ≤5/operator, in local
mirror         <time>..............  1+1 (quorum 2)
photos         <time>..............  4+2 (quorum 5)
"
    );
    assert_eq!(
        mask(&op_ok(&data, &["key", "list"]), &ids, &data),
        "\
ID                    OWNER       CREATED               STATE     GRANTS
<no-owner>..........  -           <time>..............  enabled   (none)
<alice>.............  alice       <time>..............  enabled   photos: read
<backup>............  backup-job  <time>..............  enabled   local-archive: read, write, admin; mirror: write
(and the root key <root>..............: every permission on every bucket)
"
    );
    assert_eq!(
        mask(&op_ok(&data, &["provider", "list"]), &ids, &data),
        "\
NAME  KIND  OPERATOR  JURISDICTION  WEIGHT  STATE   LOCATION
p1    dir   self      local         1       active  <data>/providers/p1
p2    dir   self      local         1       active  <data>/providers/p2
p3    dir   self      local         1       active  <data>/providers/p3
p4    dir   self      local         1       active  <data>/providers/p4
p5    dir   self      local         1       active  <data>/providers/p5
p6    dir   self      local         1       active  <data>/providers/p6
"
    );
}

#[test]
fn provider_list_of_a_configuration_human_output() {
    let tmp = tempfile::tempdir().unwrap();
    let config = "\
[[provider]]
name = \"nas\"
kind = \"dir\"
path = \"/srv/archipel/nas\"
operator = \"self\"
jurisdiction = \"FR\"
weight = 3

[[provider]]
name = \"scaleway-par\"
kind = \"s3\"
endpoint = \"https://s3.fr-par.example.invalid\"
bucket = \"archipel-shards\"
access_key = \"AKSECRETID\"
secret_key = \"${ARCHIPEL_TEST_SNAPSHOT_SECRET}\"
operator = \"scaleway\"
jurisdiction = \"FR\"

[[provider]]
name = \"hetzner-box\"
kind = \"webdav\"
url = \"https://box.example.invalid\"
root = \"/archipel\"
user = \"u123\"
password = \"dav-password\"
operator = \"hetzner\"
jurisdiction = \"DE\"
state = \"draining\"
";
    std::fs::write(tmp.path().join("archipel.toml"), config).unwrap();
    let (ok, out, err) = run(archipel()
        .current_dir(tmp.path())
        .args(["provider", "list", "--config", "archipel.toml"])
        .env("ARCHIPEL_TEST_SNAPSHOT_SECRET", "s3-secret-value"));
    assert!(ok, "{err}");
    assert_eq!(
        out,
        "\
NAME          KIND    OPERATOR  JURISDICTION  WEIGHT  STATE     LOCATION
nas           dir     self      FR            3       active    /srv/archipel/nas
scaleway-par  s3      scaleway  FR            1       active    https://s3.fr-par.example.invalid/archipel-shards
hetzner-box   webdav  hetzner   DE            1       draining  https://box.example.invalid/archipel
"
    );
}
