//! Agreement with transformers: tiny checkpoints written by `save_pretrained`
//! (transformers 5.24, random init with perturbed norms and biases; see
//! `scripts/make_hf_fixtures.py`) load through [`load_checkpoint`] and reproduce the
//! logits transformers computed for a left-padded batch, on every real token, through
//! both the full forward and the key/value-cached forward.

use candle_core::{DType, Device, Tensor};
use rmteach_experiments::hf::load_checkpoint;
use rmteach_experiments::models::{Architecture, CausalLm};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Largest |a - b| over positions where `mask` is 1.
fn masked_max_diff(a: &Tensor, b: &Tensor, mask: &Tensor) -> f32 {
    let m = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .broadcast_mul(&m)
        .unwrap()
        .flatten_all()
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
    // Weights of std 0.3 give logits of order 10: compare relative to their scale.
    let scale = want
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(
        scale > 1.0,
        "{name}: fixture logits too small to test ({scale})"
    );
    let tol = 1e-5 * scale;

    let got = ckpt.model.forward(&ids, Some(&mask)).unwrap();
    let diff = masked_max_diff(&got, want, &mask);
    eprintln!("{name}: max |logit| {scale}, full-forward diff {diff:e}");
    assert!(
        diff < tol,
        "{name}: full forward differs from transformers by {diff}"
    );

    let t = ids.dim(1).unwrap();
    let mut cache = ckpt.model.new_cache();
    let mut pieces = Vec::new();
    for (start, len) in [(0, 4), (4, 1), (5, 3)] {
        let key_mask = mask.narrow(1, 0, start + len).unwrap();
        let step = ids.narrow(1, start, len).unwrap();
        pieces.push(
            ckpt.model
                .forward_cached(&step, Some(&key_mask), &mut cache)
                .unwrap(),
        );
    }
    assert_eq!(cache.len(), t);
    let cached = Tensor::cat(&pieces, 1).unwrap();
    let diff = masked_max_diff(&cached, want, &mask);
    assert!(
        diff < tol,
        "{name}: cached forward differs from transformers by {diff}"
    );
}

#[test]
fn gpt_neox_matches_transformers() {
    check("gpt_neox");
}

#[test]
fn gpt_neox_sequential_residual_matches_transformers() {
    check("gpt_neox_sequential");
}

#[test]
fn llama_gqa_llama3_rope_tied_matches_transformers() {
    let ckpt = load_checkpoint(&fixture("llama"), DType::F32, &Device::Cpu).unwrap();
    let Architecture::Llama(c) = &ckpt.config else {
        panic!("not llama")
    };
    assert!(c.tie_word_embeddings && c.num_key_value_heads < c.num_attention_heads);
    check("llama");
}
