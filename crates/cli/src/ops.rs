//! Operator commands that work on a vault directly, without the S3 endpoint: `bucket create`,
//! `bucket list`, `bucket policy`, `ls`, `put`, `get` (with a progress bar on a terminal for
//! large transfers), `rm`.
//!
//! They open the vault like `archipel serve` does (same `--config` / `--data-dir`), so with
//! the embedded metadata store they need the gateway stopped (the store is locked by one
//! process); with PostgreSQL they run beside it.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use archipel_engine::{Body, Policy, PutOptions};
use archipel_meta::{BucketName, MetaStoreExt};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::Control;
use crate::progress::Progress;
use crate::size;
use archipel_vault::Vault;

/// Which vault to open.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct VaultArgs {
    /// The configuration file; without it, the zero-configuration vault in --data-dir.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The data directory [default: ./archipel-data, or `[server] data_dir`].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) shares: KeyShareArgs,
}

impl VaultArgs {
    /// Opens an existing vault (never creates one), without probing the providers.
    pub(crate) async fn open(&self) -> anyhow::Result<Vault> {
        Ok(Vault::open_existing(&self.settings()?).await?)
    }

    /// The settings of `--config` (or zero configuration), with the command line's overrides
    /// and key shares.
    pub(crate) fn settings(&self) -> anyhow::Result<crate::config::Settings> {
        let mut s = crate::serve::settings(self.config.as_ref(), self.data_dir.as_ref())?;
        self.shares.apply(&mut s)?;
        Ok(s)
    }
}

/// Shares of the master key, instead of its key file or passphrase (`archipel key split`).
#[derive(clap::Args, Clone, Default)]
pub(crate) struct KeyShareArgs {
    /// A share of the master key (`archipel key split`), instead of the key file or
    /// passphrase; once per share. Other local users can read a command line: prefer
    /// --key-share-file, or --key-shares-stdin.
    #[arg(long = "key-share", value_name = "SHARE")]
    key_share: Vec<String>,
    /// A file with one key share (or several, one per line; other lines are ignored); once
    /// per file.
    #[arg(long = "key-share-file", value_name = "FILE")]
    key_share_file: Vec<PathBuf>,
    /// Read key shares from standard input, one per line, until an empty line or its end
    /// (each custodian types or pastes theirs).
    #[arg(long = "key-shares-stdin")]
    key_shares_stdin: bool,
}

impl std::fmt::Debug for KeyShareArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyShareArgs")
            .field("key_share", &self.key_share.len())
            .field("key_share_file", &self.key_share_file)
            .field("key_shares_stdin", &self.key_shares_stdin)
            .finish()
    }
}

impl KeyShareArgs {
    /// Puts the shares given into `settings.key.shares` (none given: nothing changes).
    pub(crate) fn apply(&self, settings: &mut crate::config::Settings) -> anyhow::Result<()> {
        use zeroize::Zeroizing;
        let mut shares: Vec<Zeroizing<String>> = self
            .key_share
            .iter()
            .map(|s| Zeroizing::new(s.clone()))
            .collect();
        let is_share = |l: &str| l.trim_start().starts_with(archipel_codec::keyshare::LABEL);
        for f in &self.key_share_file {
            let text = Zeroizing::new(
                std::fs::read_to_string(f)
                    .with_context(|| format!("cannot read the key share file {}", f.display()))?,
            );
            let before = shares.len();
            shares.extend(
                text.lines()
                    .filter(|l| is_share(l))
                    .map(|l| Zeroizing::new(l.trim().to_string())),
            );
            if shares.len() == before {
                anyhow::bail!(
                    "{} holds no key share (a line starting with `{}`)",
                    f.display(),
                    archipel_codec::keyshare::LABEL
                );
            }
        }
        if self.key_shares_stdin {
            use std::io::BufRead as _;
            eprintln!("key shares, one per line (an empty line ends):");
            for line in std::io::stdin().lock().lines() {
                let line = Zeroizing::new(line.context("reading key shares from stdin")?);
                if line.trim().is_empty() {
                    break;
                }
                shares.push(Zeroizing::new(line.trim().to_string()));
            }
        }
        if !shares.is_empty() {
            settings.key.shares = shares;
        }
        Ok(())
    }
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
pub(crate) fn fmt_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn policy_json(p: &Policy) -> serde_json::Value {
    json!({
        "data": p.k,
        "parity": p.m,
        "write_quorum": p.write_quorum,
        "max_per_operator": p.rules.max_per_operator,
        "max_per_jurisdiction": p.rules.max_per_jurisdiction,
        "allowed_jurisdictions": p.rules.allowed_jurisdictions,
    })
}

fn policy_text(p: &Policy) -> String {
    let mut s = format!("{}+{} (quorum {})", p.k, p.m, p.write_quorum);
    if let Some(n) = p.rules.max_per_operator {
        s.push_str(&format!(", ≤{n}/operator"));
    }
    if let Some(n) = p.rules.max_per_jurisdiction {
        s.push_str(&format!(", ≤{n}/jurisdiction"));
    }
    if let Some(j) = &p.rules.allowed_jurisdictions {
        s.push_str(&format!(
            ", in {}",
            j.iter().cloned().collect::<Vec<_>>().join("/")
        ));
    }
    s
}

/// Runs `f` on the opened vault and closes it whatever happens (the object commands `ls`,
/// `put`, `get`, `rm`: beside a running gateway, any S3 client does these through it).
pub(crate) async fn with_vault<T>(
    args: &VaultArgs,
    f: impl AsyncFnOnce(&Vault) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let vault = match args.open().await {
        Ok(v) => v,
        Err(e)
            if matches!(
                e.downcast_ref::<archipel_vault::VaultError>(),
                Some(archipel_vault::VaultError::InUse { .. })
            ) =>
        {
            return Err(e.context(
                "a gateway serves this vault: use its S3 endpoint for objects (the aws cli, \
                 rclone, …), or stop it to use `archipel ls|put|get|rm`",
            ));
        }
        Err(e) => return Err(e),
    };
    let r = f(&vault).await;
    vault.close().await;
    r
}

// ---------------------------------------------------------------------------------------------
// bucket

/// `archipel bucket …`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum BucketCmd {
    /// Create a bucket, with the vault's default policy or the one given.
    Create(BucketCreateArgs),
    /// List the buckets and their policies.
    List(BucketListArgs),
    /// Show a bucket's policy, or change it with the same flags as `create` (new writes follow
    /// it; objects already stored keep their shards).
    Policy(BucketPolicyArgs),
}

/// A bucket policy, from flags.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct PolicyFlags {
    /// Data shards per object [default: the vault's default for a new bucket, else unchanged].
    #[arg(long, requires = "parity")]
    data: Option<usize>,
    /// Parity shards per object (how many providers may be lost).
    #[arg(long, requires = "data")]
    parity: Option<usize>,
    /// Shards durable before a PUT is acknowledged [default: data + 1 when --data is given].
    #[arg(long)]
    write_quorum: Option<usize>,
    /// At most this many shards of one object per operator.
    #[arg(long)]
    max_per_operator: Option<usize>,
    /// At most this many shards of one object per jurisdiction.
    #[arg(long)]
    max_per_jurisdiction: Option<usize>,
    /// Only providers in these jurisdictions (comma-separated).
    #[arg(long, value_delimiter = ',')]
    allowed_jurisdictions: Vec<String>,
}

impl PolicyFlags {
    /// Whether any flag is given.
    fn any(&self) -> bool {
        self.data.is_some()
            || self.write_quorum.is_some()
            || self.max_per_operator.is_some()
            || self.max_per_jurisdiction.is_some()
            || !self.allowed_jurisdictions.is_empty()
    }

    /// `base` with the flags applied: `--data`/`--parity` replace the shape (and the write
    /// quorum, back to its default unless given), keeping `base`'s placement rules; each rule
    /// given replaces that rule.
    fn apply(&self, base: &Policy) -> anyhow::Result<Policy> {
        let mut policy = match (self.data, self.parity) {
            (Some(k), Some(m)) => Policy {
                rules: base.rules.clone(),
                ..Policy::new(k, m)?
            },
            _ => base.clone(),
        };
        if let Some(q) = self.write_quorum {
            policy.write_quorum = q;
        }
        if self.max_per_operator.is_some() {
            policy.rules.max_per_operator = self.max_per_operator;
        }
        if self.max_per_jurisdiction.is_some() {
            policy.rules.max_per_jurisdiction = self.max_per_jurisdiction;
        }
        if !self.allowed_jurisdictions.is_empty() {
            policy.rules.allowed_jurisdictions =
                Some(self.allowed_jurisdictions.iter().cloned().collect());
        }
        Ok(policy)
    }
}

/// `archipel bucket create`.
#[derive(clap::Args, Debug)]
pub(crate) struct BucketCreateArgs {
    /// The bucket name (S3 rules: 3–63 lowercase letters, digits, `.` and `-`).
    name: String,
    #[command(flatten)]
    policy: PolicyFlags,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel bucket policy`.
#[derive(clap::Args, Debug)]
pub(crate) struct BucketPolicyArgs {
    /// The bucket.
    name: String,
    #[command(flatten)]
    policy: PolicyFlags,
    /// Drop the placement rules (per operator, per jurisdiction, allowed jurisdictions)
    /// before applying the flags given.
    #[arg(long)]
    clear_rules: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel bucket list`.
#[derive(clap::Args, Debug)]
pub(crate) struct BucketListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// Runs `archipel bucket …`.
pub(crate) async fn bucket(cmd: BucketCmd) -> anyhow::Result<()> {
    match cmd {
        BucketCmd::Create(a) => {
            Control::with(&a.vault, async |c: &Control| {
                // Fresh flags start from the vault's default shape, without its rules.
                let base = match (a.policy.data, a.policy.parity) {
                    (Some(k), Some(m)) => Policy::new(k, m)?,
                    _ => c.default_policy().await?,
                };
                let policy = a.policy.apply(&base)?;
                let policy = c
                    .create_bucket(&a.name, &policy)
                    .await
                    .map_err(|e| anyhow!("cannot create bucket {:?}: {e}", a.name))?;
                if a.json {
                    println!(
                        "{}",
                        json!({"bucket": a.name, "policy": policy_json(&policy)})
                    );
                } else {
                    println!("created bucket {}: {}", a.name, policy_text(&policy));
                }
                Ok(())
            })
            .await
        }
        BucketCmd::List(a) => {
            Control::with(&a.vault, async |c: &Control| {
                let buckets = c.list_buckets().await?;
                let mut rows = Vec::new();
                for b in &buckets {
                    rows.push((b, b.decoded_policy()?));
                }
                if a.json {
                    let out: Vec<_> = rows
                        .iter()
                        .map(|(b, p)| {
                            json!({
                                "name": b.name,
                                "owner": b.owner,
                                "created": fmt_time(b.created_ms),
                                "policy": policy_json(p),
                            })
                        })
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else if rows.is_empty() {
                    println!("no buckets (create one with `archipel bucket create NAME`)");
                } else {
                    let w = rows
                        .iter()
                        .map(|(b, _)| b.name.len())
                        .max()
                        .unwrap_or(4)
                        .max(4);
                    println!("{:w$}  {:20}  POLICY", "NAME", "CREATED");
                    for (b, p) in &rows {
                        println!(
                            "{:w$}  {:20}  {}",
                            b.name,
                            fmt_time(b.created_ms),
                            policy_text(p)
                        );
                    }
                }
                Ok(())
            })
            .await
        }
        BucketCmd::Policy(a) => {
            Control::with(&a.vault, async |c: &Control| policy(c, &a).await).await
        }
    }
}

/// Runs `archipel bucket policy`.
async fn policy(c: &Control, a: &BucketPolicyArgs) -> anyhow::Result<()> {
    let current = c
        .bucket_policy(&a.name)
        .await
        .map_err(|e| anyhow!("bucket {:?}: {e}", a.name))?;
    if !a.policy.any() && !a.clear_rules {
        if a.json {
            println!(
                "{}",
                json!({"bucket": a.name, "policy": policy_json(&current)})
            );
        } else {
            println!("{}: {}", a.name, policy_text(&current));
        }
        return Ok(());
    }
    let mut base = current.clone();
    if a.clear_rules {
        base.rules = archipel_engine::PlacementRules::default();
    }
    let new = a.policy.apply(&base)?;
    c.set_bucket_policy(&a.name, &new)
        .await
        .map_err(|e| anyhow!("cannot set the policy of bucket {:?}: {e}", a.name))?;
    if a.json {
        println!(
            "{}",
            json!({
                "bucket": a.name,
                "policy": policy_json(&new),
                "previous": policy_json(&current),
            })
        );
    } else if new == current {
        println!("{}: {} (unchanged)", a.name, policy_text(&new));
    } else {
        println!(
            "{}: {} (was {}); new writes follow it, objects already stored keep their shards",
            a.name,
            policy_text(&new),
            policy_text(&current)
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// objects

/// Splits `bucket/key`.
fn split_target(s: &str) -> anyhow::Result<(&str, &str)> {
    let s = s.strip_prefix("s3://").unwrap_or(s);
    match s.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b, k)),
        _ => bail!("{s:?}: expected BUCKET/KEY"),
    }
}

/// `archipel ls`.
#[derive(clap::Args, Debug)]
pub(crate) struct LsArgs {
    /// `BUCKET` or `BUCKET/PREFIX`; without it, the buckets.
    target: Option<String>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// Runs `archipel ls`.
pub(crate) async fn ls(a: LsArgs) -> anyhow::Result<()> {
    let Some(target) = a.target.clone() else {
        return bucket(BucketCmd::List(BucketListArgs {
            json: a.json,
            vault: a.vault,
        }))
        .await;
    };
    with_vault(&a.vault, async |v: &Vault| {
        let t = target.strip_prefix("s3://").unwrap_or(&target);
        let (b, prefix) = t.split_once('/').unwrap_or((t, ""));
        let name = BucketName::s3(b).map_err(|e| anyhow!("{b:?}: {e}"))?;
        if v.engine().meta().get_bucket(&name).await?.is_none() {
            bail!("no bucket named {b:?}");
        }
        let objects = v.engine().meta().list_all(&name, prefix).await?;
        if a.json {
            let out: Vec<_> = objects
                .iter()
                .map(|o| {
                    json!({
                        "key": o.key.as_str(),
                        "size": o.size,
                        "etag": o.etag.as_str(),
                        "last_modified": fmt_time(o.last_modified.0),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        } else {
            for o in &objects {
                println!(
                    "{}  {:>10}  {}",
                    fmt_time(o.last_modified.0),
                    size::human(o.size),
                    o.key.as_str()
                );
            }
            let total: u64 = objects.iter().map(|o| o.size).sum();
            println!("{} objects, {}", objects.len(), size::human(total));
        }
        Ok(())
    })
    .await
}

/// `archipel put`.
#[derive(clap::Args, Debug)]
pub(crate) struct PutArgs {
    /// The file to upload (`-` for standard input).
    file: PathBuf,
    /// Where: `BUCKET/KEY`.
    target: String,
    /// The object's content type.
    #[arg(long)]
    content_type: Option<String>,
    /// Print JSON (and no progress bar).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// A body streamed from `reader` in 1 MiB pieces.
fn body_from<R: tokio::io::AsyncRead + Unpin + Send + 'static>(reader: R) -> Body {
    futures::stream::unfold(reader, |mut r| async move {
        let mut buf = vec![0u8; 1 << 20];
        let mut filled = 0;
        while filled < buf.len() {
            match r.read(&mut buf[filled..]).await {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) => return Some((Err(e), r)),
            }
        }
        if filled == 0 {
            return None;
        }
        buf.truncate(filled);
        Some((Ok(Bytes::from(buf)), r))
    })
    .boxed()
}

/// Runs `archipel put`.
pub(crate) async fn put(a: PutArgs) -> anyhow::Result<()> {
    let (bucket, key) = split_target(&a.target)?;
    let (body, len) = if a.file.as_os_str() == "-" {
        (body_from(tokio::io::stdin()), None)
    } else {
        let f = tokio::fs::File::open(&a.file)
            .await
            .with_context(|| format!("cannot open {}", a.file.display()))?;
        let len = f.metadata().await?.len();
        (body_from(f), Some(len))
    };
    with_vault(&a.vault, async |v: &Vault| {
        let started = Instant::now();
        let opts = PutOptions {
            content_type: a.content_type.clone(),
            expected_len: len,
            ..PutOptions::default()
        };
        let progress = Progress::new(&format!("put {bucket}/{key}"), len, a.json);
        let tick = progress.tick();
        let body = body
            .inspect(move |piece| {
                if let Ok(b) = piece {
                    tick.add(b.len() as u64);
                }
            })
            .boxed();
        let out = v
            .engine()
            .put_object(bucket, key, body, opts)
            .await
            .map_err(|e| anyhow!("cannot put {bucket}/{key}: {e}"))?;
        drop(progress);
        let secs = started.elapsed().as_secs_f64();
        if a.json {
            println!(
                "{}",
                json!({
                    "bucket": bucket,
                    "key": key,
                    "size": out.size,
                    "etag": out.etag,
                    "seconds": secs,
                    "unwritten_shards": out.unwritten_shards,
                })
            );
            return Ok(());
        }
        println!(
            "put {bucket}/{key}: {} in {secs:.2} s, etag {}{}",
            size::human(out.size),
            out.etag,
            if out.unwritten_shards > 0 {
                format!(
                    " ({} shards could not be written: the object is stored with less redundancy)",
                    out.unwritten_shards
                )
            } else {
                String::new()
            }
        );
        Ok(())
    })
    .await
}

/// `archipel get`.
#[derive(clap::Args, Debug)]
pub(crate) struct GetArgs {
    /// What: `BUCKET/KEY`.
    target: String,
    /// Where to write it (`-` for standard output).
    file: PathBuf,
    /// Print the summary as JSON (on standard error when the object goes to standard output),
    /// and no progress bar.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// Runs `archipel get`.
pub(crate) async fn get(a: GetArgs) -> anyhow::Result<()> {
    let (bucket, key) = split_target(&a.target)?;
    with_vault(&a.vault, async |v: &Vault| {
        let started = Instant::now();
        let mut out = v
            .engine()
            .get_object(bucket, key, None)
            .await
            .map_err(|e| anyhow!("cannot get {bucket}/{key}: {e}"))?;
        let to_stdout = a.file.as_os_str() == "-";
        let tmp = a.file.with_extension("archipel-part");
        let mut sink: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = if to_stdout {
            Box::new(tokio::io::stdout())
        } else {
            Box::new(
                tokio::fs::File::create(&tmp)
                    .await
                    .with_context(|| format!("cannot create {}", tmp.display()))?,
            )
        };
        let mut written = 0u64;
        let progress = Progress::new(
            &format!("get {bucket}/{key}"),
            Some(out.range.end - out.range.start),
            a.json,
        );
        let tick = progress.tick();
        let result: anyhow::Result<()> = async {
            while let Some(piece) = out.body.next().await {
                let piece = piece.map_err(|e| anyhow!("reading {bucket}/{key}: {e}"))?;
                sink.write_all(&piece).await?;
                written += piece.len() as u64;
                tick.add(piece.len() as u64);
            }
            sink.flush().await?;
            Ok(())
        }
        .await;
        drop(progress);
        drop(sink);
        if let Err(e) = result {
            if !to_stdout {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
            return Err(e);
        }
        if !to_stdout {
            tokio::fs::rename(&tmp, &a.file)
                .await
                .with_context(|| format!("cannot create {}", a.file.display()))?;
        }
        let secs = started.elapsed().as_secs_f64();
        if a.json {
            let summary = json!({
                "bucket": bucket,
                "key": key,
                "size": written,
                "etag": out.info.etag,
                "seconds": secs,
            });
            if to_stdout {
                eprintln!("{summary}");
            } else {
                println!("{summary}");
            }
        } else {
            eprintln!(
                "got {bucket}/{key}: {} in {secs:.2} s",
                size::human(written)
            );
        }
        Ok(())
    })
    .await
}

/// `archipel rm`.
#[derive(clap::Args, Debug)]
pub(crate) struct RmArgs {
    /// What: `BUCKET/KEY`.
    target: String,
    #[command(flatten)]
    vault: VaultArgs,
}

/// Runs `archipel rm`.
pub(crate) async fn rm(a: RmArgs) -> anyhow::Result<()> {
    let (bucket, key) = split_target(&a.target)?;
    with_vault(&a.vault, async |v: &Vault| {
        match v
            .engine()
            .delete_object(bucket, key, &archipel_meta::DeleteCondition::Unconditional)
            .await
            .map_err(|e| anyhow!("cannot delete {bucket}/{key}: {e}"))?
        {
            Some(_) => println!("deleted {bucket}/{key}"),
            None => println!("{bucket}/{key} did not exist"),
        }
        Ok(())
    })
    .await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn times_format_as_utc() {
        assert_eq!(fmt_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt_time(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(fmt_time(1_700_000_000_123), "2023-11-14T22:13:20Z");
    }

    #[test]
    fn targets_split() {
        assert_eq!(split_target("b/k/x").unwrap(), ("b", "k/x"));
        assert_eq!(split_target("s3://b/k").unwrap(), ("b", "k"));
        assert!(split_target("b").is_err());
        assert!(split_target("b/").is_err());
    }
}
