//! The batched generation loop.

use super::{row_rng, FinishReason, Generation, SamplingConfig, TokenPicker};
use crate::models::attention::MASK_VALUE;
use crate::models::{no_grad, AttentionInputs, CausalLm, KvCache};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// Generates a response for each of `prompts` (token ids, any lengths >= 1) with
/// `model` on `device`, as `config` says.
///
/// Prompts are left-padded to a common length; the whole batch is prefilled once and
/// then extended one token per step through a [`KvCache`]. Only the last position's
/// logits are computed, and they stay on `device`: the next tokens are chosen there
/// (see [`TokenPicker`]) and only their ids come back to the host. A row that produces an
/// end-of-sequence token stops (the token is kept); afterwards it is fed padding that
/// is masked out of attention. The loop ends when every row has stopped or after
/// `max_new_tokens` steps. With the same `config.seed` the result is reproducible.
///
/// Runs on detached weights ([`no_grad`]): no autograd graph is built. The key/value
/// cache and the key mask are allocated once for the prompt width plus
/// `max_new_tokens` and written in place each step.
pub fn generate<M, P>(
    model: &M,
    prompts: &[P],
    config: &SamplingConfig,
    device: &Device,
) -> Result<Generation>
where
    M: CausalLm + ?Sized,
    P: AsRef<[u32]>,
{
    config.validate()?;
    let prompts: Vec<Vec<u32>> = prompts.iter().map(|p| p.as_ref().to_vec()).collect();
    if prompts.is_empty() {
        return Err(Error::Input("generate needs at least one prompt".into()));
    }
    if let Some(i) = prompts.iter().position(Vec::is_empty) {
        return Err(Error::Input(format!("prompt {i} is empty")));
    }
    if config.max_new_tokens == 0 {
        let b = prompts.len();
        return Ok(Generation {
            prompts,
            responses: vec![Vec::new(); b],
            finish_reasons: vec![FinishReason::Length; b],
        });
    }

    no_grad(|| decode(model, prompts, config, device))
}

/// The loop of [`generate`] (on detached weights), for non-empty prompts and at least
/// one new token.
fn decode<M: CausalLm + ?Sized>(
    model: &M,
    prompts: Vec<Vec<u32>>,
    config: &SamplingConfig,
    device: &Device,
) -> Result<Generation> {
    let b = prompts.len();
    let mut responses = vec![Vec::new(); b];
    let mut finish = vec![FinishReason::Length; b];
    let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut ids = Vec::with_capacity(b * width);
    for p in &prompts {
        let pad = width - p.len();
        ids.extend(std::iter::repeat_n(config.pad_token_id, pad).chain(p.iter().copied()));
    }
    let mut keys = DecodeInputs::new(&prompts, width + config.max_new_tokens, device)?;
    let mut rngs: Vec<_> = (0..b).map(|row| row_rng(config.seed, row)).collect();
    let mut picker = TokenPicker::default();
    let mut cache = model.new_cache();
    cache.reserve(width + config.max_new_tokens);
    let input = Tensor::from_vec(ids, (b, width), device)?;
    let prefill = AttentionInputs::new(Some(&keys.mask()?), b, width, 0, DType::F32, device)?;
    let mut logits = last_logits(model, &input, &prefill, &mut cache)?;
    let mut active = vec![true; b];

    for step in 0..config.max_new_tokens {
        // One small device-to-host copy per step: the chosen ids (b values), which
        // the end-of-sequence bookkeeping needs.
        let picked = picker.pick(&logits, config, &mut rngs, &active)?;
        let mut next = vec![config.pad_token_id; b];
        for row in 0..b {
            if !active[row] {
                continue;
            }
            let token = picked[row];
            responses[row].push(token);
            next[row] = token;
            if config.is_eos(token) {
                active[row] = false;
                finish[row] = FinishReason::Eos;
            }
        }
        if step + 1 == config.max_new_tokens || !active.iter().any(|&a| a) {
            break;
        }
        let inputs = keys.step(&active)?;
        let input = Tensor::from_vec(next, (b, 1), device)?;
        logits = last_logits(model, &input, &inputs, &mut cache)?;
    }
    Ok(Generation {
        prompts,
        responses,
        finish_reasons: finish,
    })
}

/// The key mask of a generation, extended in place by a column a step, and the
/// per-row count of real tokens: each decoding step's positions and additive mask come
/// from these without rebuilding the mask over all keys (no concatenation, no
/// cumulative sum, no causal triangle: one query sees every earlier key).
struct DecodeInputs {
    /// `(b, capacity)` f32, 1 for a real key, 0 for padding; the first `keys` columns
    /// are filled.
    real: Tensor,
    keys: usize,
    /// Real tokens per row so far (the position of a row's next real token).
    counts: Vec<u32>,
}

impl DecodeInputs {
    /// The left-padded prompts' key mask in a buffer of `capacity` columns.
    fn new(prompts: &[Vec<u32>], capacity: usize, device: &Device) -> Result<Self> {
        let (b, width) = (
            prompts.len(),
            prompts.iter().map(Vec::len).max().unwrap_or(0),
        );
        let mut mask = Vec::with_capacity(b * width);
        for p in prompts {
            mask.extend(std::iter::repeat_n(0f32, width - p.len()));
            mask.extend(std::iter::repeat_n(1f32, p.len()));
        }
        let real = Tensor::zeros((b, capacity.max(width)), DType::F32, device)?;
        real.slice_set(&Tensor::from_vec(mask, (b, width), device)?, 1, 0)?;
        let counts = prompts.iter().map(|p| p.len() as u32).collect();
        Ok(Self {
            real,
            keys: width,
            counts,
        })
    }

    /// The key mask `(b, keys)` so far.
    fn mask(&self) -> Result<Tensor> {
        Ok(self.real.narrow(1, 0, self.keys)?)
    }

    /// Adds the column of one new token per row (real for the `active` rows) and
    /// returns that token's positions `(b, 1)` and additive mask `(b, 1, 1, keys)`, as
    /// [`AttentionInputs::new`] would compute them (a padded row's query gets 0).
    fn step(&mut self, active: &[bool]) -> Result<AttentionInputs> {
        let device = self.real.device().clone();
        let b = active.len();
        if self.keys == self.real.dim(1)? {
            let grown = Tensor::zeros((b, 2 * self.keys), DType::F32, &device)?;
            grown.slice_set(&self.mask()?.contiguous()?, 1, 0)?;
            self.real = grown;
        }
        let column: Vec<f32> = active.iter().map(|&a| f32::from(u8::from(a))).collect();
        let column = Tensor::from_vec(column, (b, 1), &device)?;
        self.real.slice_set(&column, 1, self.keys)?;
        self.keys += 1;
        let positions: Vec<u32> = active
            .iter()
            .zip(&mut self.counts)
            .map(|(&a, count)| {
                if a {
                    *count += 1;
                    *count - 1
                } else {
                    0
                }
            })
            .collect();
        let mask = ((self.mask()? - 1.0)? * f64::from(-MASK_VALUE))?;
        Ok(AttentionInputs {
            positions: Tensor::from_vec(positions, (b, 1), &device)?,
            mask: mask.reshape((b, 1, 1, self.keys))?,
        })
    }
}

/// Runs `input` `(b, t)` through `model` after the cached positions and returns the
/// logits of the last position per row, `(b, vocab)` f32, left on the device.
fn last_logits<M: CausalLm + ?Sized>(
    model: &M,
    input: &Tensor,
    inputs: &AttentionInputs,
    cache: &mut KvCache,
) -> Result<Tensor> {
    let t = input.dim(1)?;
    let hidden = model.forward_hidden(input, inputs, Some(cache))?;
    let last = hidden.narrow(1, t - 1, 1)?;
    Ok(model.lm_head(&last)?.squeeze(1)?.to_dtype(DType::F32)?)
}
