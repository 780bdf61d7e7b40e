//! `archipel key create|list|delete|grant`: S3 access keys other than the root key, and what
//! each may do per bucket (`read`: GET, HEAD, listings; `write`: PUT, DELETE, multipart;
//! `admin`: the bucket's own settings). Secrets are sealed under the vault's master key in the
//! metadata store: `key create` shows a secret once, and nothing can show it again.
//!
//! With a gateway serving the vault, these go through its admin API (found at the
//! configuration's admin address); otherwise they open the vault here. Either way a deleted
//! key is refused on its next request: the gateway looks keys up on every request.

use anyhow::{anyhow, bail};
use archipel_engine::Permissions;
use archipel_vault::{KeyView, Perms};
use serde_json::json;

use crate::client::Control;
use crate::ops::{VaultArgs, fmt_time};

/// `archipel key …`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum KeyCmd {
    /// Create an access key (its secret is printed once), optionally with a grant.
    Create(KeyCreateArgs),
    /// List the access keys and their grants (never their secrets).
    List(KeyListArgs),
    /// Delete an access key and its grants.
    Delete(KeyDeleteArgs),
    /// Set what an access key may do in one bucket (replacing its previous grant there).
    Grant(KeyGrantArgs),
    /// Split the vault's master key into shares, any THRESHOLD of which open the vault
    /// (`--key-share`, `--key-share-file`, `--key-shares-stdin` on every command), so that no
    /// single person needs to hold the key. The key file (or passphrase) keeps working until
    /// you remove it.
    Split(KeySplitArgs),
    /// Combine key shares back into a key file (to stop using shares).
    Combine(KeyCombineArgs),
}

/// `archipel key split`.
#[derive(clap::Args, Debug)]
pub(crate) struct KeySplitArgs {
    /// How many shares to make (2–255).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..))]
    shares: u8,
    /// How many of them open the vault (2 ≤ threshold ≤ shares).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..))]
    threshold: u8,
    /// Write each share to DIR/share-N.txt (mode 0600) instead of printing them.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<std::path::PathBuf>,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel key combine`.
#[derive(clap::Args, Debug)]
pub(crate) struct KeyCombineArgs {
    /// The key file to write (mode 0600); refused if it exists.
    #[arg(long, value_name = "FILE")]
    out: std::path::PathBuf,
    #[command(flatten)]
    vault: VaultArgs,
}

/// Which permissions, from flags.
#[derive(clap::Args, Debug, Clone, Copy)]
pub(crate) struct PermFlags {
    /// Read: GET, HEAD and listings.
    #[arg(long)]
    read: bool,
    /// Write: PUT, DELETE and multipart uploads.
    #[arg(long)]
    write: bool,
    /// Admin: the bucket's policy and grants, deleting the bucket.
    #[arg(long)]
    admin: bool,
}

impl PermFlags {
    fn permissions(self) -> Permissions {
        Permissions {
            read: self.read,
            write: self.write,
            admin: self.admin,
        }
    }

    fn any(self) -> bool {
        self.read || self.write || self.admin
    }

    fn perms(self) -> Perms {
        self.permissions().into()
    }
}

/// `archipel key create`.
#[derive(clap::Args, Debug)]
pub(crate) struct KeyCreateArgs {
    /// Who the key is for (a label: a person, an application).
    #[arg(long, value_name = "NAME")]
    owner: Option<String>,
    /// Grant the new key permissions on this bucket (with --read, --write, --admin).
    #[arg(long, value_name = "BUCKET")]
    bucket: Option<String>,
    #[command(flatten)]
    perms: PermFlags,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel key list`.
#[derive(clap::Args, Debug)]
pub(crate) struct KeyListArgs {
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel key delete`.
#[derive(clap::Args, Debug)]
pub(crate) struct KeyDeleteArgs {
    /// The access key id.
    id: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `archipel key grant`.
#[derive(clap::Args, Debug)]
pub(crate) struct KeyGrantArgs {
    /// The access key id.
    id: String,
    /// The bucket.
    bucket: String,
    #[command(flatten)]
    perms: PermFlags,
    /// Revoke every permission of the key on the bucket.
    #[arg(long, conflicts_with_all = ["read", "write", "admin"])]
    none: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    vault: VaultArgs,
}

/// `read, write`, or `none`.
pub(crate) fn perms_text(p: Permissions) -> String {
    let names: Vec<&str> = [(p.read, "read"), (p.write, "write"), (p.admin, "admin")]
        .into_iter()
        .filter_map(|(on, n)| on.then_some(n))
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn perms_json(p: Permissions) -> serde_json::Value {
    json!({"read": p.read, "write": p.write, "admin": p.admin})
}

fn grants_json(grants: &[(String, Permissions)]) -> serde_json::Value {
    grants
        .iter()
        .map(|(b, p)| {
            let mut v = perms_json(*p);
            v["bucket"] = json!(b);
            v
        })
        .collect()
}

fn grants_of(k: &KeyView) -> Vec<(String, Permissions)> {
    k.grants
        .iter()
        .map(|g| (g.bucket.clone(), g.perms.into()))
        .collect()
}

fn key_json(k: &KeyView) -> serde_json::Value {
    json!({
        "id": k.id,
        "owner": k.owner,
        "created": fmt_time(k.created_ms),
        "enabled": k.enabled,
        "grants": grants_json(&grants_of(k)),
    })
}

/// The human table of `key list`.
pub(crate) fn render_list(keys: &[KeyView], root: &str) -> String {
    let mut out = String::new();
    if keys.is_empty() {
        out.push_str("no access keys (create one with `archipel key create --owner NAME --bucket BUCKET --read`)\n");
    } else {
        let wo = keys
            .iter()
            .map(|k| owner_text(&k.owner).chars().count())
            .max()
            .unwrap_or(0)
            .max(5);
        let wi = keys.iter().map(|k| k.id.len()).max().unwrap_or(0).max(2);
        out.push_str(&format!(
            "{:wi$}  {:wo$}  {:20}  {:8}  GRANTS\n",
            "ID", "OWNER", "CREATED", "STATE"
        ));
        for k in keys {
            let grants = if k.grants.is_empty() {
                "(none)".to_string()
            } else {
                grants_of(k)
                    .iter()
                    .map(|(b, p)| format!("{b}: {}", perms_text(*p)))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            out.push_str(&format!(
                "{:wi$}  {:wo$}  {:20}  {:8}  {}\n",
                k.id,
                owner_text(&k.owner),
                fmt_time(k.created_ms),
                if k.enabled { "enabled" } else { "disabled" },
                grants
            ));
        }
    }
    out.push_str(&format!(
        "(and the root key {root}: every permission on every bucket)\n"
    ));
    out
}

fn owner_text(owner: &str) -> &str {
    if owner.is_empty() { "-" } else { owner }
}

/// Runs `archipel key …` (through the gateway's admin API when one serves the vault).
pub(crate) async fn key(cmd: KeyCmd) -> anyhow::Result<()> {
    match cmd {
        KeyCmd::Create(a) => {
            if a.perms.any() && a.bucket.is_none() {
                bail!("--read, --write and --admin need --bucket BUCKET");
            }
            if a.bucket.is_some() && !a.perms.any() {
                bail!("--bucket needs at least one of --read, --write, --admin");
            }
            Control::with(&a.vault, async |c: &Control| create(c, &a).await).await
        }
        KeyCmd::Split(a) => split(&a),
        KeyCmd::Combine(a) => {
            let settings = a.vault.settings()?;
            if settings.key.shares.is_empty() {
                bail!(
                    "give the shares to combine: --key-share-file FILE (once per share), --key-share or --key-shares-stdin"
                );
            }
            let key = archipel_vault::secrets::load_key(&settings)?;
            if a.out.exists() {
                bail!("{} exists: choose another --out", a.out.display());
            }
            archipel_vault::secrets::write_file(
                &a.out,
                zeroize::Zeroizing::new(key.to_key_file()).as_bytes(),
                true,
            )?;
            println!(
                "wrote the master key (id {}) to {} (mode 0600): point `[key] file` at it, and keep it apart from the providers",
                key.key_id(),
                a.out.display()
            );
            Ok(())
        }
        KeyCmd::List(a) => {
            Control::with(&a.vault, async |c: &Control| {
                let keys = c.list_keys().await?;
                if a.json {
                    let out: Vec<_> = keys.iter().map(key_json).collect();
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    print!("{}", render_list(&keys, &c.root_key(&a.vault)));
                }
                Ok(())
            })
            .await
        }
        KeyCmd::Delete(a) => {
            Control::with(&a.vault, async |c: &Control| {
                c.delete_key(&a.id)
                    .await
                    .map_err(|e| anyhow!("cannot delete access key {:?}: {e}", a.id))?;
                if a.json {
                    println!("{}", json!({"deleted": a.id}));
                } else {
                    println!("deleted access key {} and its grants", a.id);
                }
                Ok(())
            })
            .await
        }
        KeyCmd::Grant(a) => {
            if !a.none && !a.perms.any() {
                bail!(
                    "say what key {} may do in {}: --read, --write, --admin, or --none to revoke",
                    a.id,
                    a.bucket
                );
            }
            Control::with(&a.vault, async |c: &Control| {
                let p = a.perms.perms();
                c.grant_key(&a.id, &a.bucket, p)
                    .await
                    .map_err(|e| anyhow!("cannot grant on bucket {:?}: {e}", a.bucket))?;
                if a.json {
                    println!(
                        "{}",
                        json!({"id": a.id, "bucket": a.bucket, "permissions": perms_json(p.into())})
                    );
                } else if a.none {
                    println!(
                        "access key {} may no longer do anything in {}",
                        a.id, a.bucket
                    );
                } else {
                    println!(
                        "access key {} may now {} in {}",
                        a.id,
                        perms_text(p.into()),
                        a.bucket
                    );
                }
                Ok(())
            })
            .await
        }
    }
}

async fn create(c: &Control, a: &KeyCreateArgs) -> anyhow::Result<()> {
    let owner = a.owner.as_deref().unwrap_or_default();
    let grant = a.bucket.as_deref().map(|b| (b, a.perms.perms()));
    let key = c
        .create_key(owner, grant)
        .await
        .map_err(|e| anyhow!("cannot create an access key: {e}"))?;
    let grants: Vec<(String, Permissions)> = key
        .grants
        .iter()
        .map(|g| (g.bucket.clone(), g.perms.into()))
        .collect();
    if a.json {
        println!(
            "{}",
            json!({
                "id": key.id,
                "secret": key.secret,
                "owner": owner,
                "grants": grants_json(&grants),
            })
        );
        return Ok(());
    }
    let owner = match a.owner.as_deref() {
        Some(o) if !o.is_empty() => format!(" for {o}"),
        _ => String::new(),
    };
    println!("created access key{owner}");
    println!("  access key id:     {}", key.id);
    println!("  secret access key: {}", key.secret);
    match grants.first() {
        Some((b, p)) => println!("  may: {} in {b}", perms_text(*p)),
        None => println!(
            "  may: nothing yet (give it rights with `archipel key grant {} BUCKET --read`)",
            key.id
        ),
    }
    println!(
        "The secret is shown only this once: store it now. The vault keeps it sealed and \
         cannot show it again (if it is lost, delete the key and create another)."
    );
    Ok(())
}

/// Runs `archipel key split`.
fn split(a: &KeySplitArgs) -> anyhow::Result<()> {
    if a.threshold > a.shares {
        bail!(
            "--threshold {} is more than --shares {}: no set of shares could open the vault",
            a.threshold,
            a.shares
        );
    }
    let settings = a.vault.settings()?;
    let key = archipel_vault::secrets::load_key(&settings)?;
    let shares = archipel_vault::secrets::split_key(&key, a.shares, a.threshold)?;
    // Checked before anything is shown: the first `threshold` shares give the key back.
    let parsed: Vec<archipel_codec::KeyShare> = shares
        .iter()
        .map(|s| archipel_codec::KeyShare::parse(s))
        .collect::<Result<_, _>>()?;
    let back = archipel_codec::keyshare::combine(&parsed[..usize::from(a.threshold)])?;
    if back.key_id() != key.key_id() {
        bail!("internal error: the shares do not give the key back; nothing was written");
    }
    let note = format!(
        "# Archipel key share for vault key {} — any {} of {} open the vault.\n\
         # Keep it apart from the other shares; anyone holding {} of them and the providers can read the vault.\n",
        key.key_id(),
        a.threshold,
        a.shares,
        a.threshold
    );
    match &a.out_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| anyhow!("cannot create {}: {e}", dir.display()))?;
            for (i, s) in shares.iter().enumerate() {
                let path = dir.join(format!("share-{}.txt", i + 1));
                if path.exists() {
                    bail!("{} exists: use an empty --out-dir", path.display());
                }
                let text = zeroize::Zeroizing::new(format!("{note}{}\n", s.as_str()));
                archipel_vault::secrets::write_file(&path, text.as_bytes(), true)?;
                println!("wrote {}", path.display());
            }
        }
        None => {
            print!("{note}");
            for s in &shares {
                println!("{}", s.as_str());
            }
        }
    }
    eprintln!(
        "{} shares, any {} of which open the vault (checked). Give each to a different person; \
         then start with `--key-share-file` (or `--key-shares-stdin`) and move the key file \
         away from the gateway. `archipel key combine` makes a key file again.",
        a.shares, a.threshold
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_read_as_words() {
        let p = |read, write, admin| Permissions { read, write, admin };
        assert_eq!(perms_text(p(true, false, false)), "read");
        assert_eq!(perms_text(p(true, true, true)), "read, write, admin");
        assert_eq!(perms_text(p(false, false, false)), "none");
    }
}
