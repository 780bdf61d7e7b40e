//! S3 access keys as an operator manages them: list, create (with an optional first grant),
//! delete, grant. The engine keeps the keys (secrets sealed under the master key); the
//! gateway looks each key up on every request, so a key deleted here is refused on its next
//! request, on every gateway.

use archipel_engine::{AccessKeyInfo, Permissions};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::open::Vault;

/// What a key may do in one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Perms {
    /// GET, HEAD and listings.
    #[serde(default)]
    pub read: bool,
    /// PUT, DELETE and multipart uploads.
    #[serde(default)]
    pub write: bool,
    /// The bucket's policy and grants, deleting the bucket.
    #[serde(default)]
    pub admin: bool,
}

impl From<Perms> for Permissions {
    fn from(p: Perms) -> Permissions {
        Permissions {
            read: p.read,
            write: p.write,
            admin: p.admin,
        }
    }
}

impl From<Permissions> for Perms {
    fn from(p: Permissions) -> Perms {
        Perms {
            read: p.read,
            write: p.write,
            admin: p.admin,
        }
    }
}

impl Perms {
    /// Whether any permission is set.
    pub fn any(self) -> bool {
        self.read || self.write || self.admin
    }
}

/// A grant: a bucket and what the key may do there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantView {
    /// The bucket.
    pub bucket: String,
    /// The permissions.
    #[serde(flatten)]
    pub perms: Perms,
}

/// An access key as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    /// The key id.
    pub id: String,
    /// Who it acts for (a label).
    pub owner: String,
    /// When it was created, Unix milliseconds.
    pub created_ms: i64,
    /// Whether it may authenticate.
    pub enabled: bool,
    /// Its grants, in bucket order.
    pub grants: Vec<GrantView>,
}

impl From<AccessKeyInfo> for KeyView {
    fn from(k: AccessKeyInfo) -> KeyView {
        KeyView {
            id: k.id,
            owner: k.owner,
            created_ms: k.created.0,
            enabled: k.enabled,
            grants: k
                .grants
                .into_iter()
                .map(|(bucket, p)| GrantView {
                    bucket,
                    perms: p.into(),
                })
                .collect(),
        }
    }
}

/// A key just created: the only time its secret is shown.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatedKey {
    /// The key id.
    pub id: String,
    /// The secret access key.
    pub secret: String,
    /// Who it acts for.
    pub owner: String,
    /// Its grants.
    pub grants: Vec<GrantView>,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl Vault {
    fn refuse_root(&self, id: &str, what: &str) -> Result<()> {
        if id == self.inner.credentials.access_key {
            return Err(VaultError::Invalid(format!("{id} is the root key: {what}")));
        }
        Ok(())
    }

    /// Every access key with its grants, by owner then id.
    pub async fn list_keys(&self) -> Result<Vec<KeyView>> {
        let mut keys: Vec<KeyView> = self
            .inner
            .engine
            .list_access_keys()
            .await?
            .into_iter()
            .map(KeyView::from)
            .collect();
        keys.sort_by(|x, y| (&x.owner, &x.id).cmp(&(&y.owner, &y.id)));
        Ok(keys)
    }

    /// Creates an access key for `owner`, with a first grant when given. The bucket is
    /// checked first, and the key removed again if the grant fails: no half-made key stays.
    pub async fn create_key(
        &self,
        owner: &str,
        grant: Option<(&str, Perms)>,
    ) -> Result<CreatedKey> {
        let engine = &self.inner.engine;
        if let Some((b, p)) = grant {
            if !p.any() {
                return Err(VaultError::Invalid(format!(
                    "a grant on {b:?} needs at least one of read, write, admin"
                )));
            }
            engine
                .bucket_policy(b)
                .await
                .map_err(|e| VaultError::Invalid(format!("{e} (no key was created)")))?;
        }
        let key = engine.create_access_key(owner).await?;
        let mut grants = Vec::new();
        if let Some((b, p)) = grant {
            if let Err(e) = engine.grant(&key.id, b, p.into()).await {
                let _ = engine.delete_access_key(&key.id).await;
                return Err(VaultError::Invalid(format!(
                    "cannot grant on bucket {b:?}: {e} (no key was created)"
                )));
            }
            grants.push(GrantView {
                bucket: b.to_string(),
                perms: p,
            });
        }
        Ok(CreatedKey {
            id: key.id,
            secret: key.secret,
            owner: owner.to_string(),
            grants,
        })
    }

    /// Deletes an access key and its grants; its next request is refused.
    pub async fn delete_key(&self, id: &str) -> Result<()> {
        self.refuse_root(
            id,
            "it comes from the vault's credentials, not from `archipel key`",
        )?;
        if self.inner.engine.delete_access_key(id).await? {
            Ok(())
        } else {
            Err(VaultError::NoSuchKey { id: id.into() })
        }
    }

    /// Sets what key `id` may do in `bucket` (all false revokes).
    pub async fn grant_key(&self, id: &str, bucket: &str, perms: Perms) -> Result<()> {
        self.refuse_root(id, "it may already do everything")?;
        if !self.list_keys().await?.iter().any(|k| k.id == id) {
            return Err(VaultError::NoSuchKey { id: id.into() });
        }
        self.inner.engine.grant(id, bucket, perms.into()).await?;
        Ok(())
    }
}
