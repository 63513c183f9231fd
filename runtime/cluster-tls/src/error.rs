//! The errors of this crate: one enum for certificates, configs and files, and one for
//! join tokens that do not parse.

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong while creating, loading or using cluster certificates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// rcgen could not create a key, certificate or signing request.
    #[error("generating {what}: {source}")]
    Generate {
        /// What was being generated ("cluster CA certificate", "host key" …).
        what: &'static str,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// A PEM document, certificate, key or request is not what it should be.
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being read ("host certificate", "CA private key" …).
        what: &'static str,
        /// Why it was rejected.
        detail: String,
    },
    /// rustls refused to build a config (a key it cannot use, for instance).
    #[error("building the {what}: {source}")]
    Tls {
        /// Which config or verifier was being built.
        what: &'static str,
        /// rustls' error.
        #[source]
        source: rustls::Error,
    },
    /// rustls refused to build a client-certificate verifier.
    #[error("building the client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// A file, socket or handshake failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path or address.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A join token did not parse.
    #[error("invalid join token: {0}")]
    Token(#[from] TokenError),
}

impl Error {
    pub(crate) fn invalid(what: &'static str, detail: impl std::fmt::Display) -> Self {
        Error::Invalid {
            what,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn generate(what: &'static str) -> impl FnOnce(rcgen::Error) -> Self {
        move |source| Error::Generate { what, source }
    }

    pub(crate) fn tls(what: &'static str) -> impl FnOnce(rustls::Error) -> Self {
        move |source| Error::Tls { what, source }
    }
}

/// Why a join token (`cwjoin1.<ca-fingerprint-hex>.<secret-base64url>`) did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The text does not start with `cwjoin1.`.
    #[error("it does not start with `cwjoin1.` (expected cwjoin1.<ca-fingerprint>.<secret>)")]
    Prefix,
    /// The text does not have exactly three dot-separated parts.
    #[error("expected 3 dot-separated parts (cwjoin1.<ca-fingerprint>.<secret>), found {0}")]
    Parts(usize),
    /// The CA fingerprint is not 64 hex digits.
    #[error("the CA fingerprint is not 64 hex digits: {0}")]
    Fingerprint(String),
    /// The secret is not 43 characters of unpadded base64url (32 bytes).
    #[error("the secret is not 32 bytes of unpadded base64url: {0}")]
    Secret(String),
}
