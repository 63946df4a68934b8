//! Choosing the next token of every row from its last-position logits: on the
//! logits' device for greedy decoding and plain temperature sampling
//! ([`pick_tokens`]), on the host for top-k / top-p ([`pick_token`], one row).

use super::SamplingConfig;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;

/// The generator of batch row `row` for `seed`: ChaCha8 seeded with `seed` on stream
/// `row`, so a row's draws do not depend on how long the other rows run.
pub fn row_rng(seed: u64, row: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(row as u64);
    rng
}

/// Higher logit first, lower id first among equal logits.
fn by_logit_desc(a: &(u32, f64), b: &(u32, f64)) -> Ordering {
    b.1.total_cmp(&a.1).then(a.0.cmp(&b.0))
}

/// The id of the largest logit (the lowest id among equal maxima).
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &l) in logits.iter().enumerate() {
        if l > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// Chooses a token from one row of `logits` (vocabulary order) as `config` says:
/// argmax when greedy, else temperature, top-k, top-p and one uniform draw from
/// `rng`. Fails on an empty row, a NaN or `+inf` logit, or all logits `-inf`.
pub fn pick_token(logits: &[f32], config: &SamplingConfig, rng: &mut ChaCha8Rng) -> Result<u32> {
    if logits.is_empty() {
        return Err(Error::Input(
            "cannot pick a token from an empty logit row".into(),
        ));
    }
    if let Some(bad) = logits.iter().find(|x| x.is_nan() || **x == f32::INFINITY) {
        return Err(Error::Input(format!("logit row contains {bad}")));
    }
    if config.is_greedy() {
        return Ok(argmax(logits));
    }
    let t = config.temperature;
    let mut cand: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, f64::from(l) / t))
        .collect();
    if let Some(k) = config.top_k {
        if k < cand.len() {
            cand.select_nth_unstable_by(k - 1, by_logit_desc);
            cand.truncate(k);
        }
    }
    let nucleus = config.top_p.filter(|&p| p < 1.0);
    if nucleus.is_some() {
        cand.sort_unstable_by(by_logit_desc);
    }
    let max = cand.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return Err(Error::Input("every logit of the row is -inf".into()));
    }
    let mut probs: Vec<f64> = cand.iter().map(|c| (c.1 - max).exp()).collect();
    let mut total: f64 = probs.iter().sum();
    if let Some(p) = nucleus {
        let mut cum = 0.0;
        let mut keep = probs.len();
        for (i, q) in probs.iter().enumerate() {
            cum += q / total;
            if cum >= p {
                keep = i + 1;
                break;
            }
        }
        probs.truncate(keep);
        cand.truncate(keep);
        total = probs.iter().sum();
    }
    let u = rng.random::<f64>() * total;
    let mut acc = 0.0;
    for (c, q) in cand.iter().zip(&probs) {
        acc += q;
        if u < acc {
            return Ok(c.0);
        }
    }
    // Rounding left `u` past the last cumulative sum: the last candidate with mass.
    let last = probs.iter().rposition(|&q| q > 0.0).unwrap_or(0);
    Ok(cand[last].0)
}

/// Chooses the next token of every row of `logits` `(batch, vocab)` (f32, on any
/// device) as `config` says, drawing from `rngs[row]` for the rows in `active` only
/// (a finished row's stream is left alone and its entry is meaningless).
///
/// Greedy decoding and temperature sampling without top-k / top-p run on the
/// logits' device: argmax, or inverse-CDF sampling with one uniform per row drawn on
/// the host from the row's ChaCha stream (the same draw [`pick_token`] makes) and a
/// blocked prefix sum of `exp((logits - max) / T)` in f32. Only the chosen ids and a
/// validity flag per row come back: one copy of `2 * batch` numbers. With top-k or
/// top-p the logits are copied to the host and [`pick_token`] chooses (a sort over the
/// vocabulary does not fit candle's CUDA sort kernel for large vocabularies).
///
/// Fails, as [`pick_token`] does, on a NaN or `+inf` logit or (when sampling) a row
/// whose logits are all `-inf`; and when `rngs` or `active` do not have a row each.
/// (A loop over many steps keeps one [`TokenPicker`] instead.)
pub fn pick_tokens(
    logits: &Tensor,
    config: &SamplingConfig,
    rngs: &mut [ChaCha8Rng],
    active: &[bool],
) -> Result<Vec<u32>> {
    TokenPicker::default().pick(logits, config, rngs, active)
}

/// [`pick_tokens`] over the steps of one generation: the vocabulary's column indices
/// the sampler needs are built on the device once, at the first step, not every step.
#[derive(Debug, Default)]
pub struct TokenPicker {
    ids: Option<Tensor>,
}

impl TokenPicker {
    /// The column indices `(1, vocab)` f32 on `dev`, built at the first call (and again
    /// only if the vocabulary or device changes).
    fn vocab_ids(&mut self, vocab: usize, dev: &Device) -> Result<Tensor> {
        let fits = |t: &Tensor| t.dim(1).ok() == Some(vocab) && t.device().same_device(dev);
        match &self.ids {
            Some(ids) if fits(ids) => Ok(ids.clone()),
            _ => {
                let ids = Tensor::arange(0f32, vocab as f32, dev)?.reshape((1, vocab))?;
                self.ids = Some(ids.clone());
                Ok(ids)
            }
        }
    }

    /// Chooses the next token of every active row, as [`pick_tokens`] does.
    pub fn pick(
        &mut self,
        logits: &Tensor,
        config: &SamplingConfig,
        rngs: &mut [ChaCha8Rng],
        active: &[bool],
    ) -> Result<Vec<u32>> {
        let (b, vocab) = logits.dims2()?;
        if rngs.len() != b || active.len() != b {
            return Err(Error::Input(format!(
                "pick_tokens: {b} logit rows but {} generators and {} activity flags",
                rngs.len(),
                active.len()
            )));
        }
        if vocab == 0 {
            return Err(Error::Input(
                "cannot pick a token from an empty logit row".into(),
            ));
        }
        let filtered =
            config.top_k.is_some_and(|k| k < vocab) || config.top_p.is_some_and(|p| p < 1.0);
        if filtered {
            let rows = logits.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            let mut out = vec![0u32; b];
            for row in (0..b).filter(|&r| active[r]) {
                out[row] = pick_token(&rows[row], config, &mut rngs[row])?;
            }
            return Ok(out);
        }
        let logits = logits.to_dtype(DType::F32)?;
        // NaN or +inf anywhere in a row.
        let nan = logits.ne(&logits)?;
        let pos_inf = logits.eq(f32::INFINITY)?;
        let mut bad = (nan.to_dtype(DType::F32)? + pos_inf.to_dtype(DType::F32)?)?.sum(1)?;
        let token = if config.is_greedy() {
            logits.argmax(D::Minus1)?.to_dtype(DType::F32)?
        } else {
            let dev = logits.device();
            let z = (&logits / config.temperature)?;
            let max = z.max_keepdim(D::Minus1)?;
            // A row with every logit -inf has nothing to sample from.
            bad = (bad
                + max
                    .squeeze(1)?
                    .eq(f32::NEG_INFINITY)?
                    .to_dtype(DType::F32)?)?;
            let e = z.broadcast_sub(&max)?.exp()?;
            let cdf = prefix_sum(&e)?;
            let total = cdf.narrow(1, vocab - 1, 1)?;
            let u: Vec<f32> = rngs
                .iter_mut()
                .zip(active)
                .map(|(rng, &a)| if a { rng.random::<f64>() as f32 } else { 0.0 })
                .collect();
            let threshold = (Tensor::from_vec(u, (b, 1), dev)? * total)?;
            // The first index whose cumulative mass exceeds the threshold...
            let count = cdf.broadcast_le(&threshold)?.to_dtype(DType::F32)?.sum(1)?;
            // ...but never past the last token with mass (rounding at the top end).
            let ids = self.vocab_ids(vocab, dev)?;
            let last = e
                .gt(0f32)?
                .to_dtype(DType::F32)?
                .broadcast_mul(&ids)?
                .max(1)?;
            count.minimum(&last)?
        };
        let both = Tensor::stack(&[&token, &bad], 0)?.to_vec2::<f32>()?;
        let (ids, flags) = (&both[0], &both[1]);
        let mut out = vec![0u32; b];
        for row in (0..b).filter(|&r| active[r]) {
            if flags[row] != 0.0 {
                return Err(Error::Input(format!(
                    "logit row {row} contains NaN or +inf{}",
                    if config.is_greedy() {
                        ""
                    } else {
                        ", or every logit is -inf"
                    }
                )));
            }
            out[row] = ids[row] as u32;
        }
        Ok(out)
    }
}

/// Inclusive prefix sum of `x` `(batch, n)` along the rows, in blocks of about
/// `sqrt(n)` columns: two small triangular matmuls instead of candle's `cumsum`,
/// whose `n x n` triangle would not fit for a large vocabulary.
fn prefix_sum(x: &Tensor) -> Result<Tensor> {
    let (b, n) = x.dims2()?;
    let block = ((n as f64).sqrt().ceil() as usize).max(1);
    let blocks = n.div_ceil(block);
    let padded = if blocks * block > n {
        let zeros = Tensor::zeros((b, blocks * block - n), x.dtype(), x.device())?;
        Tensor::cat(&[x, &zeros], 1)?
    } else {
        x.clone()
    };
    let parts = padded.reshape((b, blocks, block))?;
    let within = parts.cumsum(2)?;
    let totals = parts.sum(2)?;
    let before = (totals.cumsum(1)? - &totals)?;
    let all = within.broadcast_add(&before.unsqueeze(2)?)?;
    Ok(all.reshape((b, blocks * block))?.narrow(1, 0, n)?)
}
