//! The vault's secrets (`unlock`, `credentials`): the master key (a key file or a passphrase), the vault header that
//! recognises it, and the root credentials.
//!
//! Layout of the data directory (created mode 0700 on first run):
//!
//! ```text
//! vault         the vault header (not secret; also kept in the metadata store, so gateways
//!               sharing a PostgreSQL store derive the same key from the same passphrase)
//! key           the master key file, 64 hex digits (mode 0600), unless a passphrase is used
//!               or `[key] file` points elsewhere
//! credentials   the root access key id and secret (mode 0600), unless given by the
//!               environment or the configuration
//! meta/         the embedded metadata store
//! ```
//!
//! A restart finds the header and opens the same vault; a key that is not the vault's (a
//! wrong passphrase, another key file) is refused before anything is read or written.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use archipel_codec::{CodecError, KdfParams, KeyShare, KeySource, MasterKey, VaultHeader};
use archipel_meta::{CheckpointName, MetaStore};
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::error::{Result, VaultError};
use crate::spec::VaultSpec;

/// The checkpoint under which the metadata store keeps the vault header.
const HEADER_CHECKPOINT: &str = "vault-header";

/// Fresh random bytes from the operating system.
pub fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| VaultError::Internal(format!("no random numbers from the OS: {e}")))?;
    Ok(b)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A random string of `len` characters from `alphabet` (unbiased).
fn random_string(alphabet: &[u8], len: usize) -> Result<String> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for b in random::<64>()? {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

/// Creates the data directory (mode 0700) if it does not exist; an existing one that group
/// or others may enter is tightened to 0700, with a warning.
pub fn ensure_data_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = fs::metadata(dir)
                && m.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    "the data directory {} was accessible by other users (mode {:o}); restricting it to its owner (0700)",
                    dir.display(),
                    m.permissions().mode() & 0o777
                );
                fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| VaultError::io("cannot restrict", dir, e))?;
            }
        }
        return Ok(());
    }
    fs::create_dir_all(dir)
        .map_err(|e| VaultError::io("cannot create the data directory", dir, e))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| VaultError::io("cannot restrict", dir, e))?;
    }
    Ok(())
}

/// Writes `contents` to `path` atomically (temp file, fsync, rename); `secret` files get mode
/// 0600 from their creation on.
pub fn write_file(path: &Path, contents: &[u8], secret: bool) -> Result<()> {
    let tmp = path.with_extension("tmp");
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut f = opts
        .open(&tmp)
        .map_err(|e| VaultError::io("cannot create", &tmp, e))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| VaultError::io("cannot write", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| VaultError::io("cannot create", path, e))?;
    if let Some(Ok(d)) = path.parent().map(fs::File::open) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Warns when a secret file is readable by others.
fn warn_if_exposed(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                "{} is readable by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                m.permissions().mode() & 0o777,
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

// ---------------------------------------------------------------------------------------------
// The master key.

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// A key file.
    File(PathBuf),
    /// Argon2id over a passphrase.
    Passphrase,
    /// Shares of the key (`archipel key split`): how many were combined.
    Shares(usize),
}

/// The unlocked vault.
#[derive(Debug)]
pub struct Unlocked {
    /// The master key.
    pub key: MasterKey,
    /// The vault header.
    pub header: VaultHeader,
    /// Where the key came from.
    pub origin: KeyOrigin,
    /// Whether this run created the vault.
    pub created: bool,
}

impl Unlocked {
    /// The vault id, in hex.
    pub fn vault_id(&self) -> String {
        hex(&self.header.vault_id)
    }
}

fn checkpoint() -> Result<CheckpointName> {
    Ok(CheckpointName::new(HEADER_CHECKPOINT)?)
}

fn read_local_header(path: &Path) -> Result<Option<VaultHeader>> {
    match fs::read(path) {
        Ok(bytes) => VaultHeader::decode(&bytes).map(Some).map_err(|e| {
            VaultError::Key(format!(
                "the vault header {} is unreadable: {e}",
                path.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(VaultError::io("cannot read", path, e)),
    }
}

fn read_key_file(path: &Path) -> Result<MasterKey> {
    let text = Zeroizing::new(
        fs::read_to_string(path)
            .map_err(|e| VaultError::io("cannot read the key file", path, e))?,
    );
    warn_if_exposed(path);
    MasterKey::from_key_file(&text)
        .map_err(|e| VaultError::Key(format!("the key file {} is not valid: {e}", path.display())))
}

fn new_key_file(path: &Path) -> Result<MasterKey> {
    let key = MasterKey::from_bytes(random::<32>()?);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(|e| VaultError::io("cannot create", dir, e))?;
    }
    write_file(path, Zeroizing::new(key.to_key_file()).as_bytes(), true)?;
    tracing::info!("created the master key file {}", path.display());
    Ok(key)
}

fn wrong_key(e: CodecError, what: &str, header: &VaultHeader) -> VaultError {
    match e {
        CodecError::WrongKey => VaultError::Key(format!(
            "{what} does not open vault {} (expected key id {})",
            hex(&header.vault_id),
            header.key_id
        )),
        e => VaultError::Key(format!("{what}: {e}")),
    }
}

/// Opens the vault in `settings.data_dir` (creating it on first run), checked against the
/// header kept in `meta`.
pub async fn unlock(settings: &VaultSpec, meta: &dyn MetaStore) -> Result<Unlocked> {
    let header_path = settings.data_dir.join("vault");
    let default_key_path = settings.data_dir.join("key");
    let local = read_local_header(&header_path)?;
    let name = checkpoint()?;
    let shared = match meta.get_checkpoint(&name).await? {
        Some(bytes) => Some(VaultHeader::decode(&bytes).map_err(|e| {
            VaultError::Key(format!(
                "the vault header in the metadata store is unreadable: {e}"
            ))
        })?),
        None => None,
    };
    let existing = match (&local, &shared) {
        (Some(l), Some(s)) if l != s => {
            return Err(VaultError::Key(format!(
                "the data directory {} holds vault {} but the metadata store belongs to vault {}: \
                 they do not go together",
                settings.data_dir.display(),
                hex(&l.vault_id),
                hex(&s.vault_id)
            )));
        }
        (Some(h), _) | (None, Some(h)) => Some(h.clone()),
        (None, None) => None,
    };
    let unlocked = match existing {
        Some(header) => open_existing(settings, header, &default_key_path)?,
        None => create(settings, &default_key_path)?,
    };
    let encoded = unlocked.header.encode();
    if local.is_none() {
        write_file(&header_path, &encoded, false)?;
    }
    if shared.is_none() {
        meta.put_checkpoint(&name, &encoded).await?;
    }
    Ok(unlocked)
}

/// The master key from the shares in `settings` (each named by its place and index when it
/// is wrong), checked against `header`.
fn key_from_shares(settings: &VaultSpec, header: &VaultHeader) -> Result<MasterKey> {
    let mut shares = Vec::with_capacity(settings.key.shares.len());
    for (i, text) in settings.key.shares.iter().enumerate() {
        let s = KeyShare::parse(text)
            .map_err(|e| VaultError::Key(format!("key share #{} is not valid: {e}", i + 1)))?;
        shares.push(s);
    }
    let key = archipel_codec::keyshare::combine(&shares)
        .map_err(|e| VaultError::Key(format!("the key shares do not open the vault: {e}")))?;
    header.check_key(key).map_err(|e| {
        wrong_key(
            e,
            &format!("the key combined from {} shares", shares.len()),
            header,
        )
    })
}

/// Splits `key` into `shares` shares of which any `threshold` give it back; each a line to
/// write down ([`KeyShare::to_text`]).
pub fn split_key(key: &MasterKey, shares: u8, threshold: u8) -> Result<Vec<Zeroizing<String>>> {
    if threshold < 2 || threshold > shares {
        return Err(VaultError::Invalid(format!(
            "a threshold of {threshold} with {shares} shares: give 2 ≤ threshold ≤ shares ≤ 255"
        )));
    }
    let split_id = random::<4>()?;
    blahaj::Sharks(threshold)
        .dealer(key.expose())
        .take(usize::from(shares))
        .map(|point| {
            let raw = Zeroizing::new(Vec::from(&point));
            let value: [u8; 32] = raw
                .get(1..33)
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| VaultError::Internal("a key share of the wrong size".into()))?;
            let share = KeyShare::from_point(key, threshold, split_id, raw[0], value)?;
            Ok(share.to_text()?)
        })
        .collect()
}

/// The master key of the vault in `settings.data_dir` (from its key file, passphrase or key
/// shares), checked against the vault header kept there; no metadata store is opened.
pub fn load_key(settings: &VaultSpec) -> Result<MasterKey> {
    let header_path = settings.data_dir.join("vault");
    let header = read_local_header(&header_path)?.ok_or_else(|| {
        VaultError::Key(format!(
            "no vault header at {} (is this the data directory of a vault?)",
            header_path.display()
        ))
    })?;
    Ok(open_existing(settings, header, &settings.data_dir.join("key"))?.key)
}

fn open_existing(
    settings: &VaultSpec,
    header: VaultHeader,
    default_key_path: &Path,
) -> Result<Unlocked> {
    if !settings.key.shares.is_empty() {
        let key = key_from_shares(settings, &header)?;
        return Ok(Unlocked {
            key,
            header,
            origin: KeyOrigin::Shares(settings.key.shares.len()),
            created: false,
        });
    }
    match header.source {
        KeySource::KeyFile => {
            if settings.key.passphrase.is_some() {
                tracing::warn!("this vault's master key is a key file: the passphrase is ignored");
            }
            let path = settings
                .key
                .file
                .clone()
                .unwrap_or_else(|| default_key_path.to_path_buf());
            if !path.exists() {
                return Err(VaultError::Key(format!(
                    "vault {} needs its key file, and {} does not exist (restore it from your backup, \
                     set [key] file, or give key shares: --key-share-file)",
                    hex(&header.vault_id),
                    path.display()
                )));
            }
            let key = read_key_file(&path)?;
            let key = header
                .check_key(key)
                .map_err(|e| wrong_key(e, &format!("the key file {}", path.display()), &header))?;
            Ok(Unlocked {
                key,
                header,
                origin: KeyOrigin::File(path),
                created: false,
            })
        }
        KeySource::Passphrase { .. } => {
            let pass = settings
                .key
                .passphrase
                .clone()
                .or_else(crate::spec::passphrase_from_env);
            let Some(pass) = &pass else {
                return Err(VaultError::Key(format!(
                    "vault {} is protected by a passphrase: set ARCHIPEL_PASSPHRASE (or [key] passphrase), or give key shares (--key-share-file)",
                    hex(&header.vault_id)
                )));
            };
            let key = header
                .open_with_passphrase(pass.as_bytes())
                .map_err(|e| wrong_key(e, "the passphrase", &header))?;
            Ok(Unlocked {
                key,
                header,
                origin: KeyOrigin::Passphrase,
                created: false,
            })
        }
    }
}

fn create(settings: &VaultSpec, default_key_path: &Path) -> Result<Unlocked> {
    if !settings.key.shares.is_empty() {
        return Err(VaultError::Key(format!(
            "key shares open an existing vault, and {} holds none: create the vault with a key              file or passphrase, then split its key (`archipel key split`)",
            settings.data_dir.display()
        )));
    }
    let vault_id = random::<16>()?;
    if let (None, Some(pass)) = (&settings.key.file, &settings.key.passphrase) {
        if pass.chars().count() < 12 {
            return Err(VaultError::Key(
                "the passphrase is too short: use at least 12 characters".into(),
            ));
        }
        let (header, key) = VaultHeader::create_with_passphrase(
            vault_id,
            pass.as_bytes(),
            random::<16>()?,
            KdfParams::DEFAULT,
        )?;
        tracing::info!("created vault {} with a passphrase", hex(&vault_id));
        return Ok(Unlocked {
            key,
            header,
            origin: KeyOrigin::Passphrase,
            created: true,
        });
    }
    let path = settings
        .key
        .file
        .clone()
        .unwrap_or_else(|| default_key_path.to_path_buf());
    let key = if path.exists() {
        read_key_file(&path)?
    } else {
        new_key_file(&path)?
    };
    let header = VaultHeader::create_with_key(vault_id, &key);
    tracing::info!("created vault {}", hex(&vault_id));
    Ok(Unlocked {
        key,
        header,
        origin: KeyOrigin::File(path),
        created: true,
    })
}

// ---------------------------------------------------------------------------------------------
// Root credentials.

/// Where the root credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialsOrigin {
    /// The `credentials` file in the data directory, as it was.
    File(PathBuf),
    /// The `credentials` file in the data directory, generated by this start (the only time
    /// the secret is shown).
    Generated(PathBuf),
    /// `ARCHIPEL_ROOT_ACCESS_KEY` / `ARCHIPEL_ROOT_SECRET_KEY`.
    Env,
    /// `[server] root_access_key` / `root_secret_key`.
    Config,
}

/// The root access key.
#[derive(Clone)]
pub struct Credentials {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: Zeroizing<String>,
    /// Where they came from.
    pub origin: CredentialsOrigin,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key", &self.access_key)
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CredentialsFile {
    access_key_id: String,
    secret_access_key: String,
}

fn check_credentials(access: &str, secret: &str, from: &str) -> Result<()> {
    let ok_id = !access.is_empty()
        && access.len() <= 128
        && access
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok_id {
        return Err(VaultError::Credentials(format!(
            "{from}: the access key id must be 1–128 letters, digits, `-`, `_` or `.`"
        )));
    }
    if secret.len() < 8 || secret.chars().any(char::is_whitespace) {
        return Err(VaultError::Credentials(format!(
            "{from}: the secret key must be at least 8 characters, without spaces"
        )));
    }
    Ok(())
}

/// The root credentials: from the configuration, else the environment, else the data
/// directory's `credentials` file (created on first run).
pub fn credentials(settings: &VaultSpec) -> Result<Credentials> {
    if let Some((a, s)) = &settings.root_credentials {
        check_credentials(a, s, "[server] root_access_key / root_secret_key")?;
        return Ok(Credentials {
            access_key: a.clone(),
            secret_key: s.clone(),
            origin: CredentialsOrigin::Config,
        });
    }
    let env = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
    match (
        env("ARCHIPEL_ROOT_ACCESS_KEY"),
        env("ARCHIPEL_ROOT_SECRET_KEY"),
    ) {
        (Some(a), Some(s)) => {
            let s = Zeroizing::new(s);
            check_credentials(
                &a,
                &s,
                "ARCHIPEL_ROOT_ACCESS_KEY / ARCHIPEL_ROOT_SECRET_KEY",
            )?;
            return Ok(Credentials {
                access_key: a,
                secret_key: s,
                origin: CredentialsOrigin::Env,
            });
        }
        (None, None) => {}
        _ => {
            return Err(VaultError::Credentials(
                "ARCHIPEL_ROOT_ACCESS_KEY and ARCHIPEL_ROOT_SECRET_KEY go together: set both or neither"
                    .into(),
            ));
        }
    }
    let path = settings.data_dir.join("credentials");
    if path.exists() {
        let text = Zeroizing::new(
            fs::read_to_string(&path).map_err(|e| VaultError::io("cannot read", &path, e))?,
        );
        warn_if_exposed(&path);
        let f: CredentialsFile = toml::from_str(&text).map_err(|e| {
            VaultError::Credentials(format!("{} is not valid: {}", path.display(), e.message()))
        })?;
        check_credentials(
            &f.access_key_id,
            &f.secret_access_key,
            &path.display().to_string(),
        )?;
        return Ok(Credentials {
            access_key: f.access_key_id,
            secret_key: Zeroizing::new(f.secret_access_key),
            origin: CredentialsOrigin::File(path),
        });
    }
    let access_key = format!(
        "AR{}",
        random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 18)?
    );
    let secret_key = Zeroizing::new(random_string(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
        40,
    )?);
    write_credentials_file(&path, &access_key, &secret_key)?;
    tracing::info!("created root credentials in {}", path.display());
    Ok(Credentials {
        access_key,
        secret_key,
        origin: CredentialsOrigin::Generated(path),
    })
}

/// Writes the data directory's `credentials` file (mode 0600; refused if it exists).
pub(crate) fn write_credentials_file(
    path: &Path,
    access_key: &str,
    secret_key: &str,
) -> Result<()> {
    let text = Zeroizing::new(format!(
        "# Archipel root credentials: full rights on every bucket of this vault. Keep this file secret.\n\
         access_key_id = \"{access_key}\"\n\
         secret_access_key = \"{secret_key}\"\n"
    ));
    write_file(path, text.as_bytes(), true)
}

/// The journaled checkpoint holding the root credentials of the data directory's
/// `credentials` file — the secret sealed under the master key — so that a recovered vault
/// keeps its root key ([`crate::recover`]). Credentials from the configuration or the
/// environment are not kept (they live where the operator put them).
pub const ROOT_CREDENTIALS_CHECKPOINT: &str = "root-credentials";

fn root_seal_id(access_key: &str) -> String {
    format!("root-credentials:{access_key}")
}

/// `access key id ‖ 0 ‖ sealed secret`, for [`ROOT_CREDENTIALS_CHECKPOINT`].
pub(crate) fn seal_root_credentials(key: &MasterKey, c: &Credentials) -> Result<Vec<u8>> {
    let mut out = c.access_key.as_bytes().to_vec();
    out.push(0);
    out.extend(key.seal_secret(
        &root_seal_id(&c.access_key),
        c.secret_key.as_bytes(),
        random()?,
    )?);
    Ok(out)
}

/// Opens what [`seal_root_credentials`] sealed: the access key id and the secret.
pub(crate) fn open_root_credentials(
    key: &MasterKey,
    bytes: &[u8],
) -> Result<(String, Zeroizing<String>)> {
    let bad = || VaultError::Credentials("the journaled root credentials are unreadable".into());
    let at = bytes.iter().position(|b| *b == 0).ok_or_else(bad)?;
    let access = String::from_utf8(bytes[..at].to_vec()).map_err(|_| bad())?;
    let secret = Zeroizing::new(
        key.open_secret(&root_seal_id(&access), &bytes[at + 1..])
            .map_err(|_| bad())?,
    );
    let secret = Zeroizing::new(String::from_utf8(secret.to_vec()).map_err(|_| bad())?);
    check_credentials(&access, &secret, "the journaled root credentials")?;
    Ok((access, secret))
}

/// The bearer token of the admin API, derived from the root secret:
/// `hex(HMAC-SHA256(root secret, "archipel admin api v1"))`. Whoever holds the root
/// credentials can compute it; it reveals nothing of the secret, and changing the root secret
/// changes it.
pub fn admin_token(root_secret: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, root_secret.as_bytes());
    hex(aws_lc_rs::hmac::sign(&key, b"archipel admin api v1").as_ref())
}

/// Whether `presented` is the admin token of `root_secret`, compared in constant time.
pub fn admin_token_matches(root_secret: &str, presented: &str) -> bool {
    let expected = admin_token(root_secret);
    expected.len() == presented.len()
        && aws_lc_rs::constant_time::verify_slices_are_equal(
            expected.as_bytes(),
            presented.as_bytes(),
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn random_strings_use_the_alphabet() {
        let s = random_string(b"AB", 100).unwrap();
        assert_eq!(s.len(), 100);
        assert!(s.chars().all(|c| c == 'A' || c == 'B'));
        assert!(s.contains('A') && s.contains('B'));
    }

    #[test]
    fn admin_tokens_follow_the_secret() {
        let t = admin_token("secret-one");
        assert_eq!(t.len(), 64);
        assert!(admin_token_matches("secret-one", &t));
        assert!(!admin_token_matches("secret-two", &t));
        assert!(!admin_token_matches("secret-one", &t[..63]));
        assert!(!t.contains("secret"));
    }

    #[test]
    fn credential_checks() {
        assert!(check_credentials("AK1", "12345678", "x").is_ok());
        assert!(check_credentials("", "12345678", "x").is_err());
        assert!(check_credentials("a b", "12345678", "x").is_err());
        assert!(check_credentials("AK1", "short", "x").is_err());
    }
}
