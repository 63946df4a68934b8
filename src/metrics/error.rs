//! The error type shared by every metric function.

use thiserror::Error;

/// Why a metric could not be computed.
///
/// Every public metric function validates its input and reports the first
/// problem it finds through one of these variants; none of them panics or
/// returns a silent NaN.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MetricsError {
    /// Two inputs that must be paired element by element have different lengths.
    #[error("length mismatch in {what}: {left} vs {right} elements")]
    LengthMismatch {
        /// Which pair of inputs disagreed (for example `"probs vs rewards"`).
        what: &'static str,
        /// Length of the first input.
        left: usize,
        /// Length of the second input.
        right: usize,
    },

    /// An input that needs at least one element is empty.
    #[error("{what} is empty")]
    Empty {
        /// Which input was empty.
        what: &'static str,
    },

    /// An input has fewer elements than the metric needs.
    #[error("{what} needs at least {needed} elements, got {got}")]
    TooFew {
        /// Which input was too short, and for what.
        what: &'static str,
        /// The minimum number of elements.
        needed: usize,
        /// The number of elements given.
        got: usize,
    },

    /// An input element is NaN or infinite.
    #[error("{what}[{index}] is not finite (NaN or infinite)")]
    NotFinite {
        /// Which input held the value.
        what: &'static str,
        /// Position of the first non-finite value.
        index: usize,
    },

    /// A slice that must be a probability distribution is not one.
    #[error("invalid probability distribution: {reason}")]
    InvalidProbabilities {
        /// What is wrong with it (negative entry, wrong total, ...).
        reason: String,
    },

    /// A pair in a weighted pair list is malformed.
    #[error("invalid pair at position {index}: {reason}")]
    InvalidPair {
        /// Position of the pair in the list.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// The weights of a pair list cannot be normalised.
    #[error("invalid pair weights: {reason}")]
    InvalidWeights {
        /// What is wrong with them.
        reason: String,
    },

    /// A scalar parameter is out of its allowed range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with its value.
        reason: String,
    },

    /// A sequence that must be strictly increasing is not.
    #[error("{what} must be strictly increasing, but {what}[{index}] is not greater than the element before it")]
    NotIncreasing {
        /// Which input (for example `"times"`).
        what: &'static str,
        /// Position of the first element not greater than its predecessor (>= 1).
        index: usize,
    },

    /// An input is constant, which makes the requested quantity undefined.
    #[error("{what} is constant, so {consequence}")]
    ConstantInput {
        /// Which input was constant.
        what: &'static str,
        /// Why that is a problem for this metric.
        consequence: &'static str,
    },

    /// A result overflowed `f64` although every input was finite.
    #[error("{what} is not finite: the inputs are too large in magnitude for f64 arithmetic")]
    Overflow {
        /// The quantity that overflowed.
        what: &'static str,
    },

    /// A per-group metric failed on one group (for example one prompt).
    #[error("group {index}: {error}")]
    InGroup {
        /// Position of the failing group.
        index: usize,
        /// The error for that group.
        error: Box<MetricsError>,
    },
}

impl MetricsError {
    /// Wraps this error to say it happened in group `index`.
    pub fn in_group(self, index: usize) -> Self {
        Self::InGroup {
            index,
            error: Box::new(self),
        }
    }
}

/// `Result` with [`MetricsError`] as the default error type.
///
/// The default parameter keeps two-argument `Result<T, E>` working in code
/// that glob-imports `rmteach::metrics::*`.
pub type Result<T, E = MetricsError> = std::result::Result<T, E>;
