//! Errors of the analysis stage: every failure names the file or the quantity at fault.

use std::path::PathBuf;

/// What can go wrong while reading a run directory or writing its report.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// A required input file does not exist.
    #[error("{path}: missing input ({what})")]
    MissingFile {
        /// The file that was expected.
        path: PathBuf,
        /// What it should hold and which stage writes it.
        what: String,
    },
    /// A record file of the run is missing or malformed.
    #[error(transparent)]
    Record(#[from] crate::records::RecordError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file is not in the documented format.
    #[error("{path}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The 1-based line of a JSONL file, if any.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The inputs are readable but inconsistent (for example no epoch 0).
    #[error("{0}")]
    Invalid(String),
    /// Writing a table failed.
    #[error(transparent)]
    Report(#[from] rmteach::report::ReportError),
    /// Drawing a figure failed.
    #[error(transparent)]
    Plot(#[from] rmteach::plot::PlotError),
}

/// Result with [`AnalysisError`].
pub type Result<T> = std::result::Result<T, AnalysisError>;

/// An [`AnalysisError::Io`] for `path`.
pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> AnalysisError + '_ {
    move |source| AnalysisError::Io {
        path: path.to_path_buf(),
        source,
    }
}
