//! Measurements shared by the checks, the tightness search and the figures: seeded
//! random ingredients ([`sample`]), flows whose horizon grows until the crossing is
//! inside ([`horizon`]), Proposition 3's reward-scaling sweep ([`scaling`]) and
//! Theorem 4's autoregressive `t_gamma` measurement ([`autoregressive`]). Judging them
//! (margins, slopes, pass or fail) is [`crate::checks`]' job.

pub(crate) mod autoregressive;
pub(crate) mod horizon;
pub(crate) mod sample;
pub(crate) mod scaling;
