//! Gemma and Gemma-2 against transformers: tiny checkpoints written by
//! `save_pretrained` (transformers 5.24, random weights of std 0.3 with perturbed
//! norms; see `scripts/make_rm_fixtures.py`) load through
//! [`load_checkpoint`] and reproduce the logits transformers computed for a
//! left-padded batch, through the full and the key/value-cached forward. The Gemma
//! fixture uses multi-query attention and `head_dim * heads != hidden`; the Gemma-2
//! one soft-caps attention (5) and logits (8), scales by `query_pre_attn_scalar` 24
//! and slides a window of 3 over rows of 8 on layers 0 and 2. Also: config parsing.

use candle_core::{DType, Device, Tensor};
use rmteach_experiments::hf::load_checkpoint;
use rmteach_experiments::models::config::LayerType;
use rmteach_experiments::models::{Architecture, CausalLm};
use serde_json::{json, Value};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Largest |a - b| over positions where `mask` is 1.
fn masked_max_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let m = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    let d = (a - b).unwrap().abs().unwrap().broadcast_mul(&m).unwrap();
    d.flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn check(name: &str) {
    let dir = fixture(name);
    let ckpt = load_checkpoint(&dir, DType::F32, &Device::Cpu).unwrap();
    assert!(
        ckpt.report.unexpected.is_empty(),
        "{name}: {:?}",
        ckpt.report.unexpected
    );
    let expected =
        candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    let ids = expected["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = expected["attention_mask"].to_dtype(DType::U32).unwrap();
    let want = &expected["logits"];
    let scale = want.abs().unwrap().flatten_all().unwrap().max(0).unwrap();
    let scale = scale.to_scalar::<f32>().unwrap();
    assert!(scale > 1.0, "{name}: fixture logits too small ({scale})");
    let tol = 1e-4 * scale;

    let got = ckpt.model.forward(&ids, Some(&mask)).unwrap();
    let diff = masked_max_diff(&got, want, &mask);
    eprintln!("{name}: max |logit| {scale}, full-forward diff {diff:e}");
    assert!(
        diff < tol,
        "{name}: full forward differs from transformers by {diff}"
    );

    let mut cache = ckpt.model.new_cache();
    let mut pieces = Vec::new();
    for (start, len) in [(0, 4), (4, 1), (5, 3)] {
        let key_mask = mask.narrow(1, 0, start + len).unwrap();
        let step = ids.narrow(1, start, len).unwrap();
        let logits = ckpt
            .model
            .forward_cached(&step, Some(&key_mask), &mut cache);
        pieces.push(logits.unwrap());
    }
    let cached = Tensor::cat(&pieces, 1).unwrap();
    let diff = masked_max_diff(&cached, want, &mask);
    eprintln!("{name}: cached-forward diff {diff:e}");
    assert!(
        diff < tol,
        "{name}: cached forward differs from transformers by {diff}"
    );
}

#[test]
fn gemma_mqa_matches_transformers() {
    check("gemma");
}

#[test]
fn gemma2_softcap_sliding_window_matches_transformers() {
    let config = Architecture::from_file(&fixture("gemma2").join("config.json")).unwrap();
    let Architecture::Gemma2(c) = config else {
        panic!("not gemma2")
    };
    assert_eq!(c.sliding_window, Some(3));
    assert_eq!(c.layer_types[0], LayerType::Sliding);
    check("gemma2");
}

/// A minimal Gemma-2 config in the 4.x spelling (no `layer_types`, `rope_theta`).
fn gemma2_json() -> Value {
    json!({"model_type": "gemma2", "architectures": ["Gemma2ForSequenceClassification"],
        "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64,
        "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 16, "hidden_act": "gelu_pytorch_tanh",
        "hidden_activation": "gelu_pytorch_tanh", "rope_theta": 10000.0,
        "query_pre_attn_scalar": 16, "pad_token_id": 0})
}

fn parse(v: &Value) -> rmteach_experiments::Result<Architecture> {
    Architecture::from_json_str(&v.to_string(), "config.json")
}

#[test]
fn gemma2_config_defaults_nulls_and_errors() {
    let Architecture::Gemma2(c) = parse(&gemma2_json()).unwrap() else {
        panic!("not gemma2")
    };
    assert_eq!(c.attn_logit_softcapping, Some(50.0));
    assert_eq!(c.final_logit_softcapping, Some(30.0));
    assert_eq!(c.sliding_window, Some(4096));
    use LayerType::{Full, Sliding};
    assert_eq!(c.layer_types, vec![Sliding, Full, Sliding, Full]);
    assert!(c.base.tie_word_embeddings);
    assert_eq!(c.base.pad_token_id, Some(0));

    let mut v = gemma2_json();
    v["attn_logit_softcapping"] = Value::Null;
    v["final_logit_softcapping"] = Value::Null;
    v["sliding_window"] = Value::Null;
    let Architecture::Gemma2(c) = parse(&v).unwrap() else {
        panic!("not gemma2")
    };
    assert_eq!(
        (
            c.attn_logit_softcapping,
            c.final_logit_softcapping,
            c.sliding_window
        ),
        (None, None, None)
    );

    let cases: Vec<(&str, Value, &str)> = vec![
        ("hidden_activation", json!("relu"), "hidden_activation"),
        ("layer_types", json!(["full_attention"]), "layer_types"),
        ("layer_types", json!(["x", "x", "x", "x"]), "layer_types"),
        ("sliding_window", json!(2.5), "sliding_window"),
        (
            "attn_logit_softcapping",
            json!(-1.0),
            "attn_logit_softcapping",
        ),
        ("num_key_value_heads", json!(3), "num_key_value_heads"),
        ("head_dim", json!(7), "head_dim"),
        (
            "rope_scaling",
            json!({"rope_type": "linear", "factor": 2.0}),
            "rope_type",
        ),
        (
            "architectures",
            json!(["Gemma2ForTokenClassification"]),
            "architectures",
        ),
    ];
    for (key, value, field) in cases {
        let mut v = gemma2_json();
        v[key] = value;
        let err = parse(&v).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains(field),
            "{key}: {err}"
        );
    }
}

#[test]
fn gemma_config_activation_and_model_type() {
    let mut v = gemma2_json();
    v["model_type"] = json!("gemma");
    v["architectures"] = json!(["GemmaForCausalLM"]);
    v.as_object_mut().unwrap().remove("hidden_activation");
    v["hidden_act"] = json!("gelu");
    let Architecture::Gemma(c) = parse(&v).unwrap() else {
        panic!("not gemma")
    };
    assert_eq!((c.head_dim, c.num_key_value_heads), (16, 2));
    v["hidden_act"] = json!("silu");
    let err = parse(&v).unwrap_err().to_string();
    assert!(err.contains("hidden_act"), "{err}");
    v["model_type"] = json!("mistral");
    let err = parse(&v).unwrap_err().to_string();
    assert!(
        err.contains("model_type") && err.contains("mistral"),
        "{err}"
    );
}

#[test]
fn gemma_architectures_name_their_classes_and_refuse_to_write_a_config() {
    let gemma2 = parse(&gemma2_json()).unwrap();
    let mut v = gemma2_json();
    v["model_type"] = json!("gemma");
    v["architectures"] = json!(["GemmaForCausalLM"]);
    let gemma = parse(&v).unwrap();
    for (arch, model_type, class) in [
        (&gemma, "gemma", "GemmaForSequenceClassification"),
        (&gemma2, "gemma2", "Gemma2ForSequenceClassification"),
    ] {
        assert_eq!(arch.model_type(), model_type);
        assert_eq!(arch.sequence_classification_class(), class);
        assert_eq!(arch.hidden_size(), 32);
        let err = arch.to_hf_json("float32").unwrap_err().to_string();
        assert!(
            err.contains(model_type) && err.contains("its own config.json"),
            "{err}"
        );
    }
}

#[test]
fn gemma2_fixture_depends_on_the_sliding_window_and_softcaps() {
    // Each feature, turned off, moves the logits well past the tolerance: the
    // fixture really tests them.
    let src = fixture("gemma2");
    let original: Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    let expected =
        candle_core::safetensors::load(src.join("expected.safetensors"), &Device::Cpu).unwrap();
    let ids = expected["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = expected["attention_mask"].to_dtype(DType::U32).unwrap();
    for key in [
        "sliding_window",
        "attn_logit_softcapping",
        "final_logit_softcapping",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = original.clone();
        config[key] = Value::Null;
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        std::fs::copy(
            src.join("model.safetensors"),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        let ckpt = load_checkpoint(dir.path(), DType::F32, &Device::Cpu).unwrap();
        let got = ckpt.model.forward(&ids, Some(&mask)).unwrap();
        let diff = masked_max_diff(&got, &expected["logits"], &mask);
        assert!(diff > 0.05, "{key} off changes the logits by only {diff}");
    }
}

#[test]
fn every_architecture_rejects_inputs_past_max_position_embeddings() {
    // The context-length check lives in the shared decoder stack, so Gemma and
    // Gemma-2 enforce it as Llama and GPT-NeoX do (issue 17).
    for name in ["gemma", "gemma2", "llama", "gpt_neox"] {
        let src = fixture(name);
        let mut config: Value =
            serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap())
                .unwrap();
        config["max_position_embeddings"] = json!(4);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
        std::fs::copy(
            src.join("model.safetensors"),
            dir.path().join("model.safetensors"),
        )
        .unwrap();
        let ckpt = load_checkpoint(dir.path(), DType::F32, &Device::Cpu).unwrap();
        let ids = |t: usize| Tensor::ones((1, t), DType::U32, &Device::Cpu).unwrap();
        assert!(ckpt.model.forward(&ids(4), None).is_ok(), "{name}: 4 fit");
        let err = ckpt
            .model
            .forward(&ids(5), None)
            .err()
            .unwrap_or_else(|| panic!("{name}: 5 positions accepted"))
            .to_string();
        assert!(
            err.contains("5 positions") && err.contains("max_position_embeddings = 4"),
            "{name}: {err}"
        );
    }
}
