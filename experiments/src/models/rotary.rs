//! Rotary position embedding (differentiable; the rotation itself is `ops::rotary`), in the
//! "rotate half" layout of transformers, with optional Llama 3 frequency scaling and
//! partial rotation (GPT-NeoX rotates only the first `dim` of each head).

use super::config::{RopeConfig, RopeScaling};
use crate::Result;
use candle_core::{DType, Tensor, D};

/// Inverse frequencies for `dim` rotated dimensions.
#[derive(Debug, Clone)]
pub struct Rotary {
    dim: usize,
    inv_freq: Vec<f32>,
}

impl Rotary {
    /// Frequencies `theta^(-2i/dim)`, scaled as `rope.scaling` says.
    pub fn new(dim: usize, rope: &RopeConfig) -> Self {
        let inv_freq = (0..dim / 2)
            .map(|i| {
                let f = 1.0 / rope.theta.powf(2.0 * i as f64 / dim as f64);
                scale_frequency(f, &rope.scaling) as f32
            })
            .collect();
        Self { dim, inv_freq }
    }

    /// Number of rotated dimensions per head.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// `(cos, sin)` of shape `(batch, 1, time, dim)` for `positions` `(batch, time)` (u32).
    pub fn tables(&self, positions: &Tensor, dtype: DType) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let inv = Tensor::from_slice(&self.inv_freq, (1, 1, half), positions.device())?;
        let pos = positions.to_dtype(DType::F32)?.unsqueeze(2)?;
        let freqs = pos.broadcast_mul(&inv)?;
        let emb = Tensor::cat(&[&freqs, &freqs], D::Minus1)?;
        let cos = emb.cos()?.to_dtype(dtype)?.unsqueeze(1)?;
        let sin = emb.sin()?.to_dtype(dtype)?.unsqueeze(1)?;
        Ok((cos, sin))
    }

    /// Rotates the first `dim` dimensions of `x` `(batch, heads, time, head_dim)` and
    /// passes the rest through (one fused node where it applies: [`crate::ops::rotary`]).
    pub fn apply(&self, x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
        crate::ops::rotary(x, cos, sin, self.dim)
    }
}

/// Applies the frequency scaling to one inverse frequency (transformers'
/// `_compute_llama3_parameters`).
fn scale_frequency(inv_freq: f64, scaling: &RopeScaling) -> f64 {
    match *scaling {
        RopeScaling::None => inv_freq,
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            let old = original_max_position_embeddings as f64;
            let low_freq_wavelen = old / low_freq_factor;
            let high_freq_wavelen = old / high_freq_factor;
            let wavelen = 2.0 * std::f64::consts::PI / inv_freq;
            if wavelen < high_freq_wavelen {
                inv_freq
            } else if wavelen > low_freq_wavelen {
                inv_freq / factor
            } else {
                let smooth =
                    (old / wavelen - low_freq_factor) / (high_freq_factor - low_freq_factor);
                (1.0 - smooth) * inv_freq / factor + smooth * inv_freq
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_scaling_keeps_high_and_divides_low_frequencies() {
        let rope = RopeConfig {
            theta: 500_000.0,
            scaling: RopeScaling::Llama3 {
                factor: 32.0,
                low_freq_factor: 1.0,
                high_freq_factor: 4.0,
                original_max_position_embeddings: 8192,
            },
        };
        let plain = Rotary::new(
            64,
            &RopeConfig {
                theta: 500_000.0,
                scaling: RopeScaling::None,
            },
        );
        let scaled = Rotary::new(64, &rope);
        assert_eq!(scaled.inv_freq[0], plain.inv_freq[0]);
        let last = plain.inv_freq.len() - 1;
        assert!((scaled.inv_freq[last] * 32.0 - plain.inv_freq[last]).abs() < 1e-12);
        for (s, p) in scaled.inv_freq.iter().zip(&plain.inv_freq) {
            assert!(s <= p && *s >= p / 32.0 * 0.999);
        }
    }
}
