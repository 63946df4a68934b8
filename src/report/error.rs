//! The error type of the report writers.

use std::path::PathBuf;

use thiserror::Error;

/// Why a table or document could not be built, parsed, read or written.
#[derive(Debug, Error)]
pub enum ReportError {
    /// A row has a different number of cells than the table has columns.
    #[error("row has {got} cells but the table has {expected} columns")]
    RowLength {
        /// Number of columns.
        expected: usize,
        /// Number of cells in the row.
        got: usize,
    },

    /// Two columns share a name (JSON rows are keyed by column name).
    #[error("column name {name:?} appears more than once")]
    DuplicateColumn {
        /// The repeated name.
        name: String,
    },

    /// A file stem is empty or would leave the output directory.
    #[error(
        "invalid file stem {stem:?}: it must be a non-empty file name without path separators"
    )]
    InvalidStem {
        /// The rejected stem.
        stem: String,
    },

    /// A JSON value does not have the shape [`Table::to_json`](super::Table::to_json) writes.
    #[error("invalid table JSON: {reason}")]
    InvalidJson {
        /// What is wrong with it.
        reason: String,
    },

    /// A report document file could not be read.
    #[error("could not read {} (report blocks written with the report)", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A report document file is not a document's JSON.
    #[error("{} is not a report document: {source}", path.display())]
    Document {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },

    /// Creating a directory or writing a file failed.
    #[error("could not write {}", path.display())]
    Io {
        /// The directory or file being written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
}
