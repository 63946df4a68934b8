//! Tiny GPT-NeoX and Llama `config.json`s (a few million parameters) in the Hugging
//! Face format, for the toy tokenizer's vocabulary.

use serde_json::{json, Value};

/// The shape of a tiny model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToyModelSize {
    /// Model width.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Number of attention heads (and, for Llama, half as many key/value heads).
    pub num_attention_heads: usize,
    /// MLP width of GPT-NeoX (Llama uses about 2/3 of it, gated).
    pub intermediate_size: usize,
    /// Longest sequence.
    pub max_position_embeddings: usize,
}

impl Default for ToyModelSize {
    /// Width 256, 4 layers, 4 heads, MLP 1024, 256 positions: about 3M parameters.
    fn default() -> Self {
        Self {
            hidden_size: 256,
            num_hidden_layers: 4,
            num_attention_heads: 4,
            intermediate_size: 1024,
            max_position_embeddings: 256,
        }
    }
}

/// The token ids a model config names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToyTokenIds {
    /// Embedding rows (the tokenizer's [`crate::text::TextTokenizer::vocab_size`]).
    pub vocab_size: usize,
    /// End-of-sequence id (also used as BOS, as Pythia does).
    pub eos: u32,
    /// Padding id.
    pub pad: u32,
}

/// A GPT-NeoX (Pythia-style) `config.json`: parallel residual, rotary on a quarter of
/// each head, untied embeddings, transformers 4.x spelling.
pub fn gpt_neox_config(size: &ToyModelSize, ids: &ToyTokenIds) -> Value {
    json!({
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "vocab_size": ids.vocab_size,
        "hidden_size": size.hidden_size,
        "num_hidden_layers": size.num_hidden_layers,
        "num_attention_heads": size.num_attention_heads,
        "intermediate_size": size.intermediate_size,
        "hidden_act": "gelu",
        "rotary_pct": 0.25,
        "rotary_emb_base": 10000,
        "max_position_embeddings": size.max_position_embeddings,
        "layer_norm_eps": 1e-5,
        "use_parallel_residual": true,
        "attention_bias": true,
        "attention_dropout": 0.0,
        "hidden_dropout": 0.0,
        "initializer_range": 0.02,
        "tie_word_embeddings": false,
        "use_cache": true,
        "bos_token_id": ids.eos,
        "eos_token_id": ids.eos,
        "pad_token_id": ids.pad,
        "torch_dtype": "float32",
        "transformers_version": "4.46.0"
    })
}

/// A Llama `config.json`: grouped-query attention (half as many key/value heads),
/// gated SiLU MLP of 2/3 the GPT-NeoX width (rounded to a multiple of 8), RMSNorm,
/// tied embeddings as Llama 3.2 1B has.
pub fn llama_config(size: &ToyModelSize, ids: &ToyTokenIds) -> Value {
    let kv_heads = (size.num_attention_heads / 2).max(1);
    let intermediate = (size.intermediate_size * 2 / 3).div_ceil(8) * 8;
    json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": ids.vocab_size,
        "hidden_size": size.hidden_size,
        "intermediate_size": intermediate,
        "num_hidden_layers": size.num_hidden_layers,
        "num_attention_heads": size.num_attention_heads,
        "num_key_value_heads": kv_heads,
        "head_dim": size.hidden_size / size.num_attention_heads.max(1),
        "hidden_act": "silu",
        "max_position_embeddings": size.max_position_embeddings,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "rope_scaling": null,
        "attention_bias": false,
        "attention_dropout": 0.0,
        "mlp_bias": false,
        "initializer_range": 0.02,
        "tie_word_embeddings": true,
        "use_cache": true,
        "bos_token_id": ids.eos,
        "eos_token_id": ids.eos,
        "pad_token_id": ids.pad,
        "torch_dtype": "float32",
        "transformers_version": "4.46.0"
    })
}
