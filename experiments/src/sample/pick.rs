//! Choosing the next token of one row from its last-position logits, on the CPU.

use super::SamplingConfig;
use crate::{Error, Result};
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
