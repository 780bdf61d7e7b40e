//! Access keys: secrets sealed in the metadata store (never in clear), grants per bucket.

use archipel_engine::{EngineError, Permissions};
use archipel_meta::MetaStore;

use crate::harness::Vault;

#[tokio::test]
async fn access_keys_are_sealed_granted_and_revoked() {
    let v = Vault::new(6).await;
    v.engine.create_bucket("bkt", "root", None).await.unwrap();
    let k = v.engine.create_access_key("alice").await.unwrap();
    assert!(k.id.starts_with("AK") && k.id.len() == 20, "{}", k.id);
    assert_eq!(k.secret.len(), 40);
    assert!(
        !format!("{k:?}").contains(&k.secret),
        "Debug hides the secret"
    );
    // Stored sealed: the metadata store never sees the secret.
    let stored = v
        .meta
        .get_access_key(&archipel_meta::AccessKeyId::new(k.id.clone()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        !stored
            .sealed_secret
            .windows(8)
            .any(|w| w == &k.secret.as_bytes()[..8])
    );
    assert_eq!(
        v.engine.access_key_secret(&k.id).await.unwrap(),
        Some(k.secret.clone())
    );
    assert_eq!(
        v.engine.access_key_secret("AKNOSUCHKEY").await.unwrap(),
        None
    );

    let read = Permissions {
        read: true,
        ..Permissions::default()
    };
    assert!(matches!(
        v.engine.grant(&k.id, "nobucket", read).await,
        Err(EngineError::NoSuchBucket { .. })
    ));
    assert!(matches!(
        v.engine.grant("AKNOSUCHKEY", "bkt", read).await,
        Err(EngineError::Invalid(_))
    ));
    v.engine.grant(&k.id, "bkt", read).await.unwrap();
    assert_eq!(v.engine.permissions(&k.id, "bkt").await.unwrap(), read);
    assert_eq!(
        v.engine.permissions(&k.id, "other").await.unwrap(),
        Permissions::default()
    );
    let listed = v.engine.list_access_keys().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].owner, "alice");
    assert_eq!(listed[0].grants, vec![("bkt".to_string(), read)]);
    assert!(v.engine.delete_access_key(&k.id).await.unwrap());
    assert_eq!(v.engine.access_key_secret(&k.id).await.unwrap(), None);
    assert!(!v.engine.delete_access_key(&k.id).await.unwrap());
}
