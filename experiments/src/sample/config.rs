//! Generation settings.

use crate::{Error, Result};

/// How [`generate`](super::generate) chooses tokens and when it stops.
///
/// Hugging Face order of the logit processors: temperature, then top-k, then top-p.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingConfig {
    /// Most tokens generated per row (the end-of-sequence token included).
    pub max_new_tokens: usize,
    /// Softmax temperature; `0` means greedy decoding (argmax, lowest id on ties).
    pub temperature: f64,
    /// Keep only the `k` most likely tokens; `None` (or `k >= vocab`) disables it.
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `p`
    /// (nucleus sampling); `None` or `1.0` disables it.
    pub top_p: Option<f64>,
    /// Token ids that end a row (it is kept in the response); may be empty.
    pub eos_token_ids: Vec<u32>,
    /// Id used for left padding of prompts and for the steps after a row finished.
    pub pad_token_id: u32,
    /// Seed of the per-row ChaCha streams (see [`row_rng`](super::row_rng)); use a
    /// different seed for every batch (row `i` of two batches with one seed draws the
    /// same random numbers).
    pub seed: u64,
}

impl SamplingConfig {
    /// Greedy decoding of up to `max_new_tokens`, stopping at `eos`.
    pub fn greedy(max_new_tokens: usize, eos: u32, pad: u32) -> Self {
        Self {
            max_new_tokens,
            temperature: 0.0,
            top_k: None,
            top_p: None,
            eos_token_ids: vec![eos],
            pad_token_id: pad,
            seed: 0,
        }
    }

    /// Ancestral sampling at `temperature` (no top-k / top-p) with `seed`.
    pub fn sampling(
        max_new_tokens: usize,
        temperature: f64,
        eos: u32,
        pad: u32,
        seed: u64,
    ) -> Self {
        Self {
            temperature,
            seed,
            ..Self::greedy(max_new_tokens, eos, pad)
        }
    }

    /// The same settings with top-k filtering.
    pub fn with_top_k(mut self, k: usize) -> Self {
        self.top_k = Some(k);
        self
    }

    /// The same settings with nucleus (top-p) filtering.
    pub fn with_top_p(mut self, p: f64) -> Self {
        self.top_p = Some(p);
        self
    }

    /// The same settings with another seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Whether decoding is greedy.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Whether `token` ends a row.
    pub fn is_eos(&self, token: u32) -> bool {
        self.eos_token_ids.contains(&token)
    }

    /// Checks the settings: finite temperature `>= 0`, `top_k >= 1`, `0 < top_p <= 1`.
    pub fn validate(&self) -> Result<()> {
        if !self.temperature.is_finite() || self.temperature < 0.0 {
            return Err(Error::Input(format!(
                "temperature must be finite and >= 0, found {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(Error::Input("top_k must be at least 1".into()));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(Error::Input(format!("top_p must be in (0, 1], found {p}")));
            }
        }
        Ok(())
    }
}
