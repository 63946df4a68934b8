//! Errors of the data module.

use crate::text::TextError;
use std::path::PathBuf;

/// Errors from reading, filtering or splitting a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file as a whole cannot be read as a dataset (unknown extension, not
    /// parquet, not a JSON array).
    #[error("{file}: {message}")]
    File {
        /// The file.
        file: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A row lacks a column or has a malformed value.
    #[error("{file}: row {row}, column `{column}`: {message} ({hint})")]
    Row {
        /// The file.
        file: PathBuf,
        /// 1-based row number (for JSONL, the line number).
        row: usize,
        /// The column (`<row>` when the row itself is malformed).
        column: String,
        /// What is wrong.
        message: String,
        /// How to fix it.
        hint: String,
    },
    /// Tokenizing a text (for the length filter) failed.
    #[error(transparent)]
    Text(#[from] TextError),
    /// An argument is out of range (a fraction outside [0, 1]).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl DataError {
    /// A [`DataError::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}
