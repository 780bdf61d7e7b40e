//! The gateway's request routing and parsing: arbitrary HTTP requests (method, URI, headers,
//! body) through the real S3 service (s3s routing, XML parsing, the operations over a real
//! engine on six temporary directory providers), authentication left out so that every
//! operation is reachable. Any panic is a bug; errors are expected.
//!
//! Input format: `METHOD URI\nName: value\n...\n\nbody`.
#![no_main]

use std::sync::{Arc, OnceLock};

use archipel_codec::MasterKey;
use archipel_engine::{Engine, EngineOptions, ProviderInfo, ProviderSlot, ProviderState};
use archipel_meta::{EmbeddedOptions, MetaStore, SqlMetaStore};
use archipel_provider::{LocalDir, Provider};
use libfuzzer_sys::fuzz_target;

struct State {
    rt: tokio::runtime::Runtime,
    svc: s3s::service::S3Service,
    _dir: tempfile::TempDir,
}

fn setup() -> State {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let svc = rt.block_on(async {
        let meta = Arc::new(
            SqlMetaStore::open_embedded(EmbeddedOptions::new(dir.path().join("meta")))
                .await
                .expect("meta"),
        );
        let mut slots = Vec::new();
        for i in 1..=6 {
            let name = format!("p{i}");
            let p: Arc<dyn Provider> = Arc::new(
                LocalDir::open(&name, dir.path().join(&name))
                    .await
                    .expect("dir"),
            );
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
        let engine = Engine::new(
            MasterKey::from_bytes([9; 32]),
            meta as Arc<dyn MetaStore>,
            slots,
            EngineOptions::default(),
        )
        .expect("engine");
        engine
            .create_bucket("fuzz", "fuzz", None)
            .await
            .expect("bucket");
        archipel_s3::unauthenticated_service(engine, &archipel_s3::GatewayConfig::new("AK", "SK"))
    });
    State { rt, svc, _dir: dir }
}

static STATE: OnceLock<State> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let state = STATE.get_or_init(setup);
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let Some((method, uri)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return;
    };
    let mut b = http::Request::builder().method(method).uri(uri);
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            b = b.header(k.trim(), v.trim());
        }
    }
    let Ok(req) = b.body(s3s::Body::from(body.to_vec())) else {
        return;
    };
    let _ = state.rt.block_on(state.svc.call(req));
});
