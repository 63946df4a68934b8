//! The stand-in models of a dry run: each paper model's published `config.json`
//! (architecture, activation, normalisation, rotary settings and scaling, grouped-query
//! ratio, soft-capping, tying, context length, ArmoRM's gate) with its sizes shrunk to
//! a width of 64-96 and two blocks, seeded random weights, and its family's stand-in
//! tokenizer ([`Family`]). With real sizes ([`StandIn::real_sizes`]) the published
//! widths, depths, heads and vocabularies are kept (weights saved in bf16).

use super::tokenizer::Family;
use crate::hf::{save_random_model, SaveOptions};
use crate::reward::save_random_scorer;
use crate::text::TextTokenizer;
use crate::{Error, Result};
use candle_core::{DType, Device};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::Path;

/// Which published model a stand-in takes its shape from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StandIn {
    /// EleutherAI/pythia-1b (and pythia-2.8b: the same architecture): GPT-NeoX.
    Pythia,
    /// meta-llama/Llama-3.2-1B.
    Llama32,
    /// meta-llama/Llama-3.2-1B-Instruct.
    Llama32Instruct,
    /// RLHFlow/ArmoRM-Llama3-8B-v0.1: Llama-3-8B with ArmoRM's gated objective heads.
    Armorm,
    /// Ray2333/GRM-Llama3.2-3B-rewardmodel-ft: a Llama-3.2-3B sequence classifier.
    GrmLlama32,
    /// Ray2333/GRM-gemma2-2B-rewardmodel-ft: a Gemma-2-2B sequence classifier.
    GrmGemma2,
    /// allenai/llama-3-tulu-2-8b-uf-mean-rm: a Llama-3-8B sequence classifier with
    /// the Tulu template.
    TuluLlama3,
    /// weqweasdas/RM-Gemma-2B: a Gemma-2B sequence classifier.
    RmGemma,
    /// Any other reward model: a Llama-3-8B sequence classifier with the Llama-3 template.
    LlamaRm,
}

impl StandIn {
    /// The stand-in of a causal LM directory, from its name (`pythia*`,
    /// `*llama-3.2*instruct*`, `*llama*`); `None` for an unknown family.
    pub fn for_policy(dir: &Path) -> Option<Self> {
        let name = dir_name(dir);
        if name.contains("pythia") {
            Some(Self::Pythia)
        } else if name.contains("llama") && name.contains("instruct") {
            Some(Self::Llama32Instruct)
        } else if name.contains("llama") {
            Some(Self::Llama32)
        } else {
            None
        }
    }

    /// The stand-in of a reward model, from its directory's and its configured name:
    /// ArmoRM, the four public RMs of Section 4.2, else [`StandIn::LlamaRm`].
    pub fn for_reward(dir: &Path, name: &str) -> Self {
        let n = format!("{} {}", dir_name(dir), name.to_lowercase());
        if n.contains("armorm") {
            Self::Armorm
        } else if n.contains("grm") && n.contains("gemma") {
            Self::GrmGemma2
        } else if n.contains("grm") && n.contains("llama") {
            Self::GrmLlama32
        } else if n.contains("tulu") {
            Self::TuluLlama3
        } else if n.contains("gemma") {
            Self::RmGemma
        } else {
            Self::LlamaRm
        }
    }

    /// The tokenizer family.
    pub fn family(self) -> Family {
        match self {
            Self::Pythia => Family::Pythia,
            Self::Llama32 => Family::Llama32,
            Self::Llama32Instruct | Self::GrmLlama32 => Family::Llama32Instruct,
            Self::Armorm | Self::LlamaRm => Family::Llama3,
            Self::TuluLlama3 => Family::Tulu,
            Self::GrmGemma2 | Self::RmGemma => Family::Gemma,
        }
    }

    /// Whether it is a reward model (no language-model head).
    pub fn is_reward(self) -> bool {
        !matches!(self, Self::Pythia | Self::Llama32 | Self::Llama32Instruct)
    }

    /// Writes the stand-in into `dir` (config.json, model.safetensors, tokenizer files)
    /// with weights drawn from `seed`: shrunk (f32), or at the published sizes with
    /// `real` (stored in bf16: half the bytes to write and read).
    ///
    /// Real sizes draw the weights on `device` with candle's generator (not seeded:
    /// an 8B model takes minutes with the seeded CPU generator, seconds on a GPU).
    pub fn write(self, dir: &Path, seed: u64, real: bool, device: &Device) -> Result<()> {
        let tok = self.family().tokenizer()?;
        let json = self.config_json(&tok, real)?;
        let options = if real {
            SaveOptions {
                dtype: DType::BF16,
                init_device: Some(device.clone()),
                ..SaveOptions::default()
            }
        } else {
            SaveOptions::default()
        };
        if self.is_reward() {
            save_random_scorer(dir, &json, seed, &options)?;
        } else {
            save_random_model(dir, &json, seed, &options)?;
        }
        tok.save(dir)?;
        Ok(())
    }

    /// The published model's sizes: the `config.json` fields a real-size stand-in
    /// takes over the shrunk ones (the vocabulary covers the stand-in tokenizer's).
    pub fn real_sizes(self) -> Value {
        // (hidden, layers, heads, kv heads, head size, MLP, vocabulary)
        let (hidden, layers, heads, kv, head, mlp, vocab) = match self {
            Self::Pythia => (2048, 16, 8, 8, 256, 8192, 50304),
            Self::Llama32 | Self::Llama32Instruct => (2048, 16, 32, 8, 64, 8192, 128256),
            Self::GrmLlama32 => (3072, 28, 24, 8, 128, 8192, 128256),
            Self::Armorm | Self::TuluLlama3 | Self::LlamaRm => {
                (4096, 32, 32, 8, 128, 14336, 128256)
            }
            Self::GrmGemma2 => (2304, 26, 8, 4, 256, 9216, 256000),
            Self::RmGemma => (2048, 18, 8, 1, 256, 16384, 256000),
        };
        let mut v = json!({
            "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
            "intermediate_size": mlp, "vocab_size": vocab, "torch_dtype": "bfloat16"
        });
        if self != Self::Pythia {
            v["num_key_value_heads"] = json!(kv);
            v["head_dim"] = json!(head);
        }
        match self {
            Self::GrmGemma2 => v["query_pre_attn_scalar"] = json!(head),
            Self::Armorm => v["gating_hidden_dim"] = json!(1024),
            _ => {}
        }
        v
    }

    /// The published `config.json` with shrunk sizes (the real ones in the comments),
    /// or with the real sizes ([`StandIn::real_sizes`]) when `real`.
    pub fn config_json(self, tok: &TextTokenizer, real: bool) -> Result<Value> {
        let id = |t: &Option<String>| t.as_deref().and_then(|t| tok.token_to_id(t));
        let c = tok.config();
        let (bos, eos, pad) = (id(&c.bos_token), id(&c.eos_token), id(&c.pad_token));
        // Pythia pads its embeddings to a multiple of 128 rows (50304 for 50277 tokens),
        // room for the fallback chat template's two tokens; the others fit exactly.
        let vocab = match self {
            Self::Pythia => tok.vocab_size().div_ceil(128) * 128,
            _ => tok.vocab_size(),
        };
        let llama32_rope = json!({
            "factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
            "original_max_position_embeddings": 8192, "rope_type": "llama3"
        });
        let mut v = match self {
            // pythia-1b: hidden 2048, 16 layers, 8 heads, MLP 8192, vocab 50304.
            Self::Pythia => json!({
                "architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox",
                "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "intermediate_size": 256, "hidden_act": "gelu", "rotary_pct": 0.25,
                "rotary_emb_base": 10000, "max_position_embeddings": 2048,
                "layer_norm_eps": 1e-5, "use_parallel_residual": true,
                "attention_bias": true, "attention_dropout": 0.0, "hidden_dropout": 0.0,
                "initializer_range": 0.02, "tie_word_embeddings": false, "use_cache": true,
                "transformers_version": "4.24.0"
            }),
            // Llama-3.2-1B(-Instruct): hidden 2048, 16 layers, 32 heads / 8 KV, head 64,
            // MLP 8192, vocab 128256.
            Self::Llama32 | Self::Llama32Instruct => llama(
                "LlamaForCausalLM",
                (64, 4, 1, 256),
                true,
                131072,
                500000.0,
                llama32_rope,
            ),
            // GRM-Llama3.2-3B: Llama-3.2-3B, hidden 3072, 28 layers, 24 heads / 8 KV,
            // head 128, MLP 8192.
            Self::GrmLlama32 => llama(
                "LlamaForSequenceClassification",
                (96, 6, 2, 256),
                true,
                131072,
                500000.0,
                llama32_rope,
            ),
            // Llama-3-8B (ArmoRM, Tulu 2 RM): hidden 4096, 32 layers, 32 heads / 8 KV,
            // head 128, MLP 14336, untied.
            Self::Armorm | Self::TuluLlama3 | Self::LlamaRm => {
                let arch = if self == Self::Armorm {
                    "LlamaForRewardModelWithGating"
                } else {
                    "LlamaForSequenceClassification"
                };
                llama(arch, (64, 4, 1, 224), false, 8192, 500000.0, Value::Null)
            }
            // GRM-gemma2-2B: hidden 2304, 26 layers, 8 heads / 4 KV, head 256, MLP 9216.
            Self::GrmGemma2 => json!({
                "architectures": ["Gemma2ForSequenceClassification"], "model_type": "gemma2",
                "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 256,
                "hidden_activation": "gelu_pytorch_tanh", "hidden_act": "gelu_pytorch_tanh",
                "query_pre_attn_scalar": 16, "attn_logit_softcapping": 50.0,
                "final_logit_softcapping": 30.0, "sliding_window": 4096,
                "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                "attention_bias": false, "attention_dropout": 0.0, "initializer_range": 0.02,
                "tie_word_embeddings": true, "transformers_version": "4.42.4"
            }),
            // RM-Gemma-2B: Gemma-2B, hidden 2048, 18 layers, 8 heads / 1 KV, head 256,
            // MLP 16384.
            Self::RmGemma => json!({
                "architectures": ["GemmaForSequenceClassification"], "model_type": "gemma",
                "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 512,
                "hidden_act": "gelu", "hidden_activation": "gelu_pytorch_tanh",
                "max_position_embeddings": 8192, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                "attention_bias": false, "attention_dropout": 0.0, "initializer_range": 0.02,
                "tie_word_embeddings": true, "transformers_version": "4.38.2"
            }),
        };
        let obj = v
            .as_object_mut()
            .ok_or_else(|| Error::Input("stand-in config is not an object".into()))?;
        obj.insert("vocab_size".into(), json!(vocab));
        obj.insert("bos_token_id".into(), json!(bos));
        obj.insert("eos_token_id".into(), json!(eos));
        obj.insert("pad_token_id".into(), json!(pad));
        obj.insert("torch_dtype".into(), json!("float32"));
        if self.is_reward() && self != Self::Armorm {
            obj.insert("id2label".into(), json!({"0": "LABEL_0"}));
            obj.insert("label2id".into(), json!({"LABEL_0": 0}));
        }
        if self == Self::Armorm {
            // ArmoRM: 19 objectives, gate of 3 hidden layers (width 1024 -> 32),
            // temperature 10; the gate reads the hidden state where the prompt ends.
            let pattern =
                tok.encode("<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")?;
            obj.insert("num_objectives".into(), json!(19));
            obj.insert("gating_temperature".into(), json!(10.0));
            obj.insert("gating_hidden_dim".into(), json!(32));
            obj.insert("gating_n_hidden".into(), json!(3));
            obj.insert("gating_token_pattern".into(), json!(pattern));
        }
        if real {
            let sizes = self.real_sizes();
            let sizes = sizes.as_object().into_iter().flatten();
            for (key, value) in sizes {
                obj.insert(key.clone(), value.clone());
            }
            let tokens = tok.vocab_size();
            if obj["vocab_size"]
                .as_u64()
                .is_some_and(|v| (v as usize) < tokens)
            {
                obj.insert("vocab_size".into(), json!(tokens));
            }
        }
        Ok(v)
    }
}

/// A Llama `config.json`: `(hidden, heads, kv_heads, mlp)`, head size hidden / heads.
fn llama(
    arch: &str,
    (hidden, heads, kv, mlp): (usize, usize, usize, usize),
    tied: bool,
    max_pos: usize,
    theta: f64,
    rope_scaling: Value,
) -> Value {
    json!({
        "architectures": [arch], "model_type": "llama",
        "hidden_size": hidden, "num_hidden_layers": 2, "num_attention_heads": heads,
        "num_key_value_heads": kv, "head_dim": hidden / heads, "intermediate_size": mlp,
        "hidden_act": "silu", "max_position_embeddings": max_pos, "rms_norm_eps": 1e-5,
        "rope_theta": theta, "rope_scaling": rope_scaling, "attention_bias": false,
        "attention_dropout": 0.0, "mlp_bias": false, "initializer_range": 0.02,
        "tie_word_embeddings": tied, "use_cache": true, "transformers_version": "4.45.0"
    })
}

/// A directory's file name, lower-cased.
fn dir_name(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default()
}
