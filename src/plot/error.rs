//! Errors raised while checking or drawing a figure.

use std::path::PathBuf;

/// Everything that can go wrong while rendering a figure.
///
/// Every variant names the file (or the path stem `<stem>.{png,svg}`) it was
/// writing and what failed; rendering never panics on bad data.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// The data handed to the figure cannot be plotted (empty series,
    /// mismatched lengths, non-finite values, ...).
    #[error("cannot plot {}.{{png,svg}} (figure {figure:?}): {problem}", stem.display())]
    Data {
        /// The path stem the figure was to be written to.
        stem: PathBuf,
        /// The title of the figure (or panel) holding the bad data.
        figure: String,
        /// What is wrong with the data.
        problem: DataError,
    },
    /// A folder for the output could not be created.
    #[error("cannot create folder {} for a figure: {source}", path.display())]
    Io {
        /// The folder that could not be created.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The plotting backend failed while drawing or writing a file.
    #[error("failed to draw {}: {message}", path.display())]
    Draw {
        /// The file being written (`.png` or `.svg`).
        path: PathBuf,
        /// The backend's error message.
        message: String,
    },
    /// The embedded font could not be registered with the text renderer.
    #[error("cannot register the embedded font {name:?} for figure text")]
    Font {
        /// The font family name that failed to register.
        name: String,
    },
}

/// What is wrong with the data of a figure (wrapped in [`PlotError::Data`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DataError {
    /// The figure has nothing to draw (no series, no bars, no panels...).
    #[error("nothing to draw: {what}")]
    Empty {
        /// What is missing (e.g. `"no series"`).
        what: String,
    },
    /// A series holds no points.
    #[error("series {series:?} is empty")]
    EmptySeries {
        /// Label of the offending series.
        series: String,
    },
    /// Two vectors that must have the same length do not.
    #[error("{what} of {series:?} has {got} values, expected {expected}")]
    LengthMismatch {
        /// Label of the offending series (or bar series / heatmap).
        series: String,
        /// Which vector is too short or too long (e.g. `"y"`, `"y_err"`).
        what: String,
        /// The required length.
        expected: usize,
        /// The length found.
        got: usize,
    },
    /// A value is NaN or infinite.
    #[error("{what}[{index}] of {series:?} is not finite ({value})")]
    NonFinite {
        /// Label of the offending series.
        series: String,
        /// Which vector holds the value (e.g. `"x"`, `"y"`, `"z[3]"`).
        what: String,
        /// Index of the value.
        index: usize,
        /// The value itself.
        value: f64,
    },
    /// A value is out of its allowed domain (a negative error bar, a
    /// heatmap axis that is not strictly increasing, a marker outside the map...).
    #[error("{what} of {series:?}: {reason}")]
    Invalid {
        /// Label of the offending series.
        series: String,
        /// Which vector or item is invalid.
        what: String,
        /// Why it is invalid.
        reason: String,
    },
    /// On a logarithmic axis every point of a series had a non-positive
    /// coordinate, so nothing is left to draw.
    #[error("series {series:?} has no positive {axis} values to show on a log axis")]
    NothingOnLogAxis {
        /// Label of the offending series.
        series: String,
        /// `"x"` or `"y"`.
        axis: String,
    },
    /// A grid layout was asked for zero columns.
    #[error("a grid needs at least one column")]
    ZeroColumns,
}

impl DataError {
    /// Attach the output stem and figure title, making a [`PlotError`].
    pub(crate) fn at(self, stem: &std::path::Path, figure: &str) -> PlotError {
        PlotError::Data {
            stem: stem.to_path_buf(),
            figure: figure.to_string(),
            problem: self,
        }
    }
}
