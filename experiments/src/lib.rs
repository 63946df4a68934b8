//! Language-model half of rmteach: trainable GPT-NeoX (Pythia) and Llama models in
//! candle with Hugging Face weight names, `config.json` parsing for the transformers
//! 4.x and 5.x spellings, and safetensors weight I/O.
//!
//! Every op on the training path has a backward pass in candle (no fused
//! `softmax_last_dim`, `rms_norm` or `rope` kernels), so every weight, held as a
//! [`candle_core::Var`] in a [`candle_nn::VarMap`], receives a gradient.

pub mod analysis;
pub mod bench;
pub mod data;
pub mod error;
pub mod hf;
pub mod kernel_check;
pub mod levers;
pub mod logprobs;
pub mod models;
pub mod ops;
pub mod pipeline;
pub mod progress;
pub mod records;
pub mod reward;
pub mod rundir;
pub mod runtime;
pub mod sample;
pub mod stages;
pub mod teacher;
pub mod text;
pub mod toy;

pub use error::{Error, Result};
