//! Tiny models and a masked next-token loss shared by the integration tests.
#![allow(dead_code)]

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarMap;
use rmteach_experiments::models::{Architecture, Model, SeededVarMap};

/// A tiny Pythia-like GPT-NeoX config (4.x spelling): hidden 32, 4 heads of 8,
/// half of each head rotated.
pub fn tiny_neox(parallel: bool) -> Architecture {
    let json = format!(
        r#"{{"model_type": "gpt_neox", "architectures": ["GPTNeoXForCausalLM"],
            "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 128, "hidden_act": "gelu",
            "rotary_pct": 0.5, "rotary_emb_base": 10000, "max_position_embeddings": 64,
            "layer_norm_eps": 1e-5, "use_parallel_residual": {parallel},
            "tie_word_embeddings": false, "attention_dropout": 0.0, "hidden_dropout": 0.0}}"#
    );
    Architecture::from_json_str(&json, "tiny_neox").expect("tiny neox config")
}

/// A tiny Llama-3.2-like config (5.x spelling): GQA 4/2 heads of 8, llama3 rope
/// scaling, tied or untied embeddings, optional biases.
pub fn tiny_llama(tied: bool, bias: bool) -> Architecture {
    let json = format!(
        r#"{{"model_type": "llama", "architectures": ["LlamaForCausalLM"],
            "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
            "head_dim": 8, "hidden_act": "silu", "max_position_embeddings": 128,
            "rms_norm_eps": 1e-5, "tie_word_embeddings": {tied},
            "attention_bias": {bias}, "mlp_bias": {bias},
            "rope_parameters": {{"rope_type": "llama3", "rope_theta": 500000.0,
                "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 16}}}}"#
    );
    Architecture::from_json_str(&json, "tiny_llama").expect("tiny llama config")
}

/// Every tiny configuration the tests cover, with a label.
pub fn all_tiny() -> Vec<(&'static str, Architecture)> {
    vec![
        ("neox-parallel", tiny_neox(true)),
        ("neox-sequential", tiny_neox(false)),
        ("llama-tied", tiny_llama(true, false)),
        ("llama-untied-bias", tiny_llama(false, true)),
    ]
}

/// A model with freshly initialised (seeded) variables in a new map.
pub fn build(config: &Architecture, seed: u64) -> (VarMap, Model) {
    let varmap = VarMap::new();
    let vb = SeededVarMap::new(varmap.clone(), seed).var_builder(DType::F32, &Device::Cpu);
    let model = Model::new(config, vb).expect("build model");
    (varmap, model)
}

/// A left-padded batch of 3 rows, 8 tokens: ids and the 0/1 mask.
pub fn batch() -> (Tensor, Tensor) {
    let ids: Vec<u32> = vec![
        5, 9, 17, 33, 2, 60, 7, 11, //
        0, 0, 0, 4, 8, 15, 16, 23, //
        0, 0, 0, 0, 0, 42, 1, 3,
    ];
    let mask: Vec<u32> = vec![
        1, 1, 1, 1, 1, 1, 1, 1, //
        0, 0, 0, 1, 1, 1, 1, 1, //
        0, 0, 0, 0, 0, 1, 1, 1,
    ];
    let dev = Device::Cpu;
    (
        Tensor::from_vec(ids, (3, 8), &dev).unwrap(),
        Tensor::from_vec(mask, (3, 8), &dev).unwrap(),
    )
}

/// Mean cross-entropy of next-token prediction over positions whose target is a
/// real token (`mask` 1).
pub fn next_token_loss(logits: &Tensor, ids: &Tensor, mask: &Tensor) -> Tensor {
    let (b, t, v) = logits.dims3().unwrap();
    let logp = candle_nn::ops::log_softmax(&logits.narrow(1, 0, t - 1).unwrap(), D::Minus1)
        .unwrap()
        .reshape((b * (t - 1), v))
        .unwrap();
    let targets = ids.narrow(1, 1, t - 1).unwrap().contiguous().unwrap();
    let targets = targets.reshape((b * (t - 1), 1)).unwrap();
    let picked = logp.gather(&targets, 1).unwrap().squeeze(1).unwrap();
    let weights = mask
        .narrow(1, 1, t - 1)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .reshape(b * (t - 1))
        .unwrap();
    let count = weights.sum_all().unwrap();
    (picked * &weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .neg()
        .unwrap()
        .broadcast_div(&count)
        .unwrap()
}

/// Largest absolute difference between two tensors of the same shape.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// Asserts that every variable of `varmap` received a finite, non-zero gradient.
/// Names in `skip` are left out (e.g. a causal LM head unused by a reward model).
pub fn assert_every_var_has_gradient(
    label: &str,
    varmap: &candle_nn::VarMap,
    grads: &candle_core::backprop::GradStore,
    skip: &[&str],
) {
    let vars = varmap.data().lock().unwrap();
    let mut names: Vec<_> = vars.keys().cloned().collect();
    names.sort();
    for name in names.into_iter().filter(|n| !skip.contains(&n.as_str())) {
        let grad = grads
            .get(vars[&name].as_tensor())
            .unwrap_or_else(|| panic!("{label}: no gradient for {name}"));
        let norm = grad
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            norm.is_finite() && norm > 0.0,
            "{label}: zero gradient for {name}"
        );
    }
}
