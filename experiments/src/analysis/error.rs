//! Errors of the analysis stage: every failure names the file or the quantity at fault.

use std::path::PathBuf;

/// What can go wrong while reading a run directory or writing its report.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
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
    /// A seed's evaluation log has no epoch-0 (initial policy) record, so no increase
    /// can be measured.
    #[error("pg/{reward}/seed{seed}/eval.jsonl: no epoch-0 (initial policy) record")]
    NoInitialRecord {
        /// The reward (its directory under `pg/`).
        reward: String,
        /// The seed.
        seed: u64,
    },
    /// A mean over seeds was asked of no seeds.
    #[error("mean over zero seeds")]
    NoSeeds,
    /// A statistic of finite-looking inputs failed (a non-finite value).
    #[error("{what}: {source}")]
    Statistic {
        /// Which statistic.
        what: &'static str,
        /// The metrics error.
        source: rmteach::metrics::MetricsError,
    },
    /// A cross-policy report was asked of a run without policy-gradient runs.
    #[error("{}: no policy-gradient runs under pg/", run.display())]
    NoPolicyGradient {
        /// The run directory.
        run: PathBuf,
    },
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
