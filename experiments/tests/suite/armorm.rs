//! ArmoRM (`LlamaForRewardModelWithGating`) against a torch reference: a tiny model
//! (5 objectives, gate of 2 hidden layers of 16, temperature 3, non-identity reward
//! transform, logit scale 1.7; see `scripts/make_rm_fixtures.py`) scores a batch
//! with a left-padded row, a right-padded row and a row with two gating patterns
//! (the last one counts) like the reference: rewards, gate and score.

use candle_core::{DType, Device, Tensor};
use rmteach_experiments::reward::{find_gating_position, load_armorm, ArmoRmConfig};
use std::path::PathBuf;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/armorm")
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b).unwrap().abs().unwrap().flatten_all().unwrap();
    d.max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn armorm_matches_reference() {
    let dir = fixture();
    let ckpt = load_armorm(&dir, DType::F32, &Device::Cpu).unwrap();
    assert!(
        ckpt.report.unexpected.is_empty(),
        "{:?}",
        ckpt.report.unexpected
    );
    assert_eq!(ckpt.config.num_objectives, 5);
    let expected =
        candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    let ids = expected["input_ids"].to_dtype(DType::U32).unwrap();
    let mask = expected["attention_mask"].to_dtype(DType::U32).unwrap();
    let out = ckpt.model.forward(&ids, Some(&mask)).unwrap();
    for (name, got) in [
        ("rewards", &out.rewards),
        ("gating", &out.gating),
        ("score", &out.score),
    ] {
        let diff = max_diff(got, &expected[name]);
        eprintln!("armorm {name}: diff {diff:e}");
        assert!(diff <= 1e-4, "{name} differs from the reference by {diff}");
    }
}

#[test]
fn gating_position_is_the_last_pattern_start() {
    assert_eq!(
        find_gating_position(&[1, 7, 8, 2, 7, 8, 3], &[7, 8]),
        Some(4)
    );
    assert_eq!(find_gating_position(&[7, 8], &[7, 8]), Some(0));
    assert_eq!(find_gating_position(&[7], &[7, 8]), None);
    assert_eq!(find_gating_position(&[1, 2, 3], &[]), None);
}

#[test]
fn missing_pattern_and_bad_config_are_errors() {
    let ckpt = load_armorm(&fixture(), DType::F32, &Device::Cpu).unwrap();
    let ids = Tensor::from_vec(vec![5u32, 9, 17, 33], (1, 4), &Device::Cpu).unwrap();
    let err = ckpt.model.forward(&ids, None).unwrap_err().to_string();
    assert!(err.contains("row 0") && err.contains("pattern"), "{err}");

    let text = std::fs::read_to_string(fixture().join("config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = [
        ("architectures", serde_json::json!(["LlamaForCausalLM"])),
        ("gating_token_pattern", serde_json::json!([])),
        ("gating_temperature", serde_json::json!(0.0)),
        ("num_objectives", serde_json::json!(0)),
    ];
    for (key, value) in cases {
        let old = v[key].clone();
        v[key] = value;
        let err = ArmoRmConfig::from_json_str(&v.to_string(), "config.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("config.json") && err.contains(key),
            "{key}: {err}"
        );
        v[key] = old;
    }
    let config = ArmoRmConfig::from_json_str(&text, "c").unwrap();
    assert_eq!(config.gating_token_pattern, vec![60, 61, 62]);
}
