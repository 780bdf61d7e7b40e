//! S3 access keys and their per-bucket permissions. Secrets are sealed under the vault's master
//! key ([`archipel_codec::MasterKey::seal_secret`]) before they reach the metadata store, so a
//! copy of the metadata database alone does not yield working credentials.

use archipel_meta::{AccessKey, AccessKeyId, Permissions, UnixMillis};

use crate::engine::{Engine, bucket_name, meta_name, random};
use crate::error::{EngineError, Result};

/// A freshly created access key: the only time its secret is shown.
#[derive(Clone, PartialEq, Eq)]
pub struct NewAccessKey {
    /// The key id (20 characters, `AK…`).
    pub id: String,
    /// The secret (40 characters).
    pub secret: String,
}

impl std::fmt::Debug for NewAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewAccessKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// An access key as listed (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessKeyInfo {
    /// The key id.
    pub id: String,
    /// Who it acts for.
    pub owner: String,
    /// When it was created.
    pub created: UnixMillis,
    /// Whether it may authenticate.
    pub enabled: bool,
    /// Its grants: bucket and permissions.
    pub grants: Vec<(String, Permissions)>,
}

const ALNUM: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_CHARS: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn random_string<const N: usize>(alphabet: &[u8]) -> Result<String> {
    // Rejection sampling keeps the characters uniform.
    let mut out = String::with_capacity(N);
    let limit = 256 - 256 % alphabet.len();
    while out.len() < N {
        for b in random::<64>()? {
            if (b as usize) < limit && out.len() < N {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

fn key_id(id: &str) -> Result<AccessKeyId> {
    meta_name(AccessKeyId::new(id))
}

impl Engine {
    /// Creates an access key acting for `owner`, with no grants yet.
    pub async fn create_access_key(&self, owner: &str) -> Result<NewAccessKey> {
        let id = format!("AK{}", random_string::<18>(ALNUM)?);
        let secret = random_string::<40>(SECRET_CHARS)?;
        let sealed = self
            .inner
            .master
            .seal_secret(&id, secret.as_bytes(), random()?)?;
        self.inner
            .meta
            .create_access_key(&AccessKey {
                id: key_id(&id)?,
                sealed_secret: sealed,
                owner: owner.to_string(),
                created: UnixMillis::now(),
                enabled: true,
            })
            .await?;
        Ok(NewAccessKey { id, secret })
    }

    /// The secret of an enabled access key, for verifying signatures; `None` if the key is
    /// unknown or disabled.
    pub async fn access_key_secret(&self, id: &str) -> Result<Option<String>> {
        let Ok(kid) = AccessKeyId::new(id) else {
            return Ok(None);
        };
        let Some(key) = self.inner.meta.get_access_key(&kid).await? else {
            return Ok(None);
        };
        if !key.enabled {
            return Ok(None);
        }
        let secret = self.inner.master.open_secret(id, &key.sealed_secret)?;
        String::from_utf8(secret)
            .map(Some)
            .map_err(|_| EngineError::Internal(format!("access key {id}: secret is not text")))
    }

    /// Every access key with its grants.
    pub async fn list_access_keys(&self) -> Result<Vec<AccessKeyInfo>> {
        let mut out = Vec::new();
        for k in self.inner.meta.list_access_keys().await? {
            let grants = self.inner.meta.list_grants(&k.id).await?;
            out.push(AccessKeyInfo {
                id: k.id.to_string(),
                owner: k.owner,
                created: k.created,
                enabled: k.enabled,
                grants: grants
                    .into_iter()
                    .map(|g| (g.bucket.to_string(), g.permissions))
                    .collect(),
            });
        }
        Ok(out)
    }

    /// Deletes an access key and its grants; whether it existed.
    pub async fn delete_access_key(&self, id: &str) -> Result<bool> {
        Ok(self.inner.meta.delete_access_key(&key_id(id)?).await?)
    }

    /// Sets what key `id` may do in `bucket` (all false revokes).
    pub async fn grant(&self, id: &str, bucket: &str, permissions: Permissions) -> Result<()> {
        let kid = key_id(id)?;
        if self.inner.meta.get_access_key(&kid).await?.is_none() {
            return Err(EngineError::Invalid(format!("no access key {id}")));
        }
        let b = bucket_name(bucket)?;
        self.inner.policy(&b).await?; // the bucket exists
        self.inner.meta.set_grant(&kid, &b, permissions).await?;
        Ok(())
    }

    /// What key `id` may do in `bucket` (nothing if it has no grant there).
    pub async fn permissions(&self, id: &str, bucket: &str) -> Result<Permissions> {
        let Ok(kid) = AccessKeyId::new(id) else {
            return Ok(Permissions::default());
        };
        Ok(self
            .inner
            .meta
            .list_grants(&kid)
            .await?
            .into_iter()
            .find(|g| g.bucket.as_str() == bucket)
            .map(|g| g.permissions)
            .unwrap_or_default())
    }
}
