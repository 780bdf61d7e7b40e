//! Snapshot tests of the XML the gateway answers, one request per operation family, through
//! the real service stack (routing, XML serialisation) minus authentication. Timestamps and
//! upload ids are masked. Expected bodies live in `src/snapshots/*.xml`; after an intended
//! change, run with `UPDATE_SNAPSHOTS=1` and review the diff.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use archipel_codec::MasterKey;
use archipel_engine::{Engine, EngineOptions, ProviderInfo, ProviderSlot, ProviderState};
use archipel_meta::{EmbeddedOptions, MetaStore, SqlMetaStore};
use archipel_provider::{LocalDir, Provider};
use http::Method;

use crate::GatewayConfig;
use crate::gateway::Gateway;

struct Fixture {
    svc: s3s::service::S3Service,
    _tmp: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let meta = Arc::new(
        SqlMetaStore::open_embedded(EmbeddedOptions::new(tmp.path().join("meta")))
            .await
            .unwrap(),
    );
    let mut slots = Vec::new();
    for i in 1..=6 {
        let name = format!("p{i}");
        let p: Arc<dyn Provider> =
            Arc::new(LocalDir::open(&name, tmp.path().join(&name)).await.unwrap());
        slots.push(ProviderSlot {
            info: ProviderInfo {
                name,
                operator: "self".into(),
                jurisdiction: "FR".into(),
                weight: 1,
                state: ProviderState::Active,
            },
            provider: p,
        });
    }
    let opts = EngineOptions {
        gc_delay: Duration::ZERO,
        min_part_size: 1,
        ..EngineOptions::default()
    };
    let engine = Engine::new(
        MasterKey::from_bytes([5; 32]),
        meta as Arc<dyn MetaStore>,
        slots,
        opts,
    )
    .unwrap();
    let gw = Gateway::new(engine, GatewayConfig::new("AK", "SK"));
    Fixture {
        svc: s3s::service::S3ServiceBuilder::new(gw).build(),
        _tmp: tmp,
    }
}

/// Sends a request; returns status and body.
async fn call(f: &Fixture, method: Method, uri: &str, body: &str) -> (u16, String) {
    let req = http::Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "127.0.0.1")
        .body(s3s::Body::from(body.to_string()))
        .unwrap();
    let resp = f.svc.call(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// Masks what changes run to run: times and upload ids.
fn mask(xml: &str) -> String {
    let mut out = xml.to_string();
    for tag in [
        "LastModified",
        "CreationDate",
        "Initiated",
        "UploadId",
        "NextUploadIdMarker",
    ] {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut from = 0;
        while let Some(a) = out[from..].find(&open) {
            let start = from + a + open.len();
            let Some(b) = out[start..].find(&close) else {
                break;
            };
            out.replace_range(start..start + b, "*");
            from = start + 1;
        }
    }
    out.replace("><", ">\n<")
}

fn check(name: &str, status: u16, body: &str) {
    let got = format!("{status}\n{}\n", mask(body));
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("src/snapshots")
        .join(format!("{name}.xml"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &got).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "no snapshot {}: run with UPDATE_SNAPSHOTS=1",
            path.display()
        )
    });
    assert_eq!(
        got, want,
        "snapshot {name} differs (UPDATE_SNAPSHOTS=1 to accept)"
    );
}

fn between<'a>(s: &'a str, a: &str, b: &str) -> &'a str {
    let i = s.find(a).unwrap() + a.len();
    let j = s[i..].find(b).unwrap() + i;
    &s[i..j]
}

#[tokio::test]
async fn xml_of_every_operation_family() {
    let f = fixture().await;
    let (s, b) = call(&f, Method::PUT, "/snap", "").await;
    check("create_bucket", s, &b);
    let (s, b) = call(&f, Method::PUT, "/snap", "").await;
    check("error_bucket_owned", s, &b);
    let (s, b) = call(&f, Method::GET, "/", "").await;
    check("list_buckets", s, &b);
    let (s, b) = call(&f, Method::GET, "/snap?location", "").await;
    check("get_bucket_location", s, &b);
    let (s, b) = call(&f, Method::GET, "/snap?versioning", "").await;
    check("get_bucket_versioning", s, &b);
    let (s, b) = call(&f, Method::GET, "/snap?acl", "").await;
    check("get_bucket_acl", s, &b);
    for k in ["a/1", "a/2", "b", "c d"] {
        call(
            &f,
            Method::PUT,
            &format!("/snap/{}", k.replace(' ', "%20")),
            "data",
        )
        .await;
    }
    let (s, b) = call(
        &f,
        Method::GET,
        "/snap?list-type=2&delimiter=/&max-keys=2",
        "",
    )
    .await;
    check("list_objects_v2", s, &b);
    let (s, b) = call(&f, Method::GET, "/snap?prefix=a/&marker=a/1", "").await;
    check("list_objects_v1", s, &b);
    let (s, b) = call(
        &f,
        Method::GET,
        "/snap?list-type=2&encoding-type=url&prefix=c",
        "",
    )
    .await;
    check("list_objects_v2_url", s, &b);
    let (s, b) = call(&f, Method::GET, "/snap?versions&prefix=a/", "").await;
    check("list_object_versions", s, &b);
    let (s, b) = call(&f, Method::GET, "/snap/missing", "").await;
    check("error_no_such_key", s, &b);
    let (s, b) = call(&f, Method::GET, "/nobucket?list-type=2", "").await;
    check("error_no_such_bucket", s, &b);
    let (s, b) = call(&f, Method::DELETE, "/snap", "").await;
    check("error_bucket_not_empty", s, &b);
    let (s, b) = call(&f, Method::POST, "/snap/up?uploads", "").await;
    check("create_multipart_upload", s, &b);
    let id = between(&b, "<UploadId>", "</UploadId>").to_string();
    call(
        &f,
        Method::PUT,
        &format!("/snap/up?partNumber=1&uploadId={id}"),
        "part one",
    )
    .await;
    call(
        &f,
        Method::PUT,
        &format!("/snap/up?partNumber=2&uploadId={id}"),
        "part two",
    )
    .await;
    let (s, b) = call(&f, Method::GET, &format!("/snap/up?uploadId={id}"), "").await;
    check("list_parts", s, &b);
    let (s, b) = call(&f, Method::GET, "/snap?uploads", "").await;
    check("list_multipart_uploads", s, &b);
    let bad = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"00\"</ETag></Part></CompleteMultipartUpload>";
    let (s, b) = call(&f, Method::POST, &format!("/snap/up?uploadId={id}"), bad).await;
    check("error_invalid_part", s, &b);
    let done = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"3303e12af474ca11d85ed2966a932992\"</ETag></Part><Part><PartNumber>2</PartNumber><ETag>\"3ea4e15b91a17dc76052c56cfcdf67a2\"</ETag></Part></CompleteMultipartUpload>";
    let (s, b) = call(&f, Method::POST, &format!("/snap/up?uploadId={id}"), done).await;
    check("complete_multipart_upload", s, &b);
    let (s, b) = call(
        &f,
        Method::POST,
        &format!("/snap/up?uploadId={id}"),
        "<Complete",
    )
    .await;
    check("error_malformed_xml", s, &b);
    let del = "<Delete><Object><Key>b</Key></Object><Object><Key>nope</Key></Object></Delete>";
    let (s, b) = call(&f, Method::POST, "/snap?delete", del).await;
    check("delete_objects", s, &b);
}
