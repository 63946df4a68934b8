//! Serialising a parsed [`Architecture`] back to a Hugging Face `config.json`, in the
//! transformers 5.x spelling (`rope_parameters`, `dtype`) plus the 4.x top-level
//! fields (`rope_theta`, `rope_scaling`, `rotary_pct`, `rotary_emb_base`) so that both
//! major versions read the same settings. Parsing the result gives back an equal
//! config.

use super::{Architecture, GptNeoxConfig, LlamaConfig, RopeConfig, RopeScaling};
use crate::{Error, Result};
use serde_json::{json, Map, Value};

impl Architecture {
    /// The `config.json` object for this configuration (`architectures` names the
    /// causal-LM class). `dtype` is the torch name of the saved weights' dtype
    /// (`"float32"`, `"bfloat16"`). Fails for an architecture whose config this crate
    /// does not write (Gemma, Gemma-2: save those with their own `config.json`).
    pub fn to_hf_json(&self, dtype: &str) -> Result<Value> {
        let mut obj = self.spec().hf_json().ok_or_else(|| {
            Error::Input(format!(
                "writing a `{}` config.json is not implemented: save the checkpoint \
                 with its own config.json (save_checkpoint_with_json)",
                self.model_type()
            ))
        })?;
        obj.insert("dtype".into(), json!(dtype));
        Ok(Value::Object(obj))
    }
}

/// `rope_parameters` (5.x) for `rope`, with `extra` fields merged in.
fn rope_parameters(rope: &RopeConfig, extra: &[(&str, Value)]) -> Map<String, Value> {
    let mut p = Map::new();
    p.insert("rope_theta".into(), json!(rope.theta));
    match rope.scaling {
        RopeScaling::None => {
            p.insert("rope_type".into(), json!("default"));
        }
        RopeScaling::Llama3 {
            factor,
            low_freq_factor,
            high_freq_factor,
            original_max_position_embeddings,
        } => {
            p.insert("rope_type".into(), json!("llama3"));
            p.insert("factor".into(), json!(factor));
            p.insert("low_freq_factor".into(), json!(low_freq_factor));
            p.insert("high_freq_factor".into(), json!(high_freq_factor));
            p.insert(
                "original_max_position_embeddings".into(),
                json!(original_max_position_embeddings),
            );
        }
    }
    for (k, v) in extra {
        p.insert((*k).into(), v.clone());
    }
    p
}

/// Converts a `json!` object literal into its map.
fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The `config.json` fields of a GPT-NeoX config.
pub(crate) fn gpt_neox_json(c: &GptNeoxConfig) -> Map<String, Value> {
    let mut obj = object(json!({
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "intermediate_size": c.intermediate_size,
        "hidden_act": "gelu",
        "rotary_pct": c.rotary_pct,
        "rotary_emb_base": c.rope.theta,
        "max_position_embeddings": c.max_position_embeddings,
        "layer_norm_eps": c.layer_norm_eps,
        "use_parallel_residual": c.use_parallel_residual,
        "attention_bias": c.attention_bias,
        "tie_word_embeddings": c.tie_word_embeddings,
        "initializer_range": c.initializer_range,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
    }));
    obj.insert(
        "rope_parameters".into(),
        Value::Object(rope_parameters(
            &c.rope,
            &[("partial_rotary_factor", json!(c.rotary_pct))],
        )),
    );
    obj
}

/// The `config.json` fields of a Llama config.
pub(crate) fn llama_json(c: &LlamaConfig) -> Map<String, Value> {
    let mut obj = object(json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size,
        "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": c.max_position_embeddings,
        "rms_norm_eps": c.rms_norm_eps,
        "attention_bias": c.attention_bias,
        "attention_dropout": 0.0,
        "mlp_bias": c.mlp_bias,
        "tie_word_embeddings": c.tie_word_embeddings,
        "initializer_range": c.initializer_range,
        "rope_theta": c.rope.theta,
    }));
    let params = rope_parameters(&c.rope, &[]);
    if c.rope.scaling != RopeScaling::None {
        // 4.x reads the scaling from `rope_scaling` (the theta stays top-level).
        let mut legacy = params.clone();
        legacy.remove("rope_theta");
        obj.insert("rope_scaling".into(), Value::Object(legacy));
    }
    obj.insert("rope_parameters".into(), Value::Object(params));
    obj
}
