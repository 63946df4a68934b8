//! Reward models of every backbone loaded from Hugging Face
//! `*ForSequenceClassification` checkpoints (tiny random ones written by transformers
//! 5.24 with num_labels 1 and pad_token_id 0; see `scripts/make_rm_fixtures.py`)
//! score a left- and a right-padded batch as transformers does.

use candle_core::{DType, Device};
use rmteach_experiments::logprobs::SequenceBatch;
use rmteach_experiments::reward::load_reward_checkpoint;
use rmteach_experiments::reward::ScoreBatch;
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn check(name: &str) {
    let dir = fixture(name);
    let ckpt = load_reward_checkpoint(&dir, DType::F32, &Device::Cpu).unwrap();
    assert!(
        ckpt.report.unexpected.is_empty(),
        "{name}: {:?}",
        ckpt.report.unexpected
    );
    let expected =
        candle_core::safetensors::load(dir.join("expected.safetensors"), &Device::Cpu).unwrap();
    for side in ["left", "right"] {
        let ids = expected[&format!("{side}_ids")]
            .to_dtype(DType::U32)
            .unwrap();
        let mask = expected[&format!("{side}_mask")]
            .to_dtype(DType::U32)
            .unwrap();
        let want = expected[&format!("{side}_scores")]
            .to_vec1::<f32>()
            .unwrap();
        let got = ckpt.model.score(&ids, Some(&mask)).unwrap();
        let diff = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{name} {side}-padded: ours {got:?}, transformers {want:?}, diff {diff:e}");
        assert!(diff <= 1e-4, "{name} {side}: scores differ by {diff}");
        // The pipeline's scorer path: the same rows re-batched from their real tokens
        // (first token as the prompt) score the same through `ScoreBatch`.
        let rows: Vec<Vec<u32>> = ids
            .to_vec2::<u32>()
            .unwrap()
            .into_iter()
            .zip(mask.to_vec2::<u32>().unwrap())
            .map(|(r, m)| {
                r.into_iter()
                    .zip(m)
                    .filter(|(_, m)| *m == 1)
                    .map(|(t, _)| t)
                    .collect()
            })
            .collect();
        let prompts: Vec<&[u32]> = rows.iter().map(|r| &r[..1]).collect();
        let responses: Vec<&[u32]> = rows.iter().map(|r| &r[1..]).collect();
        let batch = SequenceBatch::new(&prompts, &responses, 0, &Device::Cpu).unwrap();
        let via = ckpt.model.score_batch(&batch).unwrap();
        let diff = via
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            diff <= 1e-4,
            "{name} {side} via ScoreBatch: differ by {diff}"
        );
    }
}

#[test]
fn llama_sequence_classification_scores_match() {
    check("rm_llama");
}

#[test]
fn gpt_neox_sequence_classification_scores_match() {
    check("rm_gpt_neox");
}

#[test]
fn gemma_sequence_classification_scores_match() {
    check("rm_gemma");
}

#[test]
fn gemma2_sequence_classification_scores_match() {
    check("rm_gemma2");
}

#[test]
fn causal_checkpoint_without_head_is_rejected() {
    let err = load_reward_checkpoint(&fixture("gemma"), DType::F32, &Device::Cpu)
        .err()
        .expect("a causal checkpoint has no score head")
        .to_string();
    assert!(err.contains("score.weight"), "{err}");
}

#[test]
fn multi_label_head_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("rm_gemma");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    config["id2label"] = serde_json::json!({"0": "a", "1": "b"});
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    std::fs::copy(
        src.join("model.safetensors"),
        dir.path().join("model.safetensors"),
    )
    .unwrap();
    let err = load_reward_checkpoint(dir.path(), DType::F32, &Device::Cpu)
        .err()
        .expect("two labels")
        .to_string();
    assert!(
        err.contains("id2label") && err.contains("2 labels"),
        "{err}"
    );
}
