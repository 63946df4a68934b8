//! # rmteach-theory — gradient flow that checks the theory numerically
//!
//! Policies ([`policy`]): tabular softmax (Eq. 3) and general autoregressive ones over
//! `V^L` by exact enumeration (Eq. 2). The KL-regularised objective and its exact
//! gradient ([`objective`]). The gradient flow integrated with `ode_solvers`, with
//! `t_gamma` located by event detection ([`flow`]). The paper's bounds with every
//! constant ([`bounds`]), the instances that realise its constructions
//! ([`constructions`]), Best-of-N ([`best_of_n`]), discrete stochastic policy gradient
//! (SGD or Adam, exact or k-sample gradients: [`discrete`]), the measurements that checks,
//! tightness searches and figures share ([`measure`]), and one check per result
//! ([`checks`]), run together by `rmteach theory verify`.

pub mod best_of_n;
pub mod bounds;
pub mod checks;
pub mod constructions;
pub mod discrete;
mod error;
pub mod figures;
pub mod fixed_point;
pub mod flow;
pub mod instance;
pub mod json;
pub mod levers;
pub mod measure;
pub mod objective;
pub mod policy;
pub mod tightness;

pub use error::{Result, TheoryError};
