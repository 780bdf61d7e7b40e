//! `archipel init`: writes a commented `archipel.toml` from flags, checked by the same parser
//! `archipel serve --config` uses, so what it writes always loads.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use archipel_engine::Policy;

use crate::config::{self, Listen};

/// `archipel init` options.
#[derive(clap::Args, Debug)]
pub(crate) struct InitArgs {
    /// Where to write the configuration.
    #[arg(
        long,
        short = 'o',
        value_name = "FILE",
        default_value = "archipel.toml"
    )]
    output: PathBuf,
    /// Replace the file if it exists.
    #[arg(long)]
    force: bool,
    /// A local-directory provider (repeat for each; ideally each on its own disk).
    /// Without any, six example directories under the data directory are written.
    #[arg(long = "provider-dir", value_name = "DIR")]
    provider_dirs: Vec<PathBuf>,
    /// The data directory [default: ./archipel-data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// The S3 listen address.
    #[arg(long, value_name = "ADDR", default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The admin listen address, or `off`.
    #[arg(long, value_name = "ADDR|off", default_value = config::DEFAULT_ADMIN_LISTEN, value_parser = parse_listen)]
    admin_listen: Listen,
    /// The region clients sign for.
    #[arg(long, default_value = config::DEFAULT_REGION)]
    region: String,
    /// A PostgreSQL metadata store (`postgres://…`); default: embedded in the data directory.
    #[arg(long, value_name = "URL")]
    meta_url: Option<String>,
    /// A key file for the master key (created on first start if missing); default: `key` in
    /// the data directory, or the passphrase in ARCHIPEL_PASSPHRASE when set.
    #[arg(long, value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Data shards per object [default: chosen from the number of providers].
    #[arg(long, requires = "parity")]
    data: Option<usize>,
    /// Parity shards per object: how many providers may be lost.
    #[arg(long, requires = "data")]
    parity: Option<usize>,
}

fn parse_listen(s: &str) -> Result<Listen, String> {
    s.parse()
}

/// A TOML basic string.
pub(crate) fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A path as the configuration should hold it: paths in the file are relative to the file's
/// directory, so a relative path given on the command line (relative to the current
/// directory) is made absolute unless the file is written to the current directory.
pub(crate) fn config_path(p: &Path, output_dir_is_cwd: bool, cwd: &Path) -> String {
    if p.is_absolute() || output_dir_is_cwd {
        p.display().to_string()
    } else {
        cwd.join(p).display().to_string()
    }
}

/// A provider name from a directory's last component.
fn name_for(dir: &Path, i: usize, taken: &[String]) -> String {
    let base: String = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .collect();
    let base = if base.is_empty() || base.starts_with('.') {
        format!("dir{}", i + 1)
    } else {
        base
    };
    if taken.contains(&base) {
        format!("{base}-{}", i + 1)
    } else {
        base
    }
}

/// The configuration text for `args`.
pub(crate) fn render(args: &InitArgs, cwd: &Path) -> anyhow::Result<String> {
    let out_dir = args
        .output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| cwd.to_path_buf(), |p| cwd.join(p));
    let in_cwd = out_dir == cwd;
    let path = |p: &Path| quote(&config_path(p, in_cwd, cwd));
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(config::DEFAULT_DATA_DIR));

    let mut t = String::new();
    let mut w = |s: &str| {
        t.push_str(s);
        t.push('\n');
    };
    w("# Archipel configuration: `archipel serve --config archipel.toml`.");
    w("#");
    w("# Every object is encrypted and erasure-coded across the providers below: any `parity` of");
    w("# them can be lost (or turn hostile) and every object stays readable, and none of them");
    w("# sees plaintext or object names. Relative paths are relative to this file's directory.");
    w("# String values may use ${NAME} for environment variables (secrets stay out of the file).");
    w("");
    w("[server]");
    w("# S3 endpoint. Use 0.0.0.0:9000 to accept connections from other machines.");
    w(&format!("listen = {}", quote(&args.listen.to_string())));
    w("# /health, /ready and Prometheus /metrics; \"off\" to disable.");
    let admin = match args.admin_listen {
        Listen::Off => "off".to_string(),
        Listen::At(a) => a.to_string(),
    };
    w(&format!("admin_listen = {}", quote(&admin)));
    w("# Key file, credentials, vault header, embedded metadata.");
    w(&format!("data_dir = {}", path(&data_dir)));
    w(&format!("region = {}", quote(&args.region)));
    w("# Root credentials; default: ARCHIPEL_ROOT_ACCESS_KEY / ARCHIPEL_ROOT_SECRET_KEY, else");
    w("# generated once into <data_dir>/credentials.");
    w("# root_access_key = \"${ARCHIPEL_ROOT_ACCESS_KEY}\"");
    w("# root_secret_key = \"${ARCHIPEL_ROOT_SECRET_KEY}\"");
    w("# Accept legacy SigV2-signed requests (replayable within 15 minutes, HMAC-SHA1); SigV4");
    w("# only by default.");
    w("# allow_sigv2 = false");
    w("# Requests served at once; more are answered 503 SlowDown (clients retry).");
    w("# max_requests = 128");
    w("");
    w("[meta]");
    w("# Where the index of buckets and objects lives. Omit `url` for the embedded store in");
    w("# data_dir; PostgreSQL lets several gateways share one vault.");
    match &args.meta_url {
        Some(url) => w(&format!("url = {}", quote(url))),
        None => w("# url = \"postgres://archipel:${PGPASSWORD}@db.example.org/archipel\""),
    }
    w("");
    w("[key]");
    w("# The master key: without it (and with it, only with the providers) nothing is readable.");
    w("# A key file (64 hex digits, created on first start if missing; back it up!) ...");
    match &args.key_file {
        Some(f) => w(&format!("file = {}", path(f))),
        None => w("# file = \"archipel.key\""),
    }
    w(
        "# ... or a passphrase (Argon2id). Default: <data_dir>/key, or ARCHIPEL_PASSPHRASE when set.",
    );
    w("# passphrase = \"${ARCHIPEL_PASSPHRASE}\"");
    w("");

    let mut names: Vec<String> = Vec::new();
    let dirs: Vec<PathBuf> = if args.provider_dirs.is_empty() {
        (1..=config::DEMO_PROVIDERS)
            .map(|i| data_dir.join("providers").join(format!("p{i}")))
            .collect()
    } else {
        args.provider_dirs.clone()
    };
    if args.provider_dirs.is_empty() {
        w("# These six directories share one disk, like the zero-configuration demo: replace them");
        w("# with providers on independent disks, machines or services.");
    }
    for (i, d) in dirs.iter().enumerate() {
        let name = if args.provider_dirs.is_empty() {
            format!("p{}", i + 1)
        } else {
            name_for(d, i, &names)
        };
        w("[[provider]]");
        w(&format!("name = {}", quote(&name)));
        w("kind = \"dir\"");
        w(&format!("path = {}", path(d)));
        w("operator = \"self\"");
        w("jurisdiction = \"local\"");
        w("");
        names.push(name);
    }
    w("# An S3-compatible bucket:");
    w("# [[provider]]");
    w("# name = \"s3-eu\"");
    w("# kind = \"s3\"");
    w("# endpoint = \"https://s3.fr-par.example.com\"");
    w("# region = \"fr-par\"");
    w("# bucket = \"archipel-shards\"");
    w("# access_key = \"${S3_EU_ACCESS_KEY}\"");
    w("# secret_key = \"${S3_EU_SECRET_KEY}\"");
    w("# path_style = true          # false for virtual-hosted-style addressing");
    w("# prefix = \"\"                # optional key prefix inside the bucket");
    w("# operator = \"example-cloud\" # who runs it (for max_per_operator)");
    w("# jurisdiction = \"FR\"        # ISO 3166 country code (for the jurisdiction rules)");
    w("# weight = 1                 # relative share of new shards");
    w("# egress_price_per_gb = 0.09 # what reading a GB out costs (for `provider exit-plan`)");
    w("#");
    w("# A WebDAV folder (Nextcloud, ownCloud, rclone serve webdav, …):");
    w("# [[provider]]");
    w("# name = \"dav-home\"");
    w("# kind = \"webdav\"");
    w("# url = \"https://cloud.example.org/remote.php/dav/files/alice\"");
    w("# user = \"alice\"");
    w("# password = \"${DAV_PASSWORD}\"");
    w("# root = \"archipel\"");
    w("# operator = \"alice\"");
    w("# jurisdiction = \"DE\"");
    w("");

    let policy = match (args.data, args.parity) {
        (Some(k), Some(m)) => Policy::new(k, m)?,
        _ => Policy::default_for(dirs.len())?,
    };
    w("[policy]");
    w("# The default for new buckets: each object becomes `data` + `parity` shards on as many");
    w("# different providers; any `data` of them rebuild it.");
    w(&format!("data = {}", policy.k));
    w(&format!("parity = {}", policy.m));
    w("# Shards durable before a PUT is acknowledged (data ≤ write_quorum ≤ data + parity);");
    w("# default data + 1.");
    w(&format!("# write_quorum = {}", policy.write_quorum));
    w("# max_per_operator = 2        # no operator holds more shards of one object");
    w("# max_per_jurisdiction = 2    # ≤ parity: survive the loss of any one jurisdiction");
    w("# allowed_jurisdictions = [\"FR\", \"DE\", \"NL\"]");
    w("");
    w("[repair]");
    w("# Lost redundancy heals by itself: shards never written (a provider was down or hung),");
    w("# missing or corrupt are rebuilt from the others, on their provider once it answers,");
    w("# else on a spare the policy allows.");
    w("# interval_s = 30             # between two rounds over the repair queue");
    w("# inventory_interval_s = 3600 # between two listings of every provider (finds lost shards)");
    w("# concurrency = 4");
    w("# max_mib_per_s = 50          # rebuilt bytes per second; unlimited when omitted");
    w("");
    w("[scrub]");
    w("# Every shard of every object is read and verified in full once per interval (a GET reads");
    w("# only what it needs); what is missing or damaged goes to repair.");
    w("# interval_s = 604800         # a full scrub when the last one ended a week ago");
    w("# max_mib_per_s = 50");
    w("");
    w("[audit]");
    w("# Proof that each provider still holds its shards: random chunks read back and verified");
    w("# (\"≥ 99.9 % present with 99 % confidence\" takes 4,603 clean samples); what is missing");
    w("# goes to repair. Evidence: `archipel provider audits`.");
    w(
        "# interval_s = 86400          # an audit of every provider when the last one ended a day ago",
    );
    w("# max_mib_per_day = 1024      # bytes read from each provider per day; 0 turns audits off");
    w("");
    w("[gc]");
    w("# A superseded shard (overwritten, deleted, moved by a drain) is deleted this long after:");
    w("# reads that began before still find it.");
    w("# delay_s = 60");
    Ok(t)
}

/// Runs `archipel init`.
pub(crate) fn run(args: &InitArgs) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("current directory")?;
    if args.output.exists() && !args.force {
        bail!(
            "{} exists: use --force to replace it, or --output for another file",
            args.output.display()
        );
    }
    let text = render(args, &cwd)?;
    // What we write must load; the check is the parser `serve --config` uses.
    crate::config::parse(&text, &args.output)
        .context("these settings do not make a valid configuration")?;
    std::fs::write(&args.output, &text)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    println!("wrote {}", args.output.display());
    println!(
        "edit it (providers, policy), then run: archipel serve --config {}",
        args.output.display()
    );
    Ok(())
}
