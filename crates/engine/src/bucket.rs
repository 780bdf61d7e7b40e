//! Typed bucket settings, kept in the bucket record (beside the policy): CORS rules and the
//! public-read flag today; versioning, object lock and lifecycle have room next to them.
//!
//! Encoded as JSON with a format version (`{"v":1,…}`, docs/format.md "Bucket settings");
//! unknown fields are kept by newer builds and ignored by this one, an unknown major version
//! is refused. An empty record means every setting at its default.

use serde::{Deserialize, Serialize};

use crate::engine::{Engine, bucket_name};
use crate::error::{EngineError, Result};

/// The settings format this build writes.
pub const SETTINGS_VERSION: u32 = 1;

/// One CORS rule, as `PutBucketCors` sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CorsRule {
    /// Allowed origins (`*` wildcards as S3 allows).
    pub origins: Vec<String>,
    /// Allowed methods.
    pub methods: Vec<String>,
    /// Allowed request headers.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Response headers exposed to the browser.
    #[serde(default)]
    pub expose: Vec<String>,
    /// Seconds a preflight answer may be cached.
    #[serde(default)]
    pub max_age: Option<i32>,
    /// The rule's id.
    #[serde(default)]
    pub id: Option<String>,
}

/// A bucket's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BucketSettings {
    /// The CORS rules (`None`: no CORS configuration).
    #[serde(default)]
    pub cors: Option<Vec<CorsRule>>,
    /// Whether anonymous clients may GET, HEAD and list the bucket.
    #[serde(default)]
    pub public_read: bool,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    v: u32,
    #[serde(flatten)]
    settings: BucketSettings,
}

impl BucketSettings {
    /// The bytes kept in the bucket record.
    pub fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&Stored {
            v: SETTINGS_VERSION,
            settings: self.clone(),
        })
        .map_err(|e| EngineError::Internal(format!("bucket settings: {e}")))
    }

    /// Reads what [`encode`](Self::encode) wrote (empty: the defaults).
    pub fn decode(bytes: &[u8]) -> Result<BucketSettings> {
        if bytes.is_empty() {
            return Ok(BucketSettings::default());
        }
        let s: Stored = serde_json::from_slice(bytes)
            .map_err(|e| EngineError::Internal(format!("bucket settings unreadable: {e}")))?;
        if s.v != SETTINGS_VERSION {
            return Err(EngineError::Internal(format!(
                "bucket settings of format {} (this build reads {SETTINGS_VERSION})",
                s.v
            )));
        }
        Ok(s.settings)
    }
}

impl Engine {
    /// A bucket's settings.
    pub async fn bucket_settings(&self, bucket: &str) -> Result<BucketSettings> {
        let name = bucket_name(bucket)?;
        let b =
            self.inner
                .meta
                .get_bucket(&name)
                .await?
                .ok_or_else(|| EngineError::NoSuchBucket {
                    bucket: bucket.to_string(),
                })?;
        BucketSettings::decode(&b.settings)
    }

    /// Changes a bucket's settings with `change` (read, changed, written back; two changes
    /// racing on one bucket from two gateways: the last write wins).
    pub async fn update_bucket_settings(
        &self,
        bucket: &str,
        change: impl FnOnce(&mut BucketSettings),
    ) -> Result<BucketSettings> {
        let mut s = self.bucket_settings(bucket).await?;
        change(&mut s);
        self.inner
            .meta
            .set_bucket_settings(&bucket_name(bucket)?, &s.encode()?)
            .await?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn settings_round_trip_and_default_when_empty() {
        assert_eq!(
            BucketSettings::decode(b"").unwrap(),
            BucketSettings::default()
        );
        let s = BucketSettings {
            cors: Some(vec![CorsRule {
                origins: vec!["*".into()],
                methods: vec!["GET".into()],
                ..CorsRule::default()
            }]),
            public_read: true,
        };
        let bytes = s.encode().unwrap();
        assert!(bytes.starts_with(br#"{"v":1"#));
        assert_eq!(BucketSettings::decode(&bytes).unwrap(), s);
        // A newer build's extra field is ignored; a newer major version is refused.
        let extra = br#"{"v":1,"public_read":true,"versioning":"Enabled"}"#;
        assert!(BucketSettings::decode(extra).unwrap().public_read);
        assert!(BucketSettings::decode(br#"{"v":2}"#).is_err());
        assert!(BucketSettings::decode(b"garbage").is_err());
    }
}
