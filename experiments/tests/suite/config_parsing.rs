//! `config.json` parsing: transformers 4.x and 5.x spellings give the same config;
//! unsupported architectures and options are rejected with the field named.

use rmteach_experiments::models::config::{RopeConfig, RopeScaling};
use rmteach_experiments::models::Architecture;
use serde_json::{json, Value};

const PYTHIA_160M_4X: &str = r#"{
  "architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0,
  "hidden_act": "gelu", "hidden_size": 768, "initializer_range": 0.02,
  "intermediate_size": 3072, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048,
  "model_type": "gpt_neox", "num_attention_heads": 12, "num_hidden_layers": 12,
  "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": false,
  "torch_dtype": "float16", "transformers_version": "4.24.0", "use_cache": true,
  "use_parallel_residual": true, "vocab_size": 50304
}"#;

const PYTHIA_160M_5X: &str = r#"{
  "architectures": ["GPTNeoXForCausalLM"], "attention_bias": true,
  "attention_dropout": 0.0, "bos_token_id": 0, "classifier_dropout": 0.1,
  "dtype": "float16", "eos_token_id": 0, "hidden_act": "gelu", "hidden_dropout": 0.0,
  "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
  "layer_norm_eps": 1e-05, "max_position_embeddings": 2048, "model_type": "gpt_neox",
  "num_attention_heads": 12, "num_hidden_layers": 12,
  "rope_parameters": {"partial_rotary_factor": 0.25, "rope_theta": 10000, "rope_type": "default"},
  "tie_word_embeddings": false, "transformers_version": "5.0.0", "use_cache": true,
  "use_parallel_residual": true, "vocab_size": 50304
}"#;

const LLAMA_32_1B_4X: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
  "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
  "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
  "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256
}"#;

const LLAMA_32_1B_5X: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "dtype": "bfloat16", "eos_token_id": 128001, "head_dim": 64,
  "hidden_act": "silu", "hidden_size": 2048, "initializer_range": 0.02,
  "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16,
  "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_parameters": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                      "original_max_position_embeddings": 8192, "rope_theta": 500000.0,
                      "rope_type": "llama3"},
  "tie_word_embeddings": true, "transformers_version": "5.0.0", "use_cache": true,
  "vocab_size": 128256
}"#;

type Obj = serde_json::Map<String, Value>;
type Edit = Box<dyn FnOnce(&mut Obj)>;

/// Boxes an edit of a config object (gives the closure its parameter type).
fn e(f: impl FnOnce(&mut Obj) + 'static) -> Edit {
    Box::new(f)
}

fn parse(text: &str) -> Architecture {
    Architecture::from_json_str(text, "config.json").unwrap()
}

/// Parses `base` with `edit` applied and returns the error message.
fn error_after(base: &str, edit: impl FnOnce(&mut Obj)) -> String {
    let mut value: Value = serde_json::from_str(base).unwrap();
    edit(value.as_object_mut().unwrap());
    Architecture::from_json_str(&value.to_string(), "config.json")
        .unwrap_err()
        .to_string()
}

#[test]
fn pythia_4x_and_5x_spellings_agree() {
    let (a, b) = (parse(PYTHIA_160M_4X), parse(PYTHIA_160M_5X));
    assert_eq!(a, b);
    let Architecture::GptNeox(c) = a else {
        panic!("not gpt_neox")
    };
    assert_eq!(
        (c.hidden_size, c.num_attention_heads, c.head_size()),
        (768, 12, 64)
    );
    assert_eq!((c.rotary_pct, c.rotary_dims()), (0.25, 16));
    assert_eq!(
        c.rope,
        RopeConfig {
            theta: 10000.0,
            scaling: RopeScaling::None
        }
    );
    assert!(c.use_parallel_residual && c.attention_bias && !c.tie_word_embeddings);
}

#[test]
fn llama_32_4x_and_5x_spellings_agree() {
    let (a, b) = (parse(LLAMA_32_1B_4X), parse(LLAMA_32_1B_5X));
    assert_eq!(a, b);
    let Architecture::Llama(c) = a else {
        panic!("not llama")
    };
    assert_eq!(
        (c.num_attention_heads, c.num_key_value_heads, c.head_dim),
        (32, 8, 64)
    );
    assert!(c.tie_word_embeddings);
    assert_eq!(c.rope.theta, 500000.0);
    assert_eq!(
        c.rope.scaling,
        RopeScaling::Llama3 {
            factor: 32.0,
            low_freq_factor: 1.0,
            high_freq_factor: 4.0,
            original_max_position_embeddings: 8192
        }
    );
}

#[test]
fn old_rope_scaling_key_type_is_read() {
    let mut v: Value = serde_json::from_str(LLAMA_32_1B_4X).unwrap();
    let scaling = v["rope_scaling"].as_object_mut().unwrap();
    let kind = scaling.remove("rope_type").unwrap();
    scaling.insert("type".into(), kind);
    assert_eq!(parse(&v.to_string()), parse(LLAMA_32_1B_4X));
}

#[test]
fn disagreeing_spellings_are_rejected() {
    let err = error_after(PYTHIA_160M_5X, |o| {
        o.insert("rotary_pct".into(), json!(0.5));
    });
    assert!(
        err.contains("rope_parameters.partial_rotary_factor"),
        "{err}"
    );
    assert!(err.contains("rotary_pct"), "{err}");

    let err = error_after(LLAMA_32_1B_5X, |o| {
        o.insert("rope_theta".into(), json!(10000.0));
    });
    assert!(err.contains("rope_parameters.rope_theta"), "{err}");
}

#[test]
fn unsupported_architectures_and_options_name_the_field() {
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            LLAMA_32_1B_4X,
            e(|o| {
                o.insert("model_type".into(), json!("mistral"));
            }),
            "`model_type`",
        ),
        (
            LLAMA_32_1B_4X,
            e(|o| {
                o.remove("model_type");
            }),
            "`model_type`: missing",
        ),
        (
            LLAMA_32_1B_4X,
            e(|o| {
                o.insert(
                    "architectures".into(),
                    json!(["LlamaForTokenClassification"]),
                );
            }),
            "`architectures`",
        ),
        (
            LLAMA_32_1B_4X,
            e(|o| {
                o.insert("hidden_act".into(), json!("gelu"));
            }),
            "`hidden_act`",
        ),
        (
            LLAMA_32_1B_4X,
            e(|o| {
                o["rope_scaling"]["rope_type"] = json!("yarn");
            }),
            "`rope_scaling.rope_type`",
        ),
        (
            LLAMA_32_1B_5X,
            e(|o| {
                o["rope_parameters"]["rope_type"] = json!("dynamic");
            }),
            "`rope_parameters.rope_type`",
        ),
        (
            LLAMA_32_1B_5X,
            e(|o| {
                o["rope_parameters"]
                    .as_object_mut()
                    .unwrap()
                    .remove("factor");
            }),
            "`rope_parameters.factor`: missing",
        ),
        (
            LLAMA_32_1B_4X,
            e(|o| {
                o.insert("num_key_value_heads".into(), json!(5));
            }),
            "`num_key_value_heads`",
        ),
        (
            LLAMA_32_1B_4X,
            e(|o| {
                o.insert("attention_dropout".into(), json!(0.1));
            }),
            "`attention_dropout`",
        ),
        (
            LLAMA_32_1B_4X,
            e(|o| {
                o.insert("hidden_size".into(), json!("2048"));
            }),
            "`hidden_size`: expected",
        ),
        (
            LLAMA_32_1B_4X,
            e(|o| {
                o.insert("partial_rotary_factor".into(), json!(0.5));
            }),
            "`partial_rotary_factor`",
        ),
        (
            PYTHIA_160M_4X,
            e(|o| {
                o.insert("hidden_act".into(), json!("gelu_new"));
            }),
            "`hidden_act`",
        ),
        (
            PYTHIA_160M_4X,
            e(|o| {
                o.insert(
                    "rope_scaling".into(),
                    json!({"rope_type": "linear", "factor": 2.0}),
                );
            }),
            "`rope_scaling.rope_type`",
        ),
        (
            PYTHIA_160M_4X,
            e(|o| {
                o.insert("rotary_pct".into(), json!(0.01));
            }),
            "`rotary_pct`",
        ),
        (
            PYTHIA_160M_4X,
            e(|o| {
                o.insert("hidden_dropout".into(), json!(0.1));
            }),
            "`hidden_dropout`",
        ),
        (
            PYTHIA_160M_4X,
            e(|o| {
                o.insert("num_attention_heads".into(), json!(7));
            }),
            "`num_attention_heads`",
        ),
        (
            PYTHIA_160M_4X,
            e(|o| {
                o.remove("vocab_size");
            }),
            "`vocab_size`: missing",
        ),
    ];
    for (base, edit, expected) in cases {
        let err = error_after(base, edit);
        assert!(err.starts_with("config.json: field "), "{err}");
        assert!(err.contains(expected), "expected {expected} in: {err}");
    }
}

#[test]
fn bad_documents_and_missing_files_are_errors() {
    let err = Architecture::from_json_str("[1, 2]", "x.json")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x.json") && err.contains("JSON object"),
        "{err}"
    );
    let err = Architecture::from_json_str("{", "x.json")
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid JSON"), "{err}");
    let path = std::path::Path::new("/nonexistent/config.json");
    let err = Architecture::from_file(path).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/config.json"), "{err}");
}
