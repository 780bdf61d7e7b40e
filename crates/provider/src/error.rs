//! The provider error type: which provider, which blob, what went wrong, and whether trying
//! again may help.

/// What kind of failure, independent of the provider that raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The blob does not exist.
    NotFound,
    /// A conditional create found the blob already there.
    AlreadyExists,
    /// Another precondition did not hold.
    PreconditionFailed,
    /// The requested byte range lies (partly) outside the blob.
    InvalidRange,
    /// The blob name is not valid.
    InvalidName,
    /// The provider is unreachable, overloaded or failed transiently (retryable).
    Unavailable,
    /// The request took longer than its deadline (retryable).
    Timeout,
    /// Credentials were refused or lack a permission.
    PermissionDenied,
    /// The provider returned bytes that are not what was stored.
    Integrity,
    /// The provider's configuration is invalid.
    Config,
    /// Anything else.
    Other,
}

impl ErrorKind {
    /// A short lowercase label, used in metrics.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::PreconditionFailed => "precondition_failed",
            ErrorKind::InvalidRange => "invalid_range",
            ErrorKind::InvalidName => "invalid_name",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Integrity => "integrity",
            ErrorKind::Config => "config",
            ErrorKind::Other => "other",
        }
    }
}

/// An error from a provider operation.
#[derive(Debug, thiserror::Error)]
#[error("provider {provider}: {op} {}: {kind:?}: {message}", blob.as_deref().unwrap_or("-"))]
pub struct ProviderError {
    /// What went wrong.
    pub kind: ErrorKind,
    /// The provider's name.
    pub provider: String,
    /// The operation (`put`, `get`, `head`, `delete`, `list`, `open`).
    pub op: &'static str,
    /// The blob concerned, if any.
    pub blob: Option<String>,
    /// Details for humans.
    pub message: String,
}

impl ProviderError {
    /// A new error.
    pub fn new(
        kind: ErrorKind,
        provider: &str,
        op: &'static str,
        blob: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ProviderError {
            kind,
            provider: provider.to_string(),
            op,
            blob: blob.map(str::to_string),
            message: message.into(),
        }
    }

    /// Whether retrying the same request may succeed (unavailable, timeout).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Timeout)
    }

    /// The kind of error.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
}

/// Shorthand for provider results.
pub type Result<T, E = ProviderError> = std::result::Result<T, E>;
