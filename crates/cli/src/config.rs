//! `archipel.toml`: the configuration file, and the zero-configuration defaults.
//!
//! The file is parsed with serde into [`ConfigFile`] (every table denies unknown keys), then
//! checked and resolved into [`Settings`], which is all the rest of the binary sees. Every
//! error names the file, the line and the key: a typo'd key (`lisen`), a bad value
//! (`weight = "heavy"`), a missing `${ENV}` variable, a provider without the fields its kind
//! needs, or a policy the providers cannot satisfy.
//!
//! String values may contain `${NAME}`, replaced by the environment variable `NAME` (an unset
//! variable is an error naming it); `$${` stands for a literal `${`. Relative paths are
//! relative to the directory of the configuration file.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use archipel_engine::{PlacementRules, Policy, ProviderInfo, ProviderState};
use archipel_provider::{S3Config, WebDavConfig};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

pub(crate) use archipel_vault::{
    DEFAULT_ADMIN_LISTEN, DEFAULT_DATA_DIR, DEFAULT_LISTEN, DEFAULT_REGION, DEMO_PROVIDERS,
    KeySpec as KeySetting, Listen, MetaSpec as MetaSetting, ProviderBackend,
    ProviderSpec as ProviderSetting, VaultSpec as Settings, passphrase_from_env,
    valid_provider_name,
};

// ---------------------------------------------------------------------------------------------
// The file, as serde sees it.

/// A string value with `${NAME}` expanded from the environment.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Str(pub(crate) String);

impl fmt::Debug for Str {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: never print them.
        f.write_str("Str(…)")
    }
}

impl<'de> Deserialize<'de> for Str {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand_env(&raw, |name| std::env::var(name).ok())
            .map(Str)
            .map_err(D::Error::custom)
    }
}

/// Replaces every `${NAME}` in `raw` with `lookup(NAME)`; `$${` is a literal `${`.
pub(crate) fn expand_env(
    raw: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix("${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err(format!(
                    "unterminated `${{` in {raw:?} (write `$${{` for a literal `${{`)"
                ));
            };
            let name = &tail[..end];
            let valid = !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(format!(
                    "`${{{name}}}` is not a valid environment variable name (letters, digits, `_`)"
                ));
            }
            match lookup(name) {
                Some(v) => out.push_str(&v),
                None => {
                    return Err(format!(
                        "environment variable `{name}` is not set (referenced as `${{{name}}}`)"
                    ));
                }
            }
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A value parsed from a string (after `${NAME}` expansion) with [`FromStr`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parsed<T>(pub(crate) T);

impl<'de, T> Deserialize<'de> for Parsed<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Str::deserialize(d)?;
        s.0.parse::<T>()
            .map(Parsed)
            .map_err(|e| D::Error::custom(format!("{:?}: {e}", s.0)))
    }
}

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfigFile {
    #[serde(default)]
    server: ServerSection,
    meta: Option<MetaSection>,
    key: Option<KeySection>,
    #[serde(default, rename = "provider")]
    providers: Vec<ProviderSection>,
    policy: Option<PolicySection>,
    repair: Option<RepairSection>,
    scrub: Option<ScrubSection>,
    audit: Option<AuditSection>,
    gc: Option<GcSection>,
}

/// `[audit]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    interval_s: Option<u64>,
    max_mib_per_day: Option<u64>,
}

/// `[gc]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GcSection {
    delay_s: Option<u64>,
}

/// `[scrub]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScrubSection {
    interval_s: Option<u64>,
    max_mib_per_s: Option<u64>,
}

/// `[repair]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepairSection {
    interval_s: Option<u64>,
    inventory_interval_s: Option<u64>,
    concurrency: Option<usize>,
    max_mib_per_s: Option<u64>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: Option<Parsed<SocketAddr>>,
    admin_listen: Option<Parsed<Listen>>,
    data_dir: Option<Str>,
    region: Option<Str>,
    domain: Option<Str>,
    allow_sigv2: Option<bool>,
    max_requests: Option<usize>,
    root_access_key: Option<Str>,
    root_secret_key: Option<Str>,
}

/// `[meta]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MetaSection {
    url: Option<Str>,
    schema: Option<Str>,
    max_connections: Option<u32>,
}

/// `[key]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeySection {
    file: Option<Str>,
    passphrase: Option<Str>,
}

/// The kinds of provider a `[[provider]]` can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// A local directory.
    Dir,
    /// An S3-compatible bucket.
    S3,
    /// A WebDAV folder.
    Webdav,
}

impl Kind {
    /// As written in the file: `dir`, `s3` or `webdav`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::S3 => "s3",
            Kind::Webdav => "webdav",
        }
    }
}

/// A provider's lifecycle state as written in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StateName {
    Active,
    Draining,
    Retired,
}

/// `[[provider]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderSection {
    name: toml::Spanned<Str>,
    kind: Kind,
    // dir
    path: Option<Str>,
    // s3
    endpoint: Option<Str>,
    region: Option<Str>,
    bucket: Option<Str>,
    access_key: Option<Str>,
    secret_key: Option<Str>,
    path_style: Option<bool>,
    prefix: Option<Str>,
    // webdav
    url: Option<Str>,
    user: Option<Str>,
    password: Option<Str>,
    root: Option<Str>,
    // labels and tuning
    jurisdiction: Option<Str>,
    operator: Option<Str>,
    weight: Option<u32>,
    state: Option<StateName>,
    concurrency: Option<usize>,
    request_timeout_secs: Option<u64>,
    put_timeout_secs: Option<u64>,
    /// For tests and benchmarks only: delay every request to this provider by this much.
    inject_latency_ms: Option<u64>,
    /// What reading a GB out of it costs (exit plans).
    egress_price_per_gb: Option<f64>,
}

/// `[policy]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    data: Option<usize>,
    parity: Option<usize>,
    write_quorum: Option<usize>,
    max_per_operator: Option<usize>,
    max_per_jurisdiction: Option<usize>,
    allowed_jurisdictions: Option<Vec<Str>>,
}

/// Reads and checks the configuration file at `path`.
pub(crate) fn load(path: &Path) -> anyhow::Result<Settings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    parse(&text, path)
}

/// Parses and checks configuration `text` read from `path`.
pub(crate) fn parse(text: &str, path: &Path) -> anyhow::Result<Settings> {
    let shown = path.display().to_string();
    let file = parse_file(text, &shown)?;
    // Paths in the file are relative to its directory (none for a bare file name).
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    resolve(file, text, &shown, &base, path)
}

fn parse_const<T: FromStr>(s: &str) -> anyhow::Result<T>
where
    T::Err: fmt::Display,
{
    s.parse::<T>()
        .map_err(|e| anyhow::anyhow!("built-in default {s:?}: {e}"))
}

/// 1-based line and column of byte `offset` in `text`.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

/// Parses the file, turning serde's errors into "file line N: key `x`: what".
fn parse_file(text: &str, shown: &str) -> anyhow::Result<ConfigFile> {
    let located = |span: Option<std::ops::Range<usize>>| match span {
        Some(s) => {
            let (line, col) = line_col(text, s.start);
            format!("{shown} line {line}, column {col}")
        }
        None => shown.to_string(),
    };
    let de = toml::Deserializer::parse(text).map_err(|e| {
        anyhow::anyhow!(
            "{}: invalid TOML: {}",
            located(e.span()),
            e.message().trim()
        )
    })?;
    serde_path_to_error::deserialize::<_, ConfigFile>(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let message = inner.message().trim().to_string();
        anyhow::anyhow!("{}: {}", located(inner.span()), describe(&path, &message))
    })
}

/// "key `server.listen`: what" from serde_path_to_error's path and toml's message (array
/// indices are 0-based; the line number says which entry); for an unknown key, "unknown key
/// `server.lisen`, expected one of …".
fn describe(path: &str, message: &str) -> String {
    if path.is_empty() || path == "." {
        return message.to_string();
    }
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let rest = rest.split_once('`').map_or("", |(_, r)| r);
        return format!("unknown key `{path}`{rest}");
    }
    format!("key `{path}`: {message}")
}

/// Resolves a path from the file against the file's directory.
fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let p = PathBuf::from(p);
    if p.is_absolute() { p } else { base.join(p) }
}

fn resolve(
    file: ConfigFile,
    text: &str,
    shown: &str,
    base: &Path,
    path: &Path,
) -> anyhow::Result<Settings> {
    let s = file.server;
    let data_dir = resolve_path(
        base,
        s.data_dir
            .as_ref()
            .map_or(DEFAULT_DATA_DIR, |d| d.0.as_str()),
    );
    let root_credentials = match (s.root_access_key, s.root_secret_key) {
        (Some(a), Some(b)) => Some((a.0, Zeroizing::new(b.0))),
        (None, None) => None,
        _ => bail!(
            "{shown}: [server] root_access_key and root_secret_key go together: set both or neither"
        ),
    };
    let meta = match file
        .meta
        .and_then(|m| m.url.map(|u| (u, m.schema, m.max_connections)))
    {
        None => MetaSetting::Embedded(data_dir.join("meta")),
        Some((url, schema, max_connections)) => {
            if url.0.starts_with("postgres://") || url.0.starts_with("postgresql://") {
                MetaSetting::Postgres {
                    url: url.0,
                    schema: schema.map(|s| s.0),
                    max_connections,
                }
            } else {
                bail!(
                    "{shown}: [meta] url must start with postgres:// (omit it for the embedded store in the data directory)"
                );
            }
        }
    };
    let key = match file.key {
        None => KeySetting {
            file: None,
            passphrase: passphrase_from_env(),
            shares: Vec::new(),
        },
        Some(k) => {
            if k.file.is_some() && k.passphrase.is_some() {
                bail!("{shown}: [key] has both `file` and `passphrase`: choose one");
            }
            let file = k.file.map(|f| resolve_path(base, &f.0));
            let passphrase = match k.passphrase {
                Some(p) => Some(Zeroizing::new(p.0)),
                None if file.is_none() => passphrase_from_env(),
                None => None,
            };
            KeySetting {
                file,
                passphrase,
                shares: Vec::new(),
            }
        }
    };
    let providers = resolve_providers(file.providers, text, shown, base)?;
    let policy = match file.policy {
        None => None,
        Some(p) => Some(resolve_policy(p, &providers, text, shown)?),
    };
    Ok(Settings {
        config_path: Some(path.to_path_buf()),
        listen: s
            .listen
            .map_or_else(|| parse_const(DEFAULT_LISTEN), |l| Ok(l.0))?,
        admin_listen: match s.admin_listen {
            Some(a) => a.0,
            None => Listen::At(parse_const(DEFAULT_ADMIN_LISTEN)?),
        },
        data_dir,
        region: s.region.map_or_else(|| DEFAULT_REGION.to_string(), |r| r.0),
        domain: s.domain.map(|d| d.0),
        allow_sigv2: s.allow_sigv2.unwrap_or(false),
        max_requests: match s.max_requests {
            Some(0) => bail!("{shown}: [server] max_requests must be at least 1"),
            Some(n) => Some(n),
            None => None,
        },
        root_credentials,
        meta,
        key,
        providers,
        policy,
        repair: resolve_repair(file.repair.unwrap_or_default(), shown)?,
        scrub: {
            let sc = file.scrub.unwrap_or_default();
            let d = archipel_vault::ScrubSpec::default();
            archipel_vault::ScrubSpec {
                every: match sc.interval_s {
                    Some(0) => bail!("{shown}: [scrub] interval_s must be at least 1 (seconds)"),
                    Some(n) => Duration::from_secs(n),
                    None => d.every,
                },
                rate_bytes_per_s: match sc.max_mib_per_s {
                    Some(0) => bail!("{shown}: [scrub] max_mib_per_s must be at least 1"),
                    Some(n) => Some(n.saturating_mul(1024 * 1024)),
                    None => d.rate_bytes_per_s,
                },
            }
        },
        audit: {
            let a = file.audit.unwrap_or_default();
            let d = archipel_vault::AuditSpec::default();
            archipel_vault::AuditSpec {
                every: match a.interval_s {
                    Some(0) => bail!("{shown}: [audit] interval_s must be at least 1 (seconds)"),
                    Some(n) => Duration::from_secs(n),
                    None => d.every,
                },
                bytes_per_day: a
                    .max_mib_per_day
                    .map_or(d.bytes_per_day, |n| n.saturating_mul(1024 * 1024)),
            }
        },
        gc_delay: match file.gc.and_then(|g| g.delay_s) {
            Some(n) if n > 7 * 24 * 3600 => {
                bail!("{shown}: [gc] delay_s must be at most 604800 (7 days)")
            }
            Some(n) => Duration::from_secs(n),
            None => archipel_vault::spec::DEFAULT_GC_DELAY,
        },
    })
}

fn resolve_repair(r: RepairSection, shown: &str) -> anyhow::Result<archipel_vault::RepairSpec> {
    let d = archipel_vault::RepairSpec::default();
    let secs = |v: Option<u64>, name: &str, default: Duration| -> anyhow::Result<Duration> {
        match v {
            Some(0) => bail!("{shown}: [repair] {name} must be at least 1 (seconds)"),
            Some(n) => Ok(Duration::from_secs(n)),
            None => Ok(default),
        }
    };
    Ok(archipel_vault::RepairSpec {
        every: secs(r.interval_s, "interval_s", d.every)?,
        inventory_every: secs(
            r.inventory_interval_s,
            "inventory_interval_s",
            d.inventory_every,
        )?,
        concurrency: match r.concurrency {
            Some(0) => bail!("{shown}: [repair] concurrency must be at least 1"),
            Some(n) => n,
            None => d.concurrency,
        },
        rate_bytes_per_s: match r.max_mib_per_s {
            Some(0) => {
                bail!("{shown}: [repair] max_mib_per_s must be at least 1 (omit it for no limit)")
            }
            Some(n) => Some(n.saturating_mul(1024 * 1024)),
            None => None,
        },
    })
}

/// The line of the table header `[[provider]]` number `index` (0-based), if it can be found.
fn section_line(text: &str, header: &str, index: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            l.starts_with(header)
        })
        .nth(index)
        .map(|(i, _)| i + 1)
}

fn resolve_providers(
    sections: Vec<ProviderSection>,
    text: &str,
    shown: &str,
    base: &Path,
) -> anyhow::Result<Vec<ProviderSetting>> {
    if sections.is_empty() {
        bail!(
            "{shown}: no [[provider]]: declare at least one (`archipel init --provider-dir DIR …` writes an example)"
        );
    }
    let mut names = BTreeSet::new();
    let mut out = Vec::new();
    for p in sections {
        let line = line_col(text, p.name.span().start).0;
        let name = p.name.into_inner().0;
        let origin = format!("{shown} line {line}");
        let at = format!("{shown} line {line}: provider `{name}`");
        if !valid_provider_name(&name) {
            bail!(
                "{shown} line {line}: provider name {name:?} must be letters, digits, `-`, `_` or `.`"
            );
        }
        if !names.insert(name.clone()) {
            bail!("{at}: two providers are named `{name}`");
        }
        let need = |v: Option<Str>, key: &str| -> anyhow::Result<String> {
            match v {
                Some(s) if !s.0.is_empty() => Ok(s.0),
                _ => bail!("{at}: kind = \"{}\" needs `{key}`", p.kind.as_str()),
            }
        };
        let refuse = |present: bool, key: &str| -> anyhow::Result<()> {
            if present {
                bail!(
                    "{at}: `{key}` does not apply to kind = \"{}\"",
                    p.kind.as_str()
                );
            }
            Ok(())
        };
        let s3_keys = [
            (p.endpoint.is_some(), "endpoint"),
            (p.region.is_some(), "region"),
            (p.bucket.is_some(), "bucket"),
            (p.access_key.is_some(), "access_key"),
            (p.secret_key.is_some(), "secret_key"),
            (p.path_style.is_some(), "path_style"),
            (p.prefix.is_some(), "prefix"),
        ];
        let dav_keys = [
            (p.url.is_some(), "url"),
            (p.user.is_some(), "user"),
            (p.password.is_some(), "password"),
            (p.root.is_some(), "root"),
        ];
        let backend = match p.kind {
            Kind::Dir => {
                for (present, key) in s3_keys.iter().chain(&dav_keys) {
                    refuse(*present, key)?;
                }
                ProviderBackend::Dir(resolve_path(base, &need(p.path, "path")?))
            }
            Kind::S3 => {
                refuse(p.path.is_some(), "path")?;
                for (present, key) in &dav_keys {
                    refuse(*present, key)?;
                }
                ProviderBackend::S3(S3Config {
                    endpoint: need(p.endpoint, "endpoint")?,
                    region: p.region.map_or_else(|| DEFAULT_REGION.to_string(), |r| r.0),
                    bucket: need(p.bucket, "bucket")?,
                    access_key: need(p.access_key, "access_key")?,
                    secret_key: need(p.secret_key, "secret_key")?,
                    path_style: p.path_style.unwrap_or(true),
                    prefix: p.prefix.map(|s| s.0).unwrap_or_default(),
                })
            }
            Kind::Webdav => {
                refuse(p.path.is_some(), "path")?;
                for (present, key) in &s3_keys {
                    refuse(*present, key)?;
                }
                ProviderBackend::WebDav(WebDavConfig {
                    endpoint: need(p.url, "url")?,
                    username: p.user.map(|s| s.0).unwrap_or_default(),
                    password: p.password.map(|s| s.0).unwrap_or_default(),
                    root: p.root.map(|s| s.0).unwrap_or_default(),
                })
            }
        };
        let local = p.kind == Kind::Dir;
        let label = |v: Option<Str>, dflt: &str| v.map_or_else(|| dflt.to_string(), |s| s.0);
        let weight = p.weight.unwrap_or(1);
        if weight == 0 {
            bail!("{at}: weight must be at least 1");
        }
        let concurrency = p.concurrency.unwrap_or(if local { 64 } else { 32 });
        if concurrency == 0 {
            bail!("{at}: concurrency must be at least 1");
        }
        let secs = |v: Option<u64>, dflt: u64, key: &str| -> anyhow::Result<Duration> {
            match v.unwrap_or(dflt) {
                0 => bail!("{at}: {key} must be at least 1"),
                n => Ok(Duration::from_secs(n)),
            }
        };
        out.push(ProviderSetting {
            info: ProviderInfo {
                name: name.clone(),
                operator: label(p.operator, if local { "self" } else { "unknown" }),
                jurisdiction: label(p.jurisdiction, if local { "local" } else { "unknown" }),
                weight,
                state: match p.state.unwrap_or(StateName::Active) {
                    StateName::Active => ProviderState::Active,
                    StateName::Draining => ProviderState::Draining,
                    StateName::Retired => ProviderState::Retired,
                },
            },
            backend,
            origin: Some(origin),
            concurrency,
            request_timeout: secs(p.request_timeout_secs, 60, "request_timeout_secs")?,
            put_timeout: secs(p.put_timeout_secs, 6 * 3600, "put_timeout_secs")?,
            inject_latency: Duration::from_millis(p.inject_latency_ms.unwrap_or(0)),
            egress_price_per_gb: match p.egress_price_per_gb {
                None => None,
                Some(v) if v.is_finite() && v >= 0.0 => Some(v.to_string()),
                Some(v) => {
                    bail!("{at}: egress_price_per_gb must be a non-negative number, not {v}")
                }
            },
        });
    }
    Ok(out)
}

fn resolve_policy(
    p: PolicySection,
    providers: &[ProviderSetting],
    text: &str,
    shown: &str,
) -> anyhow::Result<Policy> {
    let at = match section_line(text, "[policy]", 0) {
        Some(line) => format!("{shown} line {line}: [policy]"),
        None => format!("{shown}: [policy]"),
    };
    let infos: Vec<ProviderInfo> = providers.iter().map(|p| p.info.clone()).collect();
    let active = infos
        .iter()
        .filter(|i| i.state == ProviderState::Active)
        .count();
    let mut policy = match (p.data, p.parity) {
        (None, None) => Policy::default_for(active).map_err(|e| anyhow::anyhow!("{at}: {e}"))?,
        (Some(k), Some(m)) => Policy::new(k, m).map_err(|e| anyhow::anyhow!("{at}: {e}"))?,
        _ => bail!("{at}: `data` and `parity` go together: set both or neither"),
    };
    if let Some(q) = p.write_quorum {
        policy.write_quorum = q;
    }
    policy.rules = PlacementRules {
        max_per_operator: p.max_per_operator,
        max_per_jurisdiction: p.max_per_jurisdiction,
        allowed_jurisdictions: p
            .allowed_jurisdictions
            .map(|v| v.into_iter().map(|s| s.0).collect()),
    };
    policy
        .validate(&infos)
        .map_err(|e| anyhow::anyhow!("{at}: {e}"))?;
    Ok(policy)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn env_expansion() {
        assert_eq!(expand_env("x${A}y", env).unwrap(), "xalphay");
        assert_eq!(expand_env("${A}${A}", env).unwrap(), "alphaalpha");
        assert_eq!(expand_env("$${A}", env).unwrap(), "${A}");
        assert_eq!(expand_env("a$b", env).unwrap(), "a$b");
        assert_eq!(expand_env("${EMPTY}", env).unwrap(), "");
        let e = expand_env("${NOPE}", env).unwrap_err();
        assert!(e.contains("`NOPE`"), "{e}");
        assert!(expand_env("${A", env).unwrap_err().contains("unterminated"));
        assert!(
            expand_env("${1A}", env)
                .unwrap_err()
                .contains("not a valid")
        );
    }

    #[test]
    fn line_and_column() {
        let t = "ab\ncd\nef";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 4), (2, 2));
        assert_eq!(line_col(t, 6), (3, 1));
    }

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:9100"
admin_listen = "off"
data_dir = "data"

[[provider]]
name = "a"
kind = "dir"
path = "/srv/a"

[[provider]]
name = "b"
kind = "dir"
path = "b"
jurisdiction = "FR"
operator = "acme"

[[provider]]
name = "c"
kind = "s3"
endpoint = "http://127.0.0.1:1"
bucket = "x"
access_key = "k"
secret_key = "s"

[policy]
data = 2
parity = 1
"#;

    #[test]
    fn a_good_file_resolves() {
        let s = parse(GOOD, Path::new("/etc/archipel/archipel.toml")).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:9100");
        assert_eq!(s.admin_listen, Listen::Off);
        assert_eq!(s.data_dir, PathBuf::from("/etc/archipel/data"));
        assert_eq!(s.providers.len(), 3);
        assert_eq!(s.providers[1].info.jurisdiction, "FR");
        assert_eq!(s.providers[2].info.operator, "unknown");
        assert_eq!(
            s.providers[2].origin.as_deref(),
            Some("/etc/archipel/archipel.toml line 20")
        );
        let p = s.policy.unwrap();
        assert_eq!((p.k, p.m, p.write_quorum), (2, 1, 3));
        assert_eq!(
            s.meta,
            MetaSetting::Embedded(PathBuf::from("/etc/archipel/data/meta"))
        );
    }

    fn err(text: &str) -> String {
        format!("{:#}", parse(text, Path::new("a.toml")).unwrap_err())
    }

    #[test]
    fn errors_name_the_key_and_line() {
        let e = err("[server]\nlisen = \"127.0.0.1:1\"\n");
        assert!(e.contains("line 2") && e.contains("lisen"), "{e}");
        let e = err(&GOOD.replace("path = \"b\"", "path = \"b\"\nweight = \"heavy\""));
        assert!(e.contains("weight") && e.contains("line 16"), "{e}");
        let e = err(&GOOD.replace("kind = \"s3\"", "kind = \"ftp\""));
        assert!(e.contains("ftp") && e.contains("line 21"), "{e}");
        let e = err(&GOOD.replace("bucket = \"x\"\n", ""));
        assert!(e.contains("`bucket`") && e.contains("provider `c`"), "{e}");
        let e = err(&GOOD.replace("parity = 1", "parity = 9"));
        assert!(e.contains("[policy]"), "{e}");
        let e = err(&GOOD.replace("127.0.0.1:9100", "localhost"));
        assert!(e.contains("server.listen") && e.contains("line 3"), "{e}");
    }
}
