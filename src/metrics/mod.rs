//! Metrics shared by the gradient-flow simulator and the language-model pipeline.
//!
//! - reward variance, exact ([`reward_variance`]) and from samples
//!   ([`sample_variance`], [`mean_prompt_variance`]);
//! - accuracy in the sense of Definition 1 of the paper under any pair
//!   distribution ([`accuracy_weighted`], [`accuracy_uniform`],
//!   [`on_policy_accuracy`], [`off_policy_accuracy`]);
//! - reward normalisation ([`Normalizer`]);
//! - KL divergence ([`kl_divergence`], [`kl_from_logits`]) and a stable
//!   [`softmax`] / [`log_softmax`];
//! - threshold crossings of trajectories ([`first_crossing`], [`t_gamma`]);
//! - correlations ([`pearson`], [`spearman`]).
//!
//! Every function that can receive bad input returns
//! [`Result<_, MetricsError>`](MetricsError); none panics or returns a silent NaN.
//!
//! ```
//! use rmteach::metrics::{accuracy_uniform, reward_variance, softmax};
//!
//! let policy = softmax(&[0.0, 0.0, 2f64.ln()]); // [0.25, 0.25, 0.5]
//! let r_g = [0.0, 2.0, 4.0];
//! assert!((reward_variance(&policy, &r_g)? - 2.75).abs() < 1e-12);
//! // A reward model that gets one of the three pairs wrong.
//! let r_rm = [0.0, 5.0, 4.0];
//! assert!((accuracy_uniform(&r_rm, &r_g)? - 2.0 / 3.0).abs() < 1e-12);
//! # Ok::<(), rmteach::metrics::MetricsError>(())
//! ```

mod accuracy;
mod correlation;
mod crossing;
mod error;
mod groups;
mod kl;
mod normalize;
mod order;
mod softmax;
mod validate;
mod variance;

pub use accuracy::{
    accuracy_uniform, accuracy_uniform_quadratic, accuracy_weighted, off_policy_accuracy,
    on_policy_accuracy, pair_agrees, prompt_on_policy_accuracies, ScoredPair, WeightedPair,
};
pub use correlation::{average_ranks, pearson, spearman};
pub use crossing::{first_crossing, t_gamma};
pub use error::{MetricsError, Result};
pub use kl::{kl_divergence, kl_from_logits};
pub use normalize::{Normalizer, DEFAULT_NORMALIZER_EPS};
pub use softmax::{log_softmax, softmax, try_log_softmax, try_softmax};
pub use validate::PROBABILITY_SUM_TOLERANCE;
pub use variance::{
    expected_reward, mean_prompt_variance, prompt_variances, reward_variance, sample_variance,
    VarianceEstimator,
};
