//! Errors of the theory half.

use thiserror::Error;

/// Everything that can go wrong while building an instance or integrating a flow.
#[derive(Debug, Error)]
pub enum TheoryError {
    /// An input field failed validation; the message names the field and the fix.
    #[error("invalid input `{field}`: {reason}")]
    InvalidInput {
        /// The offending field (as it is spelled in the input file or API).
        field: String,
        /// What is wrong and how to fix it.
        reason: String,
    },
    /// The ODE solver gave up (step-size underflow, too many steps, stiffness).
    #[error("integration failed: {0}")]
    Integration(String),
    /// A metric of the shared core rejected its input.
    #[error(transparent)]
    Metrics(#[from] rmteach::metrics::MetricsError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl TheoryError {
    /// Shorthand for [`TheoryError::InvalidInput`].
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TheoryError::InvalidInput {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Result type of the theory half.
pub type Result<T> = std::result::Result<T, TheoryError>;
