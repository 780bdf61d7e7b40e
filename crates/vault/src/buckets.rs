//! Buckets as an operator manages them: list with policies and settings, create with a
//! policy, change a policy. Policies travel as their stored text (`Policy::encode`'s
//! `name=value` lines), so the admin API and the CLI carry exactly what the record holds.

use archipel_engine::{BucketSettings, Policy};
use serde::{Deserialize, Serialize};

use crate::error::{Result, VaultError};
use crate::open::Vault;

/// A bucket as listed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketView {
    /// Its name.
    pub name: String,
    /// Who created it.
    pub owner: String,
    /// When, Unix milliseconds.
    pub created_ms: i64,
    /// Its policy, as stored (`Policy::encode`).
    pub policy: String,
    /// Its settings (CORS, public read).
    pub settings: BucketSettings,
}

impl BucketView {
    /// The policy, decoded.
    pub fn decoded_policy(&self) -> Result<Policy> {
        Policy::decode(self.policy.as_bytes())
            .map_err(|e| VaultError::Invalid(format!("bucket {}: stored policy: {e}", self.name)))
    }
}

/// A policy as text.
pub fn policy_text(p: &Policy) -> String {
    String::from_utf8_lossy(&p.encode()).into_owned()
}

/// A policy from its text.
pub fn parse_policy(text: &str) -> Result<Policy> {
    Policy::decode(text.as_bytes()).map_err(|e| VaultError::Invalid(format!("policy: {e}")))
}

impl Vault {
    /// Every bucket with its policy and settings, in name order.
    pub async fn list_bucket_views(&self) -> Result<Vec<BucketView>> {
        let mut out = Vec::new();
        for b in self.inner.meta_dyn().list_buckets().await? {
            out.push(BucketView {
                name: b.name.to_string(),
                owner: b.owner,
                created_ms: b.created.0,
                policy: String::from_utf8_lossy(&b.policy).into_owned(),
                settings: BucketSettings::decode(&b.settings)?,
            });
        }
        Ok(out)
    }

    /// Creates a bucket owned by the root key, with `policy` (or the vault's default).
    pub async fn create_bucket(&self, name: &str, policy: Option<Policy>) -> Result<Policy> {
        Ok(self
            .inner
            .engine
            .create_bucket(name, &self.inner.credentials.access_key, policy)
            .await?)
    }
}
