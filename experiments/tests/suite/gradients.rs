//! Every trainable tensor receives a non-zero gradient from a cross-entropy loss (the
//! check that catches non-differentiable fused ops and last-position-only logits).

use crate::common;

use common::{all_tiny, assert_every_var_has_gradient, batch, build, next_token_loss};
use rmteach_experiments::models::CausalLm;

#[test]
fn every_variable_gets_a_nonzero_gradient() {
    let (ids, mask) = batch();
    for (label, config) in all_tiny() {
        let (varmap, model) = build(&config, 7);
        let logits = model.forward(&ids, Some(&mask)).unwrap();
        assert_eq!(logits.dims(), &[3, 8, 64], "{label}: full logits");
        let loss = next_token_loss(&logits, &ids, &mask);
        let grads = loss.backward().unwrap();
        let vars = varmap.data().lock().unwrap().clone();
        assert!(vars.len() > 10, "{label}: only {} variables", vars.len());
        assert_every_var_has_gradient(label, &varmap, &grads, &[]);
    }
}

#[test]
fn variable_names_follow_hugging_face() {
    let names = |config| {
        let (varmap, _) = build(&config, 1);
        let mut n: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
        n.sort();
        n
    };
    let neox = names(common::tiny_neox(true));
    for expected in [
        "embed_out.weight",
        "gpt_neox.embed_in.weight",
        "gpt_neox.final_layer_norm.bias",
        "gpt_neox.layers.1.attention.query_key_value.weight",
        "gpt_neox.layers.1.attention.dense.bias",
        "gpt_neox.layers.0.mlp.dense_h_to_4h.weight",
        "gpt_neox.layers.0.post_attention_layernorm.weight",
    ] {
        assert!(neox.iter().any(|n| n == expected), "missing {expected}");
    }
    assert_eq!(neox.len(), 4 + 2 * 12);

    let tied = names(common::tiny_llama(true, false));
    assert!(!tied.iter().any(|n| n == "lm_head.weight"));
    assert!(tied
        .iter()
        .any(|n| n == "model.layers.1.self_attn.k_proj.weight"));
    assert_eq!(tied.len(), 2 + 2 * 9);
    let untied = names(common::tiny_llama(false, true));
    assert!(untied.iter().any(|n| n == "lm_head.weight"));
    assert!(untied
        .iter()
        .any(|n| n == "model.layers.0.mlp.gate_proj.bias"));
}
