//! [`VaultSpec`]: everything it takes to open a vault and serve it, typed and checked. The
//! CLI parses `archipel.toml` into it (or takes [`VaultSpec::zero_config`]); the library never
//! reads a configuration file.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use archipel_engine::{Policy, ProviderInfo, ProviderState};
use archipel_provider::{S3Config, WebDavConfig};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::{Result, VaultError};

/// Where `archipel serve` listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9000";
/// Where the admin endpoints listen unless told otherwise.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9001";
/// The data directory unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "archipel-data";
/// The region clients sign for unless told otherwise.
pub const DEFAULT_REGION: &str = "us-east-1";
/// How many local-directory providers the zero-configuration vault gets.
pub const DEMO_PROVIDERS: usize = 6;

/// A listen address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    /// Not listening.
    Off,
    /// Listening on this address.
    At(SocketAddr),
}

impl FromStr for Listen {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        s.parse::<SocketAddr>().map(Listen::At).map_err(|_| {
            format!("{s:?} is not a listen address (like 127.0.0.1:9000 or [::1]:9000) or `off`")
        })
    }
}

/// Where the metadata lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetaSpec {
    /// Embedded SQLite in this directory.
    Embedded(PathBuf),
    /// PostgreSQL.
    Postgres {
        /// `postgres://…` (may hold a password: never printed).
        url: String,
        /// Schema to use instead of the default search path.
        schema: Option<String>,
        /// Pool size.
        max_connections: Option<u32>,
    },
}

/// Where the master key comes from.
#[derive(Clone, Default)]
pub struct KeySpec {
    /// The key file, when configured explicitly.
    pub file: Option<PathBuf>,
    /// The passphrase (from the file or `ARCHIPEL_PASSPHRASE`).
    pub passphrase: Option<Zeroizing<String>>,
    /// Shares of the master key (`archipel key split`), as typed: when given, they open the
    /// vault instead of the key file or passphrase.
    pub shares: Vec<Zeroizing<String>>,
}

impl fmt::Debug for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySpec")
            .field("file", &self.file)
            .field("passphrase", &self.passphrase.as_ref().map(|_| "…"))
            .field("shares", &self.shares.len())
            .finish()
    }
}

/// How to reach a provider.
#[derive(Clone, PartialEq, Eq)]
pub enum ProviderBackend {
    /// A local directory.
    Dir(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Config),
    /// A WebDAV folder.
    WebDav(WebDavConfig),
}

impl fmt::Debug for ProviderBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials stay out.
        write!(f, "{} at {}", self.kind(), self.location())
    }
}

impl ProviderBackend {
    /// `dir`, `s3` or `webdav`.
    pub fn kind(&self) -> &'static str {
        match self {
            ProviderBackend::Dir(_) => "dir",
            ProviderBackend::S3(_) => "s3",
            ProviderBackend::WebDav(_) => "webdav",
        }
    }

    /// Where it is, for humans (no credentials).
    pub fn location(&self) -> String {
        match self {
            ProviderBackend::Dir(p) => p.display().to_string(),
            ProviderBackend::S3(c) => format!("{}/{}", c.endpoint.trim_end_matches('/'), c.bucket),
            ProviderBackend::WebDav(c) => {
                format!(
                    "{}/{}",
                    c.endpoint.trim_end_matches('/'),
                    c.root.trim_matches('/')
                )
            }
        }
    }
}

/// One provider, resolved.
#[derive(Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    /// Placement labels (name, operator, jurisdiction, weight, state).
    pub info: ProviderInfo,
    /// How to reach it.
    pub backend: ProviderBackend,
    /// Where it is declared ("archipel.toml line 12"), for error messages.
    pub origin: Option<String>,
    /// Concurrent requests at most.
    pub concurrency: usize,
    /// Deadline of one request (and of each gap in a read).
    pub request_timeout: Duration,
    /// Deadline of one whole put.
    pub put_timeout: Duration,
    /// Extra delay on every request (tests and benchmarks only; zero otherwise).
    pub inject_latency: Duration,
    /// What reading a GB (10^9 bytes) out of it costs, in the operator's currency: a
    /// non-negative decimal number as written (`0.09`), for exit plans.
    pub egress_price_per_gb: Option<String>,
}

impl fmt::Debug for ProviderSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSpec")
            .field("name", &self.info.name)
            .field("kind", &self.backend.kind())
            .field("location", &self.backend.location())
            .finish_non_exhaustive()
    }
}

/// Checks an egress price as written: a finite, non-negative decimal number.
pub fn valid_egress_price(text: &str) -> std::result::Result<String, String> {
    let t = text.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(t.to_string()),
        _ => Err(format!(
            "egress_price_per_gb must be a non-negative number (e.g. 0.09), not {text:?}"
        )),
    }
}

impl ProviderSpec {
    /// `provider `name`` plus where it is declared, for messages.
    pub fn describe(&self) -> String {
        match &self.origin {
            Some(o) => format!("provider `{}` ({o})", self.info.name),
            None => format!("provider `{}`", self.info.name),
        }
    }

    /// A local-directory provider with the default limits and labels (`operator = "self"`,
    /// `jurisdiction = "local"`).
    pub fn dir(name: &str, path: PathBuf, origin: Option<String>) -> ProviderSpec {
        ProviderSpec {
            info: ProviderInfo {
                name: name.to_string(),
                operator: "self".into(),
                jurisdiction: "local".into(),
                weight: 1,
                state: ProviderState::Active,
            },
            backend: ProviderBackend::Dir(path),
            origin,
            concurrency: 64,
            request_timeout: Duration::from_secs(60),
            put_timeout: Duration::from_secs(6 * 3600),
            inject_latency: Duration::ZERO,
            egress_price_per_gb: None,
        }
    }

    /// The settings that say where and how the provider is reached, as they differ from
    /// `other`'s (labels and state excluded): the names of the fields, for messages.
    pub fn connection_differs(&self, other: &ProviderSpec) -> Vec<&'static str> {
        let mut out = Vec::new();
        let same_dir = match (&self.backend, &other.backend) {
            (ProviderBackend::Dir(a), ProviderBackend::Dir(b)) => {
                std::path::absolute(a).ok() == std::path::absolute(b).ok()
            }
            _ => false,
        };
        if !same_dir && self.backend != other.backend {
            out.push(match self.backend {
                ProviderBackend::Dir(_) => "path",
                _ => "endpoint or credentials",
            });
        }
        if self.info.operator != other.info.operator {
            out.push("operator");
        }
        if self.info.jurisdiction != other.info.jurisdiction {
            out.push("jurisdiction");
        }
        if self.info.weight != other.info.weight {
            out.push("weight");
        }
        if self.info.state != other.info.state {
            out.push("state");
        }
        out
    }
}

/// Whether `name` may name a provider: letters, digits, `-`, `_` or `.`, not empty.
pub fn valid_provider_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Everything `archipel serve` and the operator commands need, resolved.
#[derive(Clone)]
pub struct VaultSpec {
    /// The configuration file, if any (`None` = zero configuration).
    pub config_path: Option<PathBuf>,
    /// The S3 listener.
    pub listen: SocketAddr,
    /// The admin listener.
    pub admin_listen: Listen,
    /// The vault's data directory (key, credentials, vault header, embedded metadata).
    pub data_dir: PathBuf,
    /// The region clients sign for.
    pub region: String,
    /// Domain for virtual-hosted-style requests.
    pub domain: Option<String>,
    /// Accept SigV2-signed requests (`[server] allow_sigv2`; off: SigV4 only).
    pub allow_sigv2: bool,
    /// Requests served at once (`[server] max_requests`; `None`: the gateway's default).
    pub max_requests: Option<usize>,
    /// Root credentials from the file (else the environment, else the data directory).
    pub root_credentials: Option<(String, Zeroizing<String>)>,
    /// The metadata store.
    pub meta: MetaSpec,
    /// The master key's source.
    pub key: KeySpec,
    /// The providers.
    pub providers: Vec<ProviderSpec>,
    /// The default policy for new buckets (`None` = [`Policy::default_for`] the providers).
    pub policy: Option<Policy>,
    /// How the repair service runs (`[repair]`).
    pub repair: RepairSpec,
    /// How the scheduled scrub runs (`[scrub]`).
    pub scrub: ScrubSpec,
    /// How the scheduled audits run (`[audit]`).
    pub audit: AuditSpec,
    /// How long a superseded shard is kept before the GC deletes it (`[gc] delay_s`; 60 s):
    /// a read that began before an overwrite, delete or move still finds its shards.
    pub gc_delay: std::time::Duration,
}

/// The GC delay without `[gc] delay_s`.
pub const DEFAULT_GC_DELAY: std::time::Duration = std::time::Duration::from_secs(60);

/// `[scrub]`: the periodic full verification of every shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScrubSpec {
    /// A full scrub starts when the last one ended this long ago (`interval_s`; 7 days).
    pub every: std::time::Duration,
    /// Its rate in object bytes per second (`max_mib_per_s`; 50 MiB/s).
    pub rate_bytes_per_s: Option<u64>,
}

impl Default for ScrubSpec {
    fn default() -> Self {
        ScrubSpec {
            every: std::time::Duration::from_secs(7 * 24 * 3600),
            rate_bytes_per_s: Some(50 * 1024 * 1024),
        }
    }
}

/// `[audit]`: sampled proof that each provider still holds its shards (`crate::audit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditSpec {
    /// Bytes each provider may be asked to serve for audits per UTC day (`max_mib_per_day`;
    /// 1 GiB; 0 turns the scheduled audits off — `archipel provider audit` still works).
    pub bytes_per_day: u64,
    /// An audit of every provider starts when the last one ended this long ago
    /// (`interval_s`; 1 day).
    pub every: std::time::Duration,
}

impl Default for AuditSpec {
    fn default() -> Self {
        AuditSpec {
            bytes_per_day: 1024 * 1024 * 1024,
            every: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

/// `[repair]`: the always-on repair of lost redundancy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RepairSpec {
    /// Between two rounds over the repair queue (`interval_s`).
    pub every: std::time::Duration,
    /// Between two inventories of what each provider holds (`inventory_interval_s`).
    pub inventory_every: std::time::Duration,
    /// Object versions repaired at once (`concurrency`).
    pub concurrency: usize,
    /// Rebuilt bytes written per second at most (`max_mib_per_s`; `None`: unlimited).
    pub rate_bytes_per_s: Option<u64>,
}

impl Default for RepairSpec {
    fn default() -> Self {
        RepairSpec {
            every: std::time::Duration::from_secs(30),
            inventory_every: std::time::Duration::from_secs(3600),
            concurrency: 4,
            rate_bytes_per_s: None,
        }
    }
}

impl fmt::Debug for VaultSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials and the metadata URL (which may hold a password) stay out.
        f.debug_struct("VaultSpec")
            .field("config_path", &self.config_path)
            .field("listen", &self.listen)
            .field("admin_listen", &self.admin_listen)
            .field("data_dir", &self.data_dir)
            .field("region", &self.region)
            .field("key", &self.key)
            .field("providers", &self.providers)
            .finish_non_exhaustive()
    }
}

fn parse_const<T: FromStr>(s: &str) -> Result<T>
where
    T::Err: fmt::Display,
{
    s.parse::<T>()
        .map_err(|e| VaultError::Internal(format!("built-in default {s:?}: {e}")))
}

/// `ARCHIPEL_PASSPHRASE`, when set and non-empty.
pub fn passphrase_from_env() -> Option<Zeroizing<String>> {
    std::env::var("ARCHIPEL_PASSPHRASE")
        .ok()
        .filter(|p| !p.is_empty())
        .map(Zeroizing::new)
}

impl VaultSpec {
    /// Whether this is the zero-configuration demo vault.
    pub fn is_demo(&self) -> bool {
        self.config_path.is_none()
    }

    /// The zero-configuration vault in `data_dir`: embedded metadata, six local directories.
    pub fn zero_config(data_dir: &Path) -> Result<VaultSpec> {
        let providers = (1..=DEMO_PROVIDERS)
            .map(|i| {
                ProviderSpec::dir(
                    &format!("p{i}"),
                    data_dir.join("providers").join(format!("p{i}")),
                    None,
                )
            })
            .collect();
        Ok(VaultSpec {
            config_path: None,
            listen: parse_const(DEFAULT_LISTEN)?,
            admin_listen: Listen::At(parse_const(DEFAULT_ADMIN_LISTEN)?),
            data_dir: data_dir.to_path_buf(),
            region: DEFAULT_REGION.into(),
            domain: None,
            allow_sigv2: false,
            max_requests: None,
            root_credentials: None,
            meta: MetaSpec::Embedded(data_dir.join("meta")),
            key: KeySpec::default(),
            providers,
            policy: None,
            repair: RepairSpec::default(),
            scrub: ScrubSpec::default(),
            audit: AuditSpec::default(),
            gc_delay: DEFAULT_GC_DELAY,
        })
    }

    /// Applies command-line overrides. A `--listen` without `--admin-listen`, over the default
    /// admin address, moves the admin listener next to it (same IP, port + 1; any free port
    /// when the S3 port is 0 or the last one), so that gateways started with different S3
    /// ports do not collide on the default admin port.
    pub fn override_with(&mut self, listen: Option<SocketAddr>, admin_listen: Option<Listen>) {
        if let Some(l) = listen {
            self.listen = l;
            let default_admin = parse_const::<SocketAddr>(DEFAULT_ADMIN_LISTEN).ok();
            if admin_listen.is_none()
                && matches!(self.admin_listen, Listen::At(a) if Some(a) == default_admin)
            {
                let port = match l.port() {
                    0 | u16::MAX => 0,
                    p => p + 1,
                };
                self.admin_listen = Listen::At(SocketAddr::new(l.ip(), port));
            }
        }
        if let Some(a) = admin_listen {
            self.admin_listen = a;
        }
    }
}

/// A provider's connection settings as the registry keeps them (sealed under the master key
/// before they reach the metadata store; see `docs/format.md`, "Provider registry").
/// Also the connection part of [`NewProvider`](crate::registry::NewProvider) in the admin API.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[allow(missing_docs)] // the fields are those of `[[provider]]` in archipel.toml
pub enum StoredBackend {
    /// A local directory.
    Dir { path: PathBuf },
    /// An S3-compatible bucket.
    S3 {
        endpoint: String,
        #[serde(default = "default_region")]
        region: String,
        bucket: String,
        access_key: String,
        secret_key: String,
        #[serde(default)]
        path_style: bool,
        #[serde(default)]
        prefix: String,
    },
    /// A WebDAV folder.
    Webdav {
        endpoint: String,
        #[serde(default)]
        username: String,
        #[serde(default)]
        password: String,
        #[serde(default)]
        root: String,
    },
}

fn default_region() -> String {
    DEFAULT_REGION.to_string()
}

impl fmt::Debug for StoredBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials stay out.
        match self {
            StoredBackend::Dir { path } => write!(f, "dir at {}", path.display()),
            StoredBackend::S3 {
                endpoint, bucket, ..
            } => write!(f, "s3 at {endpoint}/{bucket}"),
            StoredBackend::Webdav { endpoint, root, .. } => {
                write!(f, "webdav at {endpoint}/{root}")
            }
        }
    }
}

/// A provider as the registry keeps it: connection, limits (labels and state are columns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredProvider {
    pub(crate) backend: StoredBackend,
    pub(crate) concurrency: usize,
    pub(crate) request_timeout_ms: u64,
    pub(crate) put_timeout_ms: u64,
    #[serde(default)]
    pub(crate) inject_latency_ms: u64,
}

impl StoredProvider {
    pub(crate) fn from_spec(s: &ProviderSpec) -> StoredProvider {
        let backend = match &s.backend {
            ProviderBackend::Dir(p) => StoredBackend::Dir { path: p.clone() },
            ProviderBackend::S3(c) => StoredBackend::S3 {
                endpoint: c.endpoint.clone(),
                region: c.region.clone(),
                bucket: c.bucket.clone(),
                access_key: c.access_key.clone(),
                secret_key: c.secret_key.clone(),
                path_style: c.path_style,
                prefix: c.prefix.clone(),
            },
            ProviderBackend::WebDav(c) => StoredBackend::Webdav {
                endpoint: c.endpoint.clone(),
                username: c.username.clone(),
                password: c.password.clone(),
                root: c.root.clone(),
            },
        };
        StoredProvider {
            backend,
            concurrency: s.concurrency,
            request_timeout_ms: s.request_timeout.as_millis() as u64,
            put_timeout_ms: s.put_timeout.as_millis() as u64,
            inject_latency_ms: s.inject_latency.as_millis() as u64,
        }
    }

    pub(crate) fn into_spec(self, info: ProviderInfo, origin: Option<String>) -> ProviderSpec {
        let backend = match self.backend {
            StoredBackend::Dir { path } => ProviderBackend::Dir(path),
            StoredBackend::S3 {
                endpoint,
                region,
                bucket,
                access_key,
                secret_key,
                path_style,
                prefix,
            } => ProviderBackend::S3(S3Config {
                endpoint,
                region,
                bucket,
                access_key,
                secret_key,
                path_style,
                prefix,
            }),
            StoredBackend::Webdav {
                endpoint,
                username,
                password,
                root,
            } => ProviderBackend::WebDav(WebDavConfig {
                endpoint,
                username,
                password,
                root,
            }),
        };
        ProviderSpec {
            info,
            backend,
            origin,
            concurrency: self.concurrency.max(1),
            request_timeout: Duration::from_millis(self.request_timeout_ms.max(1)),
            put_timeout: Duration::from_millis(self.put_timeout_ms.max(1)),
            inject_latency: Duration::from_millis(self.inject_latency_ms),
            egress_price_per_gb: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_listen_override_moves_the_default_admin_port_next_to_it() {
        let dir = std::path::Path::new("/tmp/x");
        let mut s = VaultSpec::zero_config(dir).unwrap();
        s.override_with(Some("127.0.0.1:9100".parse().unwrap()), None);
        assert_eq!(
            s.admin_listen,
            Listen::At("127.0.0.1:9101".parse().unwrap())
        );
        let mut s = VaultSpec::zero_config(dir).unwrap();
        s.override_with(Some("[::1]:0".parse().unwrap()), None);
        assert_eq!(s.admin_listen, Listen::At("[::1]:0".parse().unwrap()));
        // An explicit admin address wins, and a configured (non-default) one stays.
        let mut s = VaultSpec::zero_config(dir).unwrap();
        s.override_with(Some("127.0.0.1:9100".parse().unwrap()), Some(Listen::Off));
        assert_eq!(s.admin_listen, Listen::Off);
        let mut s = VaultSpec::zero_config(dir).unwrap();
        s.admin_listen = Listen::At("127.0.0.1:7000".parse().unwrap());
        s.override_with(Some("127.0.0.1:9100".parse().unwrap()), None);
        assert_eq!(
            s.admin_listen,
            Listen::At("127.0.0.1:7000".parse().unwrap())
        );
    }
}
