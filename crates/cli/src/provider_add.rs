//! `archipel provider add`: appends a `[[provider]]` section to the configuration file.
//!
//! The file's text is kept as it is (comments, order, layout): the new section is appended,
//! never re-serialized. Before anything is written: the name must be free, the flags must fit
//! the kind, the resulting text must load with the parser `archipel serve --config` uses, and
//! (unless `--no-test`) the new provider must pass the probe `serve` runs at start (put, read
//! back, delete a small blob). The file is then replaced atomically (a temporary file beside
//! it, renamed over it), keeping its permissions.
//!
//! With a gateway serving the vault (its admin endpoint answers at the configuration's admin
//! address), the provider is first handed to it through the admin API: the gateway builds
//! and probes it, records it in the provider registry and places new shards on it at once;
//! only then is the section appended, so the file and the registry agree. Without a gateway,
//! the next `archipel serve` seeds the registry from the file.
//!
//! Adding a provider moves nothing: existing shards stay where they were written.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use serde::Serialize;

use crate::config::{Kind, ProviderSetting, valid_provider_name};
use crate::init::{config_path, quote};

/// A price: a finite number ≥ 0.
fn parse_price(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p),
        _ => Err(format!("{s:?} is not a price (a number ≥ 0, e.g. 0.01)")),
    }
}

/// `archipel provider add`.
#[derive(clap::Args, Debug)]
pub(crate) struct ProviderAddArgs {
    /// The configuration file to add the provider to.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: PathBuf,
    /// The provider's name (letters, digits, `-`, `_`, `.`), unique in the configuration.
    #[arg(long)]
    name: String,
    /// What it is: a local directory, an S3-compatible bucket or a WebDAV folder.
    #[arg(long, value_enum)]
    kind: Kind,
    /// dir: the directory (created if missing).
    #[arg(long, value_name = "DIR", help_heading = "dir")]
    path: Option<PathBuf>,
    /// s3: the endpoint URL (https://s3.fr-par.example.com).
    #[arg(long, value_name = "URL", help_heading = "s3")]
    endpoint: Option<String>,
    /// s3: the region [default: us-east-1].
    #[arg(long, help_heading = "s3")]
    region: Option<String>,
    /// s3: the bucket (it must exist).
    #[arg(long, help_heading = "s3")]
    bucket: Option<String>,
    /// s3: the access key id; an environment reference keeps it out of the file:
    /// --access-key '${S3_EU_ACCESS_KEY}' (single quotes, so the shell leaves it alone).
    #[arg(long, value_name = "KEY", help_heading = "s3")]
    access_key: Option<String>,
    /// s3: the secret key; prefer an environment reference, written as such and read at each
    /// start: --secret-key '${S3_EU_SECRET_KEY}' (it must be set now too, for the checks).
    #[arg(long, value_name = "SECRET", help_heading = "s3")]
    secret_key: Option<String>,
    /// s3: path-style addressing (endpoint/bucket/key) [default: true]; `false` for
    /// virtual-hosted style (bucket.endpoint/key).
    #[arg(
        long,
        value_name = "true|false",
        num_args = 0..=1,
        default_missing_value = "true",
        help_heading = "s3"
    )]
    path_style: Option<bool>,
    /// s3: a key prefix inside the bucket.
    #[arg(long, help_heading = "s3")]
    prefix: Option<String>,
    /// webdav: the server URL (https://cloud.example.org/remote.php/dav/files/alice).
    #[arg(long, help_heading = "webdav")]
    url: Option<String>,
    /// webdav: the user name.
    #[arg(long, help_heading = "webdav")]
    user: Option<String>,
    /// webdav: the password; prefer an environment reference, written as such and read at
    /// each start: --password '${DAV_PASSWORD}' (it must be set now too, for the checks).
    #[arg(long, help_heading = "webdav")]
    password: Option<String>,
    /// webdav: the folder under the URL that holds the shards.
    #[arg(long, value_name = "FOLDER", help_heading = "webdav")]
    root: Option<String>,
    /// Who runs it (for the policy's max_per_operator).
    #[arg(long)]
    operator: Option<String>,
    /// Where it is, as an ISO 3166 country code (for the jurisdiction rules).
    #[arg(long, value_name = "CODE")]
    jurisdiction: Option<String>,
    /// What it charges per GB sent out, for the exit plan's egress cost (e.g. 0.01).
    #[arg(long, value_name = "PRICE", value_parser = parse_price)]
    egress_price_per_gb: Option<f64>,
    /// Its relative share of new shards [default: 1].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    weight: Option<u32>,
    /// Do not probe the new provider (put, read back, delete a small blob) before adding it.
    #[arg(long)]
    no_test: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// What `provider add` did.
#[derive(Debug, Serialize)]
struct Added {
    name: String,
    kind: &'static str,
    location: String,
    config: String,
    /// The line of the new section's `name`.
    line: Option<usize>,
    /// Whether the probe ran (and passed).
    tested: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    probe_ms: Option<f64>,
    /// Always false: adding a provider moves no existing shard.
    existing_objects_moved: bool,
    /// Whether a running gateway took the provider live (through its admin API).
    live: bool,
}

/// The flags each kind takes, by flag name, and whether it is given.
fn kind_flags(a: &ProviderAddArgs) -> [(&'static str, bool, Kind, bool); 12] {
    // (flag, given, kind it belongs to, required for that kind)
    [
        ("--path", a.path.is_some(), Kind::Dir, true),
        ("--endpoint", a.endpoint.is_some(), Kind::S3, true),
        ("--region", a.region.is_some(), Kind::S3, false),
        ("--bucket", a.bucket.is_some(), Kind::S3, true),
        ("--access-key", a.access_key.is_some(), Kind::S3, true),
        ("--secret-key", a.secret_key.is_some(), Kind::S3, true),
        ("--path-style", a.path_style.is_some(), Kind::S3, false),
        ("--prefix", a.prefix.is_some(), Kind::S3, false),
        ("--url", a.url.is_some(), Kind::Webdav, true),
        ("--user", a.user.is_some(), Kind::Webdav, false),
        ("--password", a.password.is_some(), Kind::Webdav, false),
        ("--root", a.root.is_some(), Kind::Webdav, false),
    ]
}

/// Refuses flags of another kind, and names the missing ones.
fn check_flags(a: &ProviderAddArgs) -> anyhow::Result<()> {
    let kind = a.kind.as_str();
    let flags = kind_flags(a);
    let foreign: Vec<&str> = flags
        .iter()
        .filter(|(_, given, k, _)| *given && *k != a.kind)
        .map(|(f, ..)| *f)
        .collect();
    if !foreign.is_empty() {
        bail!(
            "{} do{} not apply to --kind {kind}",
            foreign.join(", "),
            if foreign.len() == 1 { "es" } else { "" }
        );
    }
    let missing: Vec<&str> = flags
        .iter()
        .filter(|(_, given, k, required)| *required && !*given && *k == a.kind)
        .map(|(f, ..)| *f)
        .collect();
    if !missing.is_empty() {
        bail!("--kind {kind} needs {}", missing.join(", "));
    }
    Ok(())
}

/// The `[[provider]]` section for `a`, starting with a blank line. Relative paths (relative
/// to the current directory) are made absolute unless the file is in the current directory,
/// since paths in the file are relative to the file's directory.
fn render_section(a: &ProviderAddArgs, cwd: &Path) -> String {
    let file_dir = a
        .config
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| cwd.to_path_buf(), |p| cwd.join(p));
    let in_cwd = file_dir == cwd;
    let mut lines = vec![
        String::new(),
        "# Added by `archipel provider add`.".to_string(),
        "[[provider]]".to_string(),
        format!("name = {}", quote(&a.name)),
        format!("kind = {}", quote(a.kind.as_str())),
    ];
    let path = a.path.as_ref().map(|p| config_path(p, in_cwd, cwd));
    let path_style = a.path_style.map(|b| b.to_string());
    let weight = a.weight.map(|w| w.to_string());
    let egress = a.egress_price_per_gb.map(|p| p.to_string());
    // (key, value, whether it is a TOML string)
    let keys = [
        ("path", &path, true),
        ("endpoint", &a.endpoint, true),
        ("region", &a.region, true),
        ("bucket", &a.bucket, true),
        ("access_key", &a.access_key, true),
        ("secret_key", &a.secret_key, true),
        ("path_style", &path_style, false),
        ("prefix", &a.prefix, true),
        ("url", &a.url, true),
        ("user", &a.user, true),
        ("password", &a.password, true),
        ("root", &a.root, true),
        ("operator", &a.operator, true),
        ("jurisdiction", &a.jurisdiction, true),
        ("weight", &weight, false),
        ("egress_price_per_gb", &egress, false),
    ];
    for (key, value, string) in keys {
        if let Some(v) = value {
            let v = if string { quote(v) } else { v.clone() };
            lines.push(format!("{key} = {v}"));
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Writes `text` over `path` atomically (a temporary file beside it, renamed over it), keeping
/// its permissions, unless the file no longer holds `original` (edited meanwhile).
fn replace_file(path: &Path, original: &str, text: &str) -> anyhow::Result<()> {
    // Through a symbolic link, replace the file it points to, not the link.
    let real = std::fs::canonicalize(path)
        .with_context(|| format!("cannot resolve {}", path.display()))?;
    let dir = real
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", real.display()))?;
    let file_name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{file_name}.{}.tmp",
        archipel_vault::secrets::hex(&archipel_vault::secrets::random::<6>()?)
    ));
    let permissions = std::fs::metadata(&real)
        .with_context(|| format!("cannot read {}", real.display()))?
        .permissions();
    let written = (|| -> anyhow::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        // Before the content: the file may hold secrets.
        f.set_permissions(permissions)
            .with_context(|| format!("cannot set the permissions of {}", tmp.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let now = std::fs::read_to_string(&real)
            .with_context(|| format!("cannot read {}", real.display()))?;
        if now != original {
            bail!(
                "{} changed while the provider was being checked: nothing written, run the command again",
                path.display()
            );
        }
        std::fs::rename(&tmp, &real)
            .with_context(|| format!("cannot rename {} to {}", tmp.display(), real.display()))?;
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    // Make the rename itself durable (best effort: not every platform opens directories).
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The section as printed: indented, without the leading comment, secrets written in clear
/// masked.
fn shown_section(section: &str) -> String {
    let mut out = String::new();
    for line in section
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let secret = ["secret_key = ", "password = "]
            .iter()
            .any(|k| line.starts_with(k));
        if secret && !line.contains("${") {
            let key = line.split(' ').next().unwrap_or_default();
            out.push_str(&format!("  {key} = \"…\"\n"));
        } else {
            out.push_str(&format!("  {line}\n"));
        }
    }
    out
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e4).round() / 10.0
}

/// Runs `archipel provider add`.
pub(crate) async fn run(a: ProviderAddArgs) -> anyhow::Result<()> {
    let shown = a.config.display().to_string();
    let original = std::fs::read_to_string(&a.config)
        .with_context(|| format!("cannot read the configuration file {shown}"))?;
    let current = crate::config::parse(&original, &a.config)
        .with_context(|| format!("{shown} does not load as it is: fix it first"))?;
    if !valid_provider_name(&a.name) {
        bail!(
            "--name {:?}: a provider name is letters, digits, `-`, `_` or `.`",
            a.name
        );
    }
    if let Some(p) = current.providers.iter().find(|p| p.info.name == a.name) {
        bail!(
            "{} already exists: choose another --name ({shown} is unchanged)",
            p.describe()
        );
    }
    check_flags(&a)?;

    let cwd = std::env::current_dir().context("current directory")?;
    let mut text = original.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let section = render_section(&a, &cwd);
    text.push_str(&section);
    // What we write must load, with the parser `serve --config` uses.
    let next = crate::config::parse(&text, &a.config).with_context(|| {
        format!("with this provider added, {shown} would not load: nothing written")
    })?;
    let added: ProviderSetting = next
        .providers
        .iter()
        .find(|p| p.info.name == a.name)
        .cloned()
        .ok_or_else(|| anyhow!("the new provider `{}` did not load", a.name))?;

    // A gateway serving the vault takes the provider live (it probes it itself); the file is
    // written only once it has.
    let live = match crate::client::Admin::find(&current).await? {
        Some(admin) => {
            let mut spec = ProviderSetting {
                origin: None,
                ..added.clone()
            };
            if let archipel_vault::ProviderBackend::Dir(p) = &mut spec.backend
                && p.is_relative()
            {
                *p = cwd.join(&*p);
            }
            let r = crate::client::Control::Remote(admin)
                .add_provider(&spec)
                .await
                .map_err(|e| {
                    anyhow!(
                        "the gateway refused provider `{}`: {e}\n{shown} is unchanged",
                        a.name
                    )
                })?;
            Some(r)
        }
        None => None,
    };

    // The probe `serve` runs at start. The section is not in the file yet: no line to cite.
    let probe = if let Some(l) = &live {
        Some(Duration::from_secs_f64(l.probe_ms / 1e3))
    } else if a.no_test {
        None
    } else {
        let unwritten = ProviderSetting {
            origin: None,
            ..added.clone()
        };
        match archipel_vault::stack::build_checked(&unwritten, true).await {
            Ok((_, round_trip)) => round_trip,
            Err(failure) => bail!(
                "{failure}\n{shown} is unchanged (--no-test adds the provider without this check)"
            ),
        }
    };

    replace_file(&a.config, &original, &text)?;

    let secret_in_clear = match a.kind {
        Kind::S3 => a.secret_key.as_deref(),
        Kind::Webdav => a.password.as_deref(),
        Kind::Dir => None,
    }
    .is_some_and(|s| !s.contains("${"));
    if secret_in_clear {
        eprintln!(
            "note: the {} is written in clear in {shown}; an environment reference such as '${{NAME}}' keeps it out of the file",
            if a.kind == Kind::S3 {
                "secret key"
            } else {
                "password"
            }
        );
    }

    let report = Added {
        name: a.name.clone(),
        kind: added.backend.kind(),
        location: added.backend.location(),
        config: shown.clone(),
        line: added
            .origin
            .as_deref()
            .and_then(|o| o.rsplit_once(" line "))
            .and_then(|(_, n)| n.parse().ok()),
        tested: probe.is_some(),
        probe_ms: probe.map(ms),
        existing_objects_moved: false,
        live: live.is_some(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "added provider `{}` [{} at {}] to {}",
        report.name,
        report.kind,
        report.location,
        added.origin.as_deref().unwrap_or(&shown)
    );
    print!("{}", shown_section(&section));
    match probe {
        Some(d) => println!(
            "probe passed: a small blob written, read back and deleted in {:.1} ms",
            ms(d)
        ),
        None => println!(
            "not tested (--no-test): `archipel provider test {} --config {shown}` checks it",
            report.name
        ),
    }
    if live.is_some() {
        println!(
            "the running gateway uses `{}` now: new writes may place shards on it; existing \
             objects are not moved (their shards stay where they are).",
            report.name
        );
    } else {
        println!(
            "existing objects are not moved: their shards stay where they are. New writes place shards on `{}` once the gateway is (re)started with `archipel serve --config {shown}`.",
            report.name
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Wrap {
        #[command(flatten)]
        a: ProviderAddArgs,
    }

    fn args(extra: &[&str]) -> ProviderAddArgs {
        let mut v = vec!["x", "--config", "archipel.toml", "--name", "n"];
        v.extend_from_slice(extra);
        Wrap::try_parse_from(v).unwrap().a
    }

    #[test]
    fn sections_are_rendered_and_flags_checked() {
        let a = args(&[
            "--kind",
            "s3",
            "--endpoint",
            "http://h",
            "--bucket",
            "b",
            "--access-key",
            "${AK}",
            "--secret-key",
            "${SK}",
            "--path-style",
            "false",
            "--weight",
            "2",
        ]);
        check_flags(&a).unwrap();
        let s = render_section(&a, Path::new("/w"));
        assert_eq!(
            s,
            "\n# Added by `archipel provider add`.\n[[provider]]\nname = \"n\"\nkind = \"s3\"\n\
             endpoint = \"http://h\"\nbucket = \"b\"\naccess_key = \"${AK}\"\nsecret_key = \"${SK}\"\n\
             path_style = false\nweight = 2\n"
        );
        let e = check_flags(&args(&["--kind", "s3", "--endpoint", "http://h"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--kind s3 needs --bucket, --access-key, --secret-key"
        );
        let e = check_flags(&args(&["--kind", "dir", "--path", "p", "--url", "u"])).unwrap_err();
        assert_eq!(e.to_string(), "--url does not apply to --kind dir");
        assert!(args(&["--kind", "s3", "--path-style"]).path_style == Some(true));
        assert!(Wrap::try_parse_from(["x", "-c", "a", "--name", "n", "--kind", "ftp"]).is_err());
        assert_eq!(
            shown_section("\n# c\n[[provider]]\npassword = \"hunter2\"\nsecret_key = \"${S}\"\n"),
            "  [[provider]]\n  password = \"…\"\n  secret_key = \"${S}\"\n"
        );
        // Relative paths: kept when the file is in the current directory, else made absolute.
        let a = args(&["--kind", "dir", "--path", "disks/x"]);
        assert!(render_section(&a, Path::new("/w")).contains("path = \"disks/x\"\n"));
        let mut a = a;
        a.config = PathBuf::from("/etc/archipel/archipel.toml");
        assert!(render_section(&a, Path::new("/w")).contains("path = \"/w/disks/x\"\n"));
    }
}
