//! Log-probabilities of response tokens under a causal language model, from one
//! full-sequence forward pass, differentiable with respect to the model's weights;
//! and the per-token log-ratio against a frozen reference model (the KL penalty
//! `sum_t (log pi - log pi_ref)` of RLHF).
//!
//! A [`SequenceBatch`] lays each row out as `[pad.., prompt, response, pad..]`: prompts
//! are left-padded to a common width `P` so every response starts at column `P` (the
//! layout [`crate::sample::generate`] decodes in), and only the logits of positions
//! `P - 1 ..` are computed.

use crate::models::{no_grad, AttentionInputs, CausalLm};
use crate::ops::{linear_picked_logprob, picked_logprob};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};

/// Prompt-plus-response token ids ready for scoring.
#[derive(Debug, Clone)]
pub struct SequenceBatch {
    /// `(batch, P + R)` u32: left-padded prompts then right-padded responses.
    pub input_ids: Tensor,
    /// `(batch, P + R)` u32: 1 for prompt and response tokens, 0 for padding.
    pub attention_mask: Tensor,
    /// `(batch, R)` f32: 1 for response tokens, 0 for padding.
    pub response_mask: Tensor,
    /// `P`, the column where every response starts.
    pub prompt_width: usize,
    /// `R`, the longest response.
    pub response_width: usize,
}

impl SequenceBatch {
    /// Lays out `prompts[i]` followed by `responses[i]` per row, padding with `pad`.
    /// Fails when the lists differ in length, are empty, or a prompt is empty.
    pub fn new<P, R>(prompts: &[P], responses: &[R], pad: u32, device: &Device) -> Result<Self>
    where
        P: AsRef<[u32]>,
        R: AsRef<[u32]>,
    {
        if prompts.len() != responses.len() {
            return Err(Error::Input(format!(
                "{} prompts but {} responses",
                prompts.len(),
                responses.len()
            )));
        }
        if prompts.is_empty() {
            return Err(Error::Input(
                "a sequence batch needs at least one row".into(),
            ));
        }
        if let Some(i) = prompts.iter().position(|p| p.as_ref().is_empty()) {
            return Err(Error::Input(format!("prompt {i} is empty")));
        }
        let b = prompts.len();
        let pw = prompts.iter().map(|p| p.as_ref().len()).max().unwrap_or(0);
        let rw = responses
            .iter()
            .map(|r| r.as_ref().len())
            .max()
            .unwrap_or(0);
        let t = pw + rw;
        let (mut ids, mut mask) = (Vec::with_capacity(b * t), Vec::with_capacity(b * t));
        let mut resp_mask = Vec::with_capacity(b * rw);
        for (p, r) in prompts.iter().zip(responses) {
            let (p, r) = (p.as_ref(), r.as_ref());
            let (lead, tail) = (pw - p.len(), rw - r.len());
            ids.extend(std::iter::repeat_n(pad, lead));
            ids.extend_from_slice(p);
            ids.extend_from_slice(r);
            ids.extend(std::iter::repeat_n(pad, tail));
            mask.extend(std::iter::repeat_n(0u32, lead));
            mask.extend(std::iter::repeat_n(1u32, p.len() + r.len()));
            mask.extend(std::iter::repeat_n(0u32, tail));
            resp_mask.extend(std::iter::repeat_n(1f32, r.len()));
            resp_mask.extend(std::iter::repeat_n(0f32, tail));
        }
        Ok(Self {
            input_ids: Tensor::from_vec(ids, (b, t), device)?,
            attention_mask: Tensor::from_vec(mask, (b, t), device)?,
            response_mask: Tensor::from_vec(resp_mask, (b, rw), device)?,
            prompt_width: pw,
            response_width: rw,
        })
    }

    /// Number of rows.
    pub fn batch_size(&self) -> usize {
        self.input_ids.dims().first().copied().unwrap_or(0)
    }
}

/// Per-token log-probabilities `(batch, R)` f32 of the response tokens of `batch`
/// under `model`, 0 at response padding; differentiable (gradients reach the model).
pub fn token_logprobs<M: CausalLm + ?Sized>(model: &M, batch: &SequenceBatch) -> Result<Tensor> {
    let (b, t) = batch.input_ids.dims2()?;
    let (p, r) = (batch.prompt_width, batch.response_width);
    if r == 0 {
        return Ok(Tensor::zeros((b, 0), DType::F32, batch.input_ids.device())?);
    }
    // The last token predicts nothing that is scored: run the first t - 1 positions.
    let ids = batch.input_ids.narrow(1, 0, t - 1)?;
    let mask = batch.attention_mask.narrow(1, 0, t - 1)?;
    let inputs = AttentionInputs::new(Some(&mask), b, t - 1, 0, DType::F32, ids.device())?;
    let hidden = model.forward_hidden(&ids, &inputs, None)?;
    let targets = batch.input_ids.narrow(1, p, r)?.contiguous()?;
    let picked = head_logprobs(model, &hidden.narrow(1, p - 1, r)?, &targets)?;
    Ok((picked * &batch.response_mask)?)
}

/// Log-probabilities `(batch, n)` f32 of `targets` `(batch, n)` under the model's output
/// head applied to `hidden` `(batch, n, d)`: fused with the head when it is a plain
/// linear map ([`CausalLm::lm_head_weight`]), else logits first.
pub fn head_logprobs<M: CausalLm + ?Sized>(
    model: &M,
    hidden: &Tensor,
    targets: &Tensor,
) -> Result<Tensor> {
    match model.lm_head_weight() {
        Some(w) => linear_picked_logprob(hidden, &w, targets),
        None => picked_logprob(&model.lm_head(hidden)?.to_dtype(DType::F32)?, targets),
    }
}

/// [`token_logprobs`] without the autograd graph ([`no_grad`]): the same values, no
/// gradient, and each layer's activations freed as the next layer runs. For the old
/// and reference log-probabilities of a rollout.
pub fn inference_logprobs<M: CausalLm + ?Sized>(
    model: &M,
    batch: &SequenceBatch,
) -> Result<Tensor> {
    no_grad(|| token_logprobs(model, batch))
}

/// Summed log-probability `(batch,)` of each row's response tokens; differentiable.
pub fn sequence_logprobs<M: CausalLm + ?Sized>(model: &M, batch: &SequenceBatch) -> Result<Tensor> {
    Ok(token_logprobs(model, batch)?.sum(1)?)
}

/// Per-token log-ratio `log pi - log pi_ref` `(batch, R)` of the response tokens, 0 at
/// padding. Gradients flow to `policy` only (`reference` is detached).
pub fn token_log_ratio<P, R>(policy: &P, reference: &R, batch: &SequenceBatch) -> Result<Tensor>
where
    P: CausalLm + ?Sized,
    R: CausalLm + ?Sized,
{
    let pi = token_logprobs(policy, batch)?;
    let pi_ref = inference_logprobs(reference, batch)?;
    Ok((pi - pi_ref)?)
}

/// Summed log-ratio `sum_t (log pi - log pi_ref)` `(batch,)` over response tokens (the
/// sequence-level KL estimate of the RLOO reward penalty).
pub fn log_ratio<P, R>(policy: &P, reference: &R, batch: &SequenceBatch) -> Result<Tensor>
where
    P: CausalLm + ?Sized,
    R: CausalLm + ?Sized,
{
    Ok(token_log_ratio(policy, reference, batch)?.sum(1)?)
}
