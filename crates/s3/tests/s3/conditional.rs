//! Conditional writes and deletes over HTTP, signed by curl's own SigV4: `If-Match` and
//! `If-None-Match` are decided by the metadata store in the commit (or delete) itself, with no
//! HEAD first, so of many concurrent `If-Match` PUTs on one key exactly one wins.

use std::path::PathBuf;

use crate::harness::{Answer, Server, signed_curl, start};

const BUCKET: &str = "cond";

/// curl and a gateway with an empty bucket, or `None` (SKIP) without curl.
async fn setup(what: &str) -> Option<(PathBuf, Server)> {
    let curl = archipel_testkit::require_tool("curl", what)?;
    let srv = start().await;
    srv.engine
        .create_bucket(BUCKET, "root", None)
        .await
        .unwrap();
    Some((curl, srv))
}

async fn put(
    curl: &std::path::Path,
    srv: &Server,
    key: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    signed_curl(
        curl,
        srv,
        "PUT",
        &format!("/{BUCKET}/{key}"),
        headers,
        Some(body),
    )
    .await
}

async fn get(curl: &std::path::Path, srv: &Server, key: &str) -> Answer {
    signed_curl(curl, srv, "GET", &format!("/{BUCKET}/{key}"), &[], None).await
}

async fn delete(
    curl: &std::path::Path,
    srv: &Server,
    key: &str,
    headers: &[(&str, &str)],
) -> Answer {
    signed_curl(
        curl,
        srv,
        "DELETE",
        &format!("/{BUCKET}/{key}"),
        headers,
        None,
    )
    .await
}

/// Asserts an S3 error answer with this status and code.
fn assert_error(a: &Answer, status: u16, code: &str, what: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.body);
    assert!(
        a.body.contains(&format!("<Code>{code}</Code>")),
        "{what}: expected {code}, got {}",
        a.body
    );
}

fn etag_of(a: &Answer, what: &str) -> String {
    a.header("etag")
        .unwrap_or_else(|| panic!("{what}: no ETag header"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_if_match_puts_have_exactly_one_winner() {
    const WRITERS: usize = 20;
    let Some((curl, srv)) = setup("the gateway's conditional-write race").await else {
        return;
    };
    let base = put(&curl, &srv, "k", &[], "the base version").await;
    assert_eq!(base.status, 200, "base PUT: {}", base.body);
    let base_etag = etag_of(&base, "base PUT");

    // Twenty writers, each with its own body, all replacing the base version only.
    let srv = std::sync::Arc::new(srv);
    let mut set = tokio::task::JoinSet::new();
    for t in 0..WRITERS {
        let (curl, srv, base_etag) = (curl.clone(), srv.clone(), base_etag.clone());
        set.spawn(async move {
            let body = format!("writer {t:02} wrote this body");
            let a = put(&curl, &srv, "k", &[("If-Match", &base_etag)], &body).await;
            (body, a)
        });
    }
    let mut winners = Vec::new();
    let mut losers = 0;
    while let Some(joined) = set.join_next().await {
        let (body, a) = joined.unwrap();
        match a.status {
            200 => winners.push((body, etag_of(&a, "winning PUT"))),
            _ => {
                assert_error(&a, 412, "PreconditionFailed", "a losing If-Match PUT");
                losers += 1;
            }
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one If-Match PUT wins: {winners:?}"
    );
    assert_eq!(losers, WRITERS - 1);
    let (winner_body, winner_etag) = &winners[0];
    assert_ne!(winner_etag, &base_etag);

    // The object is the winner's, byte for byte.
    let now = get(&curl, &srv, "k").await;
    assert_eq!(now.status, 200, "{}", now.body);
    assert_eq!(&now.body, winner_body);
    assert_eq!(etag_of(&now, "GET"), *winner_etag);

    // The base etag is stale now: one more If-Match PUT with it loses too.
    let late = put(&curl, &srv, "k", &[("If-Match", &base_etag)], "too late").await;
    assert_error(&late, 412, "PreconditionFailed", "a stale If-Match PUT");
    assert_eq!(&get(&curl, &srv, "k").await.body, winner_body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_match_star_put_needs_a_current_object() {
    let Some((curl, srv)) = setup("the gateway's If-Match: * test").await else {
        return;
    };
    // No object: refused, and nothing is created.
    let a = put(&curl, &srv, "k", &[("If-Match", "*")], "first").await;
    assert_error(
        &a,
        412,
        "PreconditionFailed",
        "If-Match: * on a missing key",
    );
    assert_error(
        &get(&curl, &srv, "k").await,
        404,
        "NoSuchKey",
        "after the refusal",
    );

    // An object (whatever its etag): replaced.
    assert_eq!(put(&curl, &srv, "k", &[], "first").await.status, 200);
    let a = put(&curl, &srv, "k", &[("If-Match", "*")], "second").await;
    assert_eq!(a.status, 200, "If-Match: * on an object: {}", a.body);
    assert_eq!(get(&curl, &srv, "k").await.body, "second");

    // Deleted again: refused again.
    assert_eq!(delete(&curl, &srv, "k", &[]).await.status, 204);
    let a = put(&curl, &srv, "k", &[("If-Match", "*")], "third").await;
    assert_error(&a, 412, "PreconditionFailed", "If-Match: * after a delete");

    // If-None-Match: * is still create-only.
    assert_eq!(
        put(&curl, &srv, "k", &[("If-None-Match", "*")], "created")
            .await
            .status,
        200
    );
    let a = put(&curl, &srv, "k", &[("If-None-Match", "*")], "again").await;
    assert_error(
        &a,
        412,
        "PreconditionFailed",
        "If-None-Match: * on an object",
    );
    assert_eq!(get(&curl, &srv, "k").await.body, "created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn complete_multipart_upload_with_if_match_star_needs_a_current_object() {
    let Some((curl, srv)) = setup("the gateway's conditional multipart test").await else {
        return;
    };
    let path = format!("/{BUCKET}/mp");
    // `?uploads=`, not `?uploads`: curl signs a bare query flag differently from S3.
    let created = signed_curl(&curl, &srv, "POST", &format!("{path}?uploads="), &[], None).await;
    assert_eq!(created.status, 200, "{}", created.body);
    let upload_id = created
        .body
        .split("<UploadId>")
        .nth(1)
        .and_then(|s| s.split("</UploadId>").next())
        .unwrap_or_else(|| panic!("no UploadId in {}", created.body))
        .to_string();
    let part = signed_curl(
        &curl,
        &srv,
        "PUT",
        &format!("{path}?partNumber=1&uploadId={upload_id}"),
        &[],
        Some("the only part"),
    )
    .await;
    assert_eq!(part.status, 200, "{}", part.body);
    let xml = format!(
        "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{}</ETag></Part>\
         </CompleteMultipartUpload>",
        etag_of(&part, "UploadPart")
    );
    let complete = async |headers: &[(&str, &str)]| {
        signed_curl(
            &curl,
            &srv,
            "POST",
            &format!("{path}?uploadId={upload_id}"),
            headers,
            Some(&xml),
        )
        .await
    };
    // No object yet: refused, and the upload is still there to complete.
    let a = complete(&[("If-Match", "*")]).await;
    assert_error(&a, 412, "PreconditionFailed", "completion with If-Match: *");
    assert_error(
        &get(&curl, &srv, "mp").await,
        404,
        "NoSuchKey",
        "after the refusal",
    );
    // Once an object exists, the same completion commits.
    assert_eq!(put(&curl, &srv, "mp", &[], "plain").await.status, 200);
    let a = complete(&[("If-Match", "*")]).await;
    assert_eq!(a.status, 200, "completion over an object: {}", a.body);
    assert_eq!(get(&curl, &srv, "mp").await.body, "the only part");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conditional_delete_keeps_the_object_unless_its_etag_matches() {
    let Some((curl, srv)) = setup("the gateway's conditional-delete test").await else {
        return;
    };
    let first = put(&curl, &srv, "k", &[], "keep me").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let etag = etag_of(&first, "PUT");

    // Wrong etag: 412, and the object is kept.
    let wrong = "\"0123456789abcdef0123456789abcdef\"";
    let a = delete(&curl, &srv, "k", &[("If-Match", wrong)]).await;
    assert_error(&a, 412, "PreconditionFailed", "DELETE with a wrong etag");
    let kept = get(&curl, &srv, "k").await;
    assert_eq!((kept.status, kept.body.as_str()), (200, "keep me"));

    // Right etag: deleted.
    let a = delete(&curl, &srv, "k", &[("If-Match", &etag)]).await;
    assert_eq!(a.status, 204, "DELETE with the right etag: {}", a.body);
    assert_error(
        &get(&curl, &srv, "k").await,
        404,
        "NoSuchKey",
        "after the delete",
    );

    // A conditional delete of a missing key is not reported as done: 404 NoSuchKey, as S3
    // answers (see `Engine::delete_object`); an unconditional one is.
    let a = delete(&curl, &srv, "k", &[("If-Match", &etag)]).await;
    assert_error(&a, 404, "NoSuchKey", "If-Match DELETE of a missing key");
    let a = delete(&curl, &srv, "k", &[("If-Match", "*")]).await;
    assert_error(&a, 404, "NoSuchKey", "If-Match: * DELETE of a missing key");
    assert_eq!(delete(&curl, &srv, "k", &[]).await.status, 204);

    // If-Match: * deletes whatever is current.
    assert_eq!(put(&curl, &srv, "k", &[], "any").await.status, 200);
    let a = delete(&curl, &srv, "k", &[("If-Match", "*")]).await;
    assert_eq!(a.status, 204, "If-Match: * DELETE of an object: {}", a.body);
    assert_error(
        &get(&curl, &srv, "k").await,
        404,
        "NoSuchKey",
        "after If-Match: *",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_if_match_deletes_have_exactly_one_winner() {
    const DELETERS: usize = 20;
    let Some((curl, srv)) = setup("the gateway's conditional-delete race").await else {
        return;
    };
    let first = put(&curl, &srv, "k", &[], "delete me once").await;
    assert_eq!(first.status, 200, "{}", first.body);
    let etag = etag_of(&first, "PUT");
    let srv = std::sync::Arc::new(srv);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..DELETERS {
        let (curl, srv, etag) = (curl.clone(), srv.clone(), etag.clone());
        set.spawn(async move { delete(&curl, &srv, "k", &[("If-Match", &etag)]).await });
    }
    let mut deleted = 0;
    while let Some(joined) = set.join_next().await {
        let a = joined.unwrap();
        match a.status {
            204 => deleted += 1,
            // The key is gone by the time a loser's delete is decided.
            _ => assert_error(&a, 404, "NoSuchKey", "a losing If-Match DELETE"),
        }
    }
    assert_eq!(deleted, 1, "exactly one If-Match DELETE removes the object");
    assert_error(
        &get(&curl, &srv, "k").await,
        404,
        "NoSuchKey",
        "after the race",
    );
}
