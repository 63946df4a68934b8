//! Rotary-embedding settings, read from either spelling: transformers 4.x top-level
//! `rope_theta` (GPT-NeoX: `rotary_emb_base`) and `rope_scaling`, or transformers 5.x
//! `rope_parameters: {rope_type, rope_theta, ...}`.

use super::fields::{agree, Fields};
use crate::Result;

/// Default rotary base of both `LlamaConfig` and `GPTNeoXConfig` in transformers.
pub const DEFAULT_ROPE_THETA: f64 = 10_000.0;

/// Frequency scaling applied to the rotary inverse frequencies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE (`rope_type` `"default"` or no scaling given).
    None,
    /// Llama 3.1/3.2 scaling (`rope_type` `"llama3"`).
    Llama3 {
        /// `factor`: how much the low frequencies are divided by.
        factor: f64,
        /// `low_freq_factor`.
        low_freq_factor: f64,
        /// `high_freq_factor`.
        high_freq_factor: f64,
        /// `original_max_position_embeddings`: the pre-training context length.
        original_max_position_embeddings: usize,
    },
}

/// Rotary settings of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeConfig {
    /// Base of the inverse frequencies, `theta^(-2i/d)`.
    pub theta: f64,
    /// Frequency scaling.
    pub scaling: RopeScaling,
}

/// Reads the rotary settings of `f`. `extra_theta_keys` are further top-level spellings
/// of the base (GPT-NeoX 4.x: `rotary_emb_base`). When several spellings are present
/// they must agree; when none is, the base is [`DEFAULT_ROPE_THETA`] as in transformers.
pub fn parse_rope(f: &Fields<'_>, extra_theta_keys: &[&str]) -> Result<RopeConfig> {
    let params = f.object("rope_parameters", "rope_parameters")?;
    let legacy = f.object("rope_scaling", "rope_scaling")?;

    let mut thetas = vec![("rope_theta".to_string(), f.opt_f64("rope_theta")?)];
    for key in extra_theta_keys {
        thetas.push((key.to_string(), f.opt_f64(key)?));
    }
    if let Some(p) = &params {
        thetas.push((p.path("rope_theta"), p.opt_f64("rope_theta")?));
    }
    let theta = agree(f.file, &thetas)?.unwrap_or(DEFAULT_ROPE_THETA);
    if !(theta.is_finite() && theta > 0.0) {
        return Err(f.err(
            "rope_theta",
            format!("must be a positive number, found {theta}"),
        ));
    }

    let from_params = match &params {
        Some(p) => parse_scaling(p)?,
        None => RopeScaling::None,
    };
    let from_legacy = match &legacy {
        Some(l) => parse_scaling(l)?,
        None => RopeScaling::None,
    };
    let scaling = match (from_params, from_legacy) {
        (a, RopeScaling::None) => a,
        (RopeScaling::None, b) => b,
        (a, b) if a == b => a,
        (a, b) => {
            return Err(f.err(
                "rope_scaling",
                format!("{b:?} disagrees with `rope_parameters` ({a:?})"),
            ))
        }
    };
    Ok(RopeConfig { theta, scaling })
}

/// Reads the scaling type and its parameters from a `rope_scaling` or
/// `rope_parameters` object; rejects every type but `default` and `llama3`.
fn parse_scaling(p: &Fields<'_>) -> Result<RopeScaling> {
    let kind = match p.opt_str("rope_type")? {
        Some(k) => Some(("rope_type", k)),
        None => p.opt_str("type")?.map(|k| ("type", k)),
    };
    match kind {
        None | Some((_, "default")) => Ok(RopeScaling::None),
        Some((_, "llama3")) => {
            let original = p.positive("original_max_position_embeddings")?;
            let factor = p.f64("factor")?;
            let low = p.f64("low_freq_factor")?;
            let high = p.f64("high_freq_factor")?;
            if !(factor.is_finite() && factor > 0.0) {
                return Err(p.err("factor", format!("must be positive, found {factor}")));
            }
            if !(low.is_finite() && high.is_finite() && low > 0.0 && high > low) {
                return Err(p.err(
                    "high_freq_factor",
                    format!("need 0 < low_freq_factor < high_freq_factor, found {low} and {high}"),
                ));
            }
            Ok(RopeScaling::Llama3 {
                factor,
                low_freq_factor: low,
                high_freq_factor: high,
                original_max_position_embeddings: original,
            })
        }
        Some((key, other)) => Err(p.err(
            key,
            format!("rotary scaling type `{other}` is not supported (only `default` and `llama3`)"),
        )),
    }
}
