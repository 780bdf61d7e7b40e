//! [`VaultError`]: what can go wrong opening, unlocking or operating a vault. Every variant
//! says what it was about (the file, the provider, the key), so the CLI and the admin API can
//! show it as it is.

use std::path::PathBuf;

use archipel_codec::CodecError;
use archipel_engine::EngineError;
use archipel_meta::MetaError;

/// The control plane's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// A file of the data directory could not be read or written.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done ("cannot read the key file").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The embedded metadata store is held by another process.
    #[error(
        "the vault in {} is in use by another archipel process (lock {lock}); stop it first, \
         or run this command with the gateway's admin endpoint reachable",
        data_dir.display()
    )]
    InUse {
        /// The vault's data directory.
        data_dir: PathBuf,
        /// The lock file.
        lock: String,
    },
    /// No vault exists where one was expected.
    #[error("no vault in {}: start one with `archipel serve`{hint}", data_dir.display())]
    NoVault {
        /// Where it was looked for.
        data_dir: PathBuf,
        /// How to point to it.
        hint: &'static str,
    },
    /// The master key is missing, wrong or unusable.
    #[error("{0}")]
    Key(String),
    /// The root credentials are missing or malformed.
    #[error("{0}")]
    Credentials(String),
    /// Providers failed their check (each named, with where it is declared).
    #[error("{0}")]
    Providers(String),
    /// No provider of this name.
    #[error("no provider `{name}` in this vault")]
    NoSuchProvider {
        /// The name asked for.
        name: String,
    },
    /// A provider of this name exists already.
    #[error("a provider named `{name}` exists already")]
    ProviderExists {
        /// The name.
        name: String,
    },
    /// No access key of this id.
    #[error("no access key {id:?} (see `archipel key list`)")]
    NoSuchKey {
        /// The id asked for.
        id: String,
    },
    /// No job of this id.
    #[error("no job {id:?} (see `archipel job list`)")]
    NoSuchJob {
        /// The id asked for.
        id: String,
    },
    /// A request that cannot be carried out as asked (named field and why).
    #[error("{0}")]
    Invalid(String),
    /// The metadata store failed.
    #[error("metadata store: {0}")]
    Meta(#[from] MetaError),
    /// The engine refused or failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// A format could not be decoded or produced.
    #[error("{0}")]
    Codec(#[from] CodecError),
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl VaultError {
    /// Whether trying again later may succeed (a provider or the database was unavailable).
    pub fn is_retryable(&self) -> bool {
        match self {
            VaultError::Meta(e) => e.is_retryable(),
            VaultError::Engine(e) => e.is_retryable(),
            VaultError::InUse { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(what: &'static str, path: &std::path::Path, source: std::io::Error) -> Self {
        VaultError::Io {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The control plane's results.
pub type Result<T, E = VaultError> = std::result::Result<T, E>;
