//! Errors of reading a record: each names the file and, for JSON lines, the line.

use std::path::{Path, PathBuf};

/// A record file is missing, unreadable or not in its documented format.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file does not exist.
    #[error("{path}: missing input ({what})")]
    Missing {
        /// The file that was expected.
        path: PathBuf,
        /// What it should hold and which stage writes it.
        what: String,
    },
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The JSON does not parse into the record type.
    #[error("{path}{}: {source}", line_suffix(*line))]
    Json {
        /// The file.
        path: PathBuf,
        /// The 1-based line of a JSON-lines file.
        line: Option<usize>,
        /// The parser's error (names the field and column).
        source: serde_json::Error,
    },
    /// The JSON parses but breaks a rule of the format.
    #[error("{path}{}: {message}", line_suffix(*line))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The 1-based line of a JSON-lines file.
        line: Option<usize>,
        /// Which rule, and the value that breaks it.
        message: String,
    },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

/// The file's text; a missing file is [`RecordError::Missing`] saying `what` it holds.
pub(crate) fn read_text(path: &Path, what: &str) -> Result<String, RecordError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(RecordError::Missing {
            path: path.to_path_buf(),
            what: what.to_string(),
        }),
        Err(source) => Err(RecordError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}
