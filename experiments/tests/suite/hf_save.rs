//! Saving checkpoints in the Hugging Face layout: the config serialises back to an
//! equal config, a saved model reloads bit-exactly (f32) or rounded (bf16), the
//! original `config.json` is kept when given, and transformers computes the same
//! logits as we do on checkpoints we saved (fixtures from
//! `scripts/check_saved_checkpoints.py`, which read checkpoints this test exported
//! with `RMTEACH_EXPORT_SAVED=<dir>`; our initialisation is seeded, so the test
//! rebuilds the same weights every run).

use crate::common;

use candle_core::{DType, Device, Tensor};
use common::{all_tiny, batch, build, max_abs_diff, tiny_llama, tiny_neox};
use rmteach_experiments::hf::{
    load_checkpoint, read_config_json, save_checkpoint, save_checkpoint_with_json,
    sequence_classification_json, SaveOptions,
};
use rmteach_experiments::models::{Architecture, CausalLm};
use rmteach_experiments::reward::{load_reward_checkpoint, new_reward_model};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `config` with weights drawn at std 0.3 (logits of order 10: a sharp test).
fn sharp(mut config: Architecture) -> Architecture {
    match &mut config {
        Architecture::GptNeox(c) => c.initializer_range = 0.3,
        Architecture::Llama(c) => c.initializer_range = 0.3,
        Architecture::Gemma(c) => c.initializer_range = 0.3,
        Architecture::Gemma2(c) => c.base.initializer_range = 0.3,
    }
    config
}

/// The checkpoints whose transformers logits are committed: (name, config, seed).
fn saved_cases() -> Vec<(&'static str, Architecture, u64)> {
    vec![
        ("neox_saved", sharp(tiny_neox(true)), 11),
        ("llama_saved", sharp(tiny_llama(false, true)), 12),
        ("llama_tied_saved", sharp(tiny_llama(true, false)), 13),
    ]
}

#[test]
fn config_json_parses_back_equal() {
    for (label, config) in all_tiny() {
        let json = config.to_hf_json("float32").unwrap().to_string();
        let back = Architecture::from_json_str(&json, label).unwrap();
        assert_eq!(back, config, "{label}");
    }
}

#[test]
fn saved_checkpoint_reloads_exactly_in_f32_and_rounded_in_bf16() {
    let (ids, mask) = batch();
    for (label, config) in all_tiny() {
        let (varmap, model) = build(&config, 5);
        let want = model.forward(&ids, Some(&mask)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        save_checkpoint(dir.path(), &config, &varmap, &SaveOptions::default()).unwrap();
        let ckpt = load_checkpoint(dir.path(), DType::F32, &Device::Cpu).unwrap();
        assert_eq!(ckpt.config, config, "{label}");
        assert!(ckpt.report.unexpected.is_empty(), "{label}");
        let got = ckpt.model.forward(&ids, Some(&mask)).unwrap();
        assert_eq!(max_abs_diff(&got, &want), 0.0, "{label}: f32 reload");

        let options = SaveOptions {
            dtype: DType::BF16,
            ..SaveOptions::default()
        };
        save_checkpoint(dir.path(), &config, &varmap, &options).unwrap();
        let json = read_config_json(dir.path()).unwrap();
        assert_eq!(json["dtype"], "bfloat16");
        let ckpt = load_checkpoint(dir.path(), DType::F32, &Device::Cpu).unwrap();
        let saved = ckpt.varmap.data().lock().unwrap().clone();
        for (name, var) in varmap.data().lock().unwrap().iter() {
            let rounded = var.as_tensor().to_dtype(DType::BF16).unwrap();
            let rounded = rounded.to_dtype(DType::F32).unwrap();
            let diff = max_abs_diff(saved[name].as_tensor(), &rounded);
            assert_eq!(diff, 0.0, "{label}: {name} not bf16-rounded");
        }
    }
}

#[test]
fn original_config_json_and_extra_files_are_kept() {
    let src = fixture("llama");
    let ckpt = load_checkpoint(&src, DType::F32, &Device::Cpu).unwrap();
    let original = read_config_json(&src).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = SaveOptions {
        dtype: DType::F32,
        extra_files: vec![src.join("generation_config.json")],
        ..SaveOptions::default()
    };
    save_checkpoint_with_json(dir.path(), &original, &ckpt.varmap, &options).unwrap();
    assert_eq!(read_config_json(dir.path()).unwrap(), original);
    assert!(dir.path().join("generation_config.json").is_file());
    let again = load_checkpoint(dir.path(), DType::F32, &Device::Cpu).unwrap();
    let (ids, mask) = batch();
    let a = ckpt.model.forward(&ids, Some(&mask)).unwrap();
    let b = again.model.forward(&ids, Some(&mask)).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn bad_save_requests_are_errors() {
    let config = tiny_neox(true);
    let (varmap, _) = build(&config, 1);
    let dir = tempfile::tempdir().unwrap();
    let options = SaveOptions {
        dtype: DType::U32,
        ..SaveOptions::default()
    };
    let err = save_checkpoint(dir.path(), &config, &varmap, &options).unwrap_err();
    assert!(err.to_string().contains("U32"), "{err}");
    let options = SaveOptions {
        dtype: DType::F32,
        extra_files: vec![dir.path().join("missing_tokenizer.json")],
        ..SaveOptions::default()
    };
    let err = save_checkpoint(dir.path(), &config, &varmap, &options).unwrap_err();
    assert!(err.to_string().contains("missing_tokenizer.json"), "{err}");
    let err = save_checkpoint_with_json(
        dir.path(),
        &serde_json::json!([1]),
        &varmap,
        &SaveOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
}

/// Largest |a - b| over the real tokens of `mask`.
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

#[test]
fn transformers_reads_our_checkpoints_with_the_same_logits() {
    let (ids, mask) = batch();
    let export = std::env::var_os("RMTEACH_EXPORT_SAVED").map(PathBuf::from);
    // Save (and export) every case before checking any, so one export run suffices.
    let mut results = Vec::new();
    for (name, config, seed) in saved_cases() {
        let (varmap, _) = build(&config, seed);
        let dir = tempfile::tempdir().unwrap();
        let target = match &export {
            Some(root) => root.join(name),
            None => dir.path().to_path_buf(),
        };
        save_checkpoint(&target, &config, &varmap, &SaveOptions::default()).unwrap();
        let ckpt = load_checkpoint(&target, DType::F32, &Device::Cpu).unwrap();
        let ours = ckpt.model.forward(&ids, Some(&mask)).unwrap();
        if export.is_some() {
            let tensors = [
                ("input_ids".to_string(), ids.to_dtype(DType::I64).unwrap()),
                (
                    "attention_mask".to_string(),
                    mask.to_dtype(DType::I64).unwrap(),
                ),
                ("logits".to_string(), ours.clone()),
            ];
            candle_core::safetensors::save(
                &tensors.into_iter().collect(),
                target.join("ours.safetensors"),
            )
            .unwrap();
        }
        results.push((name, ours));
    }
    for (name, ours) in results {
        let file = fixture("saved")
            .join(name)
            .join("transformers_logits.safetensors");
        let expected = candle_core::safetensors::load(&file, &Device::Cpu).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; regenerate with RMTEACH_EXPORT_SAVED=<dir> cargo test --test hf_save, \
                 then scripts/check_saved_checkpoints.py <dir> tests/fixtures/saved",
                file.display()
            )
        });
        // The fixture was computed on the config.json we wrote then; it must not drift.
        let fixture_config = read_config_json(&fixture("saved").join(name)).unwrap();
        let (_, config, _) = saved_cases().into_iter().find(|c| c.0 == name).unwrap();
        assert_eq!(
            config.to_hf_json("float32").unwrap(),
            fixture_config,
            "{name}: config.json"
        );
        let want = &expected["logits"];
        let diff = masked_max_diff(&ours, want, &mask);
        let scale = max_abs_diff(want, &want.zeros_like().unwrap());
        eprintln!("{name}: max |logit| {scale}, ours vs transformers {diff:e}");
        assert!(scale > 1.0, "{name}: fixture logits too small ({scale})");
        assert!(diff <= 1e-4, "{name}: differs from transformers by {diff}");
    }
}

/// Reward models whose transformers scores are committed: (name, config, seed).
fn saved_reward_cases() -> Vec<(&'static str, Architecture, u64)> {
    vec![
        ("rm_neox_saved", sharp(tiny_neox(true)), 21),
        ("rm_llama_saved", sharp(tiny_llama(false, true)), 22),
    ]
}

#[test]
fn transformers_reads_our_reward_models_with_the_same_scores() {
    let (ids, mask) = batch();
    let export = std::env::var_os("RMTEACH_EXPORT_SAVED").map(PathBuf::from);
    let mut results = Vec::new();
    for (name, config, seed) in saved_reward_cases() {
        let varmap = candle_nn::VarMap::new();
        new_reward_model(&config, &varmap, seed, DType::F32, &Device::Cpu).unwrap();
        // The head's N(0, 0.02) init gives scores of order 0.1: scale it up to order 1
        // so the comparison is sharp.
        let score = varmap.data().lock().unwrap()["score.weight"].clone();
        score.set(&(score.as_tensor() * 15.0).unwrap()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let target = match &export {
            Some(root) => root.join(name),
            None => dir.path().to_path_buf(),
        };
        let json = sequence_classification_json(&config, DType::F32, Some(0)).unwrap();
        let options = SaveOptions {
            exclude: vec!["lm_head.weight".into(), "embed_out.weight".into()],
            ..SaveOptions::default()
        };
        save_checkpoint_with_json(&target, &json, &varmap, &options).unwrap();
        let ckpt = load_reward_checkpoint(&target, DType::F32, &Device::Cpu).unwrap();
        assert!(ckpt.report.unexpected.is_empty(), "{name}");
        let ours = ckpt.model.forward(&ids, Some(&mask)).unwrap();
        if export.is_some() {
            let tensors = [
                ("input_ids".to_string(), ids.to_dtype(DType::I64).unwrap()),
                (
                    "attention_mask".to_string(),
                    mask.to_dtype(DType::I64).unwrap(),
                ),
                ("scores".to_string(), ours.clone()),
            ];
            candle_core::safetensors::save(
                &tensors.into_iter().collect(),
                target.join("ours.safetensors"),
            )
            .unwrap();
        }
        results.push((name, json, ours));
    }
    for (name, json, ours) in results {
        let dir = fixture("saved").join(name);
        let file = dir.join("transformers_scores.safetensors");
        let expected = candle_core::safetensors::load(&file, &Device::Cpu).unwrap_or_else(|e| {
            panic!(
                "{}: {e}; see transformers_reads_our_checkpoints",
                file.display()
            )
        });
        assert_eq!(read_config_json(&dir).unwrap(), json, "{name}: config.json");
        let diff = max_abs_diff(&ours, &expected["scores"]);
        let scale = max_abs_diff(&ours, &ours.zeros_like().unwrap());
        assert!(scale > 0.5, "{name}: scores too small to test ({scale})");
        eprintln!("{name}: scores {ours}, ours vs transformers {diff:e}");
        assert!(diff <= 1e-4, "{name}: differs from transformers by {diff}");
    }
}
