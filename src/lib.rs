//! # rmteach — the shared core
//!
//! Metrics used by both halves of the toolkit (the gradient-flow simulator in
//! `rmteach-theory` and the language-model pipeline in `rmteach-experiments`):
//! reward variance, accuracy over any pair distribution, normalisation, `t_gamma`,
//! KL divergence and correlations ([`metrics`]); report tables written as markdown,
//! CSV and JSON ([`report`]); and figures written as PNG and SVG ([`plot`]).
//!
//! The same function computes a quantity for a 10-output tabular policy and for
//! 5,000 sampled language-model responses: there are no twin implementations.

pub mod fuzz;
pub mod metrics;
pub mod plot;
pub mod report;
