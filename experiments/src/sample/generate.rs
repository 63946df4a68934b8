//! The batched generation loop.

use super::{pick_tokens, row_rng, FinishReason, Generation, SamplingConfig};
use crate::models::{AttentionInputs, CausalLm, KvCache};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// Generates a response for each of `prompts` (token ids, any lengths >= 1) with
/// `model` on `device`, as `config` says.
///
/// Prompts are left-padded to a common length; the whole batch is prefilled once and
/// then extended one token per step through a [`KvCache`]. Only the last position's
/// logits are computed, and they stay on `device`: the next tokens are chosen there
/// (see [`pick_tokens`]) and only their ids come back to the host. A row that produces an
/// end-of-sequence token stops (the token is kept); afterwards it is fed padding that
/// is masked out of attention. The loop ends when every row has stopped or after
/// `max_new_tokens` steps. With the same `config.seed` the result is reproducible.
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
    let b = prompts.len();
    let mut responses = vec![Vec::new(); b];
    let mut finish = vec![FinishReason::Length; b];
    if config.max_new_tokens == 0 {
        return Ok(Generation {
            prompts,
            responses,
            finish_reasons: finish,
        });
    }

    let width = prompts.iter().map(Vec::len).max().unwrap_or(0);
    // Key mask over every position so far, (b, keys) u32 on the device; grows by a
    // column a step (the rows still active), so it is never read back.
    let mut mask = Vec::with_capacity(b * width);
    let mut ids = Vec::with_capacity(b * width);
    for p in &prompts {
        let pad = width - p.len();
        ids.extend(std::iter::repeat_n(config.pad_token_id, pad).chain(p.iter().copied()));
        mask.extend(std::iter::repeat_n(0u32, pad).chain(std::iter::repeat_n(1u32, p.len())));
    }
    let mut key_mask = Tensor::from_vec(mask, (b, width), device)?;
    let mut rngs: Vec<_> = (0..b).map(|row| row_rng(config.seed, row)).collect();
    let mut cache = model.new_cache();
    let input = Tensor::from_vec(ids, (b, width), device)?;
    let mut logits = last_logits(model, &input, &key_mask, &mut cache, device)?;
    let mut active = vec![true; b];

    for step in 0..config.max_new_tokens {
        // One small device-to-host copy per step: the chosen ids (b values), which
        // the end-of-sequence bookkeeping needs.
        let picked = pick_tokens(&logits, config, &mut rngs, &active)?;
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
        let column: Vec<u32> = active.iter().map(|&a| u32::from(a)).collect();
        key_mask = Tensor::cat(&[&key_mask, &Tensor::from_vec(column, (b, 1), device)?], 1)?;
        let input = Tensor::from_vec(next, (b, 1), device)?;
        logits = last_logits(model, &input, &key_mask, &mut cache, device)?;
    }
    Ok(Generation {
        prompts,
        responses,
        finish_reasons: finish,
    })
}

/// Runs `input` `(b, t)` through `model` after the cached positions and returns the
/// logits of the last position per row, `(b, vocab)` f32, left on the device.
fn last_logits<M: CausalLm + ?Sized>(
    model: &M,
    input: &Tensor,
    key_mask: &Tensor,
    cache: &mut KvCache,
    device: &Device,
) -> Result<Tensor> {
    let (b, t) = input.dims2()?;
    let inputs = AttentionInputs::new(Some(key_mask), b, t, cache.len(), DType::F32, device)?;
    let hidden = model.forward_hidden(input, &inputs, Some(cache))?;
    let last = hidden.narrow(1, t - 1, 1)?;
    Ok(model.lm_head(&last)?.squeeze(1)?.to_dtype(DType::F32)?)
}
