//! What a command answers when it does not do what was asked: the web
//! kernel maps each case to `application/problem+json` once.

use motcua_domain::dossier::DomainError;
use motcua_domain::procedure::FieldError;
use motcua_store::StoreError;

/// A per-field problem: the field and a message key with its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldProblem {
    pub field: String,
    pub code: String,
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl FieldProblem {
    pub fn new(field: &str, code: &str) -> Self {
        Self {
            field: field.to_string(),
            code: code.to_string(),
            params: serde_json::Map::new(),
        }
    }

    /// The same problem with one argument of its message.
    pub fn with(mut self, name: &str, value: impl Into<serde_json::Value>) -> Self {
        self.params.insert(name.to_string(), value.into());
        self
    }
}

impl From<FieldError> for FieldProblem {
    fn from(e: FieldError) -> Self {
        Self {
            field: e.field,
            code: e.code.to_string(),
            params: e.params,
        }
    }
}

/// Why a command did nothing.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The input is wrong; each problem names its field.
    #[error("invalid input: {0:?}")]
    Invalid(Vec<FieldProblem>),
    /// What the command acts on does not exist (or may not be known to
    /// the caller).
    #[error("not found")]
    NotFound,
    /// The caller may not do this; the detail says why, for a person.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// The request is understood but refused as a whole, with a stable
    /// slug (`not-online` …).
    #[error("refused: {0}")]
    Refused(&'static str),
    /// Too many attempts: try again after this many seconds.
    #[error("too many attempts; retry after {0} s")]
    RateLimited(u64),
    /// The lifecycle refused the action.
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The store refused or failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Something that should not happen happened; the message is for the
    /// log, never for the caller.
    #[error("internal error: {0}")]
    Internal(String),
}

impl CommandError {
    /// One invalid field.
    pub fn field(field: &str, code: &str) -> Self {
        Self::Invalid(vec![FieldProblem::new(field, code)])
    }

    /// A failure that is no one's input: logged here, answered as 500.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::Internal(e.to_string())
    }
}

pub type CommandResult<T> = Result<T, CommandError>;
