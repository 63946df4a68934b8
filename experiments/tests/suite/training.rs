//! A few AdamW steps on a fixed batch reduce the loss, for both architectures.

use crate::common;

use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use common::{all_tiny, batch, build, next_token_loss};
use rmteach_experiments::models::CausalLm;

#[test]
fn adamw_steps_reduce_the_loss() {
    let (ids, mask) = batch();
    for (label, config) in all_tiny() {
        let (varmap, model) = build(&config, 3);
        let params = ParamsAdamW {
            lr: 1e-2,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(varmap.all_vars(), params).unwrap();
        let mut losses = Vec::new();
        for _ in 0..15 {
            let logits = model.forward(&ids, Some(&mask)).unwrap();
            let loss = next_token_loss(&logits, &ids, &mask);
            losses.push(loss.to_scalar::<f32>().unwrap());
            opt.backward_step(&loss).unwrap();
        }
        let (first, last) = (losses[0], *losses.last().unwrap());
        // ln(64) ~ 4.16 at initialisation.
        assert!(
            (first - 64f32.ln()).abs() < 0.3,
            "{label}: initial loss {first}"
        );
        assert!(last < 0.5 * first, "{label}: losses {losses:?}");
    }
}
