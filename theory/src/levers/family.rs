//! The instances every lever is measured on: one prompt, `|Y| = 16`, a perfect proxy
//! (`r_RM = r_G = r`, so only variance is at play), `lambda = 0`, `gamma = 0.1`.
//!
//! The worst output has `r = -1`, the others `r ~ U[-0.5, 1]`; the initial logits are
//! `z - beta r` with `z ~ N(0, 1)`. Raising `beta` moves `pi_0`'s mass onto the worst
//! output, so `Var_{pi_0}[r]` falls (roughly like the mass `eps` left elsewhere) while the
//! reward itself, its range and the best output stay fixed: low variance from where the
//! policy starts, not from a small reward.

use super::super::measure::sample::{logits, rewards, rng};
use crate::instance::TabularInstance;

/// Outputs per instance.
pub const OUTPUTS: usize = 16;
/// The reward increase that defines `t_gamma`.
pub const GAMMA: f64 = 0.1;
/// The concentrations `beta` of the variance sweep.
pub const BETAS: [f64; 6] = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0];

/// Instance `index` of the family at concentration `beta`, its reward multiplied by
/// `scale` (in `(0, 1]`) for `r_RM` only, with flow-time horizon `horizon`.
pub fn instance(seed: u64, index: usize, beta: f64, scale: f64, horizon: f64) -> TabularInstance {
    let mut g = rng(seed, 0x1E7E_0000 + index as u64);
    let mut r = rewards(&mut g, OUTPUTS, -0.5, 1.0);
    r[0] = -1.0;
    let z = logits(&mut g, OUTPUTS, 1.0);
    TabularInstance {
        num_prompts: 1,
        lambda: 0.0,
        gamma: GAMMA,
        logits: Some(z.iter().zip(&r).map(|(z, r)| z - beta * r).collect()),
        probs: None,
        r_rm: r.iter().map(|v| scale * v).collect(),
        r_g: r,
        horizon,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmteach::metrics::reward_variance;

    #[test]
    fn variance_falls_with_beta_and_the_reward_is_kept() {
        let a = instance(1, 3, 0.0, 1.0, 1.0);
        let b = instance(1, 3, 10.0, 1.0, 1.0);
        assert_eq!(a.r_g, b.r_g);
        assert!(a.validate().is_ok() && b.validate().is_ok());
        let va = reward_variance(&a.initial_probs(), &a.r_g).unwrap();
        let vb = reward_variance(&b.initial_probs(), &b.r_g).unwrap();
        assert!(vb < 0.05 * va, "{va} vs {vb}");
        let c = instance(1, 3, 0.0, 0.25, 1.0);
        assert_eq!(c.r_rm[1], 0.25 * a.r_g[1]);
        assert_ne!(instance(1, 4, 0.0, 1.0, 1.0).r_g, a.r_g);
    }
}
