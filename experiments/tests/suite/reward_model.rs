//! Reward models: scores do not depend on padding, gradients reach head and backbone,
//! the Bradley-Terry loss is right and trainable, and Hugging Face
//! sequence-classification checkpoints load.

use crate::common;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use common::{all_tiny, assert_every_var_has_gradient};
use rmteach_experiments::hf::save_varmap;
use rmteach_experiments::logprobs::SequenceBatch;
use rmteach_experiments::models::Architecture;
use rmteach_experiments::models::Model;
use rmteach_experiments::reward::{
    bradley_terry_loss, bradley_terry_loss_margin, bradley_terry_loss_with, last_token_indices,
    load_reward_checkpoint, new_reward_model, reward_model_from_causal_checkpoint, RewardModel,
};

fn rm(config: &Architecture, seed: u64) -> (VarMap, RewardModel<Model>) {
    let varmap = VarMap::new();
    let model = new_reward_model(config, &varmap, seed, DType::F32, &Device::Cpu).unwrap();
    (varmap, model)
}

fn t2(rows: &[&[u32]]) -> Tensor {
    let w = rows[0].len();
    let flat: Vec<u32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Tensor::from_vec(flat, (rows.len(), w), &Device::Cpu).unwrap()
}

#[test]
fn scores_do_not_depend_on_padding() {
    let seq: &[u32] = &[5, 9, 17, 33, 2];
    for (label, config) in all_tiny() {
        let (_, model) = rm(&config, 3);
        let alone = model.score(&t2(&[seq]), None).unwrap()[0];
        // Left-padded, right-padded and unpadded rows in one batch.
        let ids = t2(&[
            &[0, 0, 0, 5, 9, 17, 33, 2],
            &[5, 9, 17, 33, 2, 0, 0, 0],
            &[1, 4, 8, 5, 9, 17, 33, 2],
        ]);
        let mask = t2(&[
            &[0, 0, 0, 1, 1, 1, 1, 1],
            &[1, 1, 1, 1, 1, 0, 0, 0],
            &[1, 1, 1, 1, 1, 1, 1, 1],
        ]);
        let scores = model.score(&ids, Some(&mask)).unwrap();
        assert!(
            (scores[0] - alone).abs() < 1e-5,
            "{label}: left {} vs {alone}",
            scores[0]
        );
        assert!(
            (scores[1] - alone).abs() < 1e-5,
            "{label}: right {} vs {alone}",
            scores[1]
        );
        assert!(
            (scores[2] - alone).abs() > 1e-6,
            "{label}: a longer context scores the same"
        );
    }
}

#[test]
fn last_token_indices_and_bad_masks() {
    let mask = t2(&[&[0, 1, 1, 0], &[1, 0, 0, 0]]);
    assert_eq!(last_token_indices(Some(&mask), 2, 4).unwrap(), vec![2, 0]);
    assert_eq!(last_token_indices(None, 2, 4).unwrap(), vec![3, 3]);
    assert!(last_token_indices(Some(&t2(&[&[0, 0]])), 1, 2).is_err());
    assert!(last_token_indices(Some(&mask), 2, 5).is_err());
    let (_, model) = rm(&common::tiny_llama(true, false), 1);
    assert!(model
        .forward(&t2(&[&[1, 2]]), Some(&t2(&[&[0, 0]])))
        .is_err());
    let f32_ids = Tensor::zeros((1, 2), DType::F32, &Device::Cpu).unwrap();
    assert!(model.forward(&f32_ids, None).is_err());
}

#[test]
fn sequence_batches_score_like_their_unpadded_rows() {
    let (_, model) = rm(&common::tiny_neox(false), 6);
    let prompts = vec![vec![5u32, 9], vec![1, 2, 3, 4]];
    let responses = vec![vec![17u32, 33, 2], vec![8]];
    let batch = SequenceBatch::new(&prompts, &responses, 0, &Device::Cpu).unwrap();
    let scores = model
        .forward_batch(&batch)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for i in 0..2 {
        let row: Vec<u32> = prompts[i].iter().chain(&responses[i]).copied().collect();
        let alone = model.score(&t2(&[&row]), None).unwrap()[0];
        assert!(
            (scores[i] - alone).abs() < 1e-5,
            "row {i}: {} vs {alone}",
            scores[i]
        );
    }
}

#[test]
fn gradient_reaches_head_and_backbone() {
    let chosen = t2(&[&[0, 5, 9, 17], &[3, 4, 5, 6]]);
    let rejected = t2(&[&[0, 0, 5, 8], &[3, 4, 5, 7]]);
    let cmask = t2(&[&[0, 1, 1, 1], &[1, 1, 1, 1]]);
    let rmask = t2(&[&[0, 0, 1, 1], &[1, 1, 1, 1]]);
    for (label, config) in all_tiny() {
        let (varmap, model) = rm(&config, 9);
        let loss = bradley_terry_loss(
            &model.forward(&chosen, Some(&cmask)).unwrap(),
            &model.forward(&rejected, Some(&rmask)).unwrap(),
        )
        .unwrap();
        let grads = loss.backward().unwrap();
        let vars = varmap.data().lock().unwrap().clone();
        assert!(vars.contains_key("score.weight"), "{label}");
        assert_eq!(vars["score.weight"].dims(), &[1, 32]);
        // The causal LM head is not part of a reward model.
        assert_every_var_has_gradient(
            label,
            &varmap,
            &grads,
            &["lm_head.weight", "embed_out.weight"],
        );
    }
}

#[test]
fn bradley_terry_loss_values() {
    let dev = Device::Cpu;
    let c = Tensor::new(&[1.0f32, -2.0, 30.0], &dev).unwrap();
    let r = Tensor::new(&[0.0f32, 1.0, -50.0], &dev).unwrap();
    let nls = |x: f64| (1.0 + (-x).exp()).ln();
    let want: f64 = [(1.0, 0.0), (-2.0, 1.0), (30.0, -50.0)]
        .iter()
        .map(|&(a, b): &(f64, f64)| nls(a - b) + 0.01 * (a + b) * (a + b))
        .sum::<f64>()
        / 3.0;
    let got = bradley_terry_loss(&c, &r)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!((f64::from(got) - want).abs() < 1e-4, "{got} vs {want}");
    let plain = bradley_terry_loss_with(&c, &r, 0.0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let want_plain = (nls(1.0) + nls(-3.0) + nls(80.0)) / 3.0;
    assert!((f64::from(plain) - want_plain).abs() < 1e-5);
    assert!(bradley_terry_loss(&c, &r.narrow(0, 0, 2).unwrap()).is_err());
    // Llama 2's margin: -log sigmoid(r_c - r_r - m) + 0.01 (r_c + r_r)^2.
    let m = Tensor::new(&[0.5f32, 0.0, 2.0], &dev).unwrap();
    let got = bradley_terry_loss_margin(&c, &r, Some(&m), 0.01)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let want: f64 = [(1.0, 0.0, 0.5), (-2.0, 1.0, 0.0), (30.0, -50.0, 2.0)]
        .iter()
        .map(|&(a, b, m): &(f64, f64, f64)| nls(a - b - m) + 0.01 * (a + b) * (a + b))
        .sum::<f64>()
        / 3.0;
    assert!((f64::from(got) - want).abs() < 1e-4, "{got} vs {want}");
    // A margin raises the loss of every pair (softplus is increasing), and no margin is
    // bit-identical to the loss without one.
    assert!(
        f64::from(got)
            > f64::from(
                bradley_terry_loss(&c, &r)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            )
    );
    let none = bradley_terry_loss_margin(&c, &r, None, 0.01).unwrap();
    assert_eq!(
        none.to_scalar::<f32>().unwrap().to_bits(),
        bradley_terry_loss(&c, &r)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .to_bits()
    );
    assert!(bradley_terry_loss_margin(&c, &r, Some(&m.narrow(0, 0, 2).unwrap()), 0.01).is_err());
}

#[test]
fn rm_margins_are_the_scaled_score_gaps() {
    use rmteach_experiments::data::PreferencePair;
    use rmteach_experiments::stages::rm_train::margins;
    let pair = |c: Option<f64>, r: Option<f64>| PreferencePair {
        prompt: "p".into(),
        chosen: "a".into(),
        rejected: "b".into(),
        score_chosen: c,
        score_rejected: r,
    };
    let pairs = [pair(Some(0.9), Some(0.4)), pair(Some(1.0), Some(1.0))];
    assert_eq!(margins(&pairs, 0.0).unwrap(), None);
    let m = margins(&pairs, 2.0).unwrap().unwrap();
    assert!((m[0] - 1.0).abs() < 1e-6 && m[1] == 0.0, "{m:?}");
    let err = margins(&[pair(Some(1.0), None)], 1.0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("pair 0") && err.contains("rm.margin"), "{err}");
}

#[test]
fn bradley_terry_training_reduces_the_loss() {
    // Toy preference: sequences ending in an even token beat those ending in an odd one.
    let chosen = t2(&[
        &[0, 5, 9, 10],
        &[3, 4, 5, 20],
        &[7, 7, 1, 2],
        &[0, 0, 8, 44],
    ]);
    let rejected = t2(&[
        &[0, 5, 9, 11],
        &[3, 4, 5, 21],
        &[7, 7, 1, 3],
        &[0, 0, 8, 45],
    ]);
    let mask = t2(&[&[0, 1, 1, 1], &[1, 1, 1, 1], &[1, 1, 1, 1], &[0, 0, 1, 1]]);
    for (label, config) in all_tiny() {
        let (varmap, model) = rm(&config, 5);
        let params = ParamsAdamW {
            lr: 3e-3,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(varmap.all_vars(), params).unwrap();
        let mut losses = vec![];
        for _ in 0..8 {
            let loss = bradley_terry_loss(
                &model.forward(&chosen, Some(&mask)).unwrap(),
                &model.forward(&rejected, Some(&mask)).unwrap(),
            )
            .unwrap();
            losses.push(loss.to_scalar::<f32>().unwrap());
            opt.backward_step(&loss).unwrap();
        }
        // ln 2 at initialisation (scores near 0).
        assert!((losses[0] - 2f32.ln()).abs() < 0.05, "{label}: {losses:?}");
        assert!(losses[7] < 0.5 * losses[0], "{label}: {losses:?}");
    }
}

const LLAMA_SEQ_CLS: &str = r#"{"model_type": "llama", "architectures": ["LlamaForSequenceClassification"],
    "vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "hidden_act": "silu",
    "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "tie_word_embeddings": false,
    "rope_theta": 10000.0, "num_labels": 1, "pad_token_id": 0}"#;

const NEOX_SEQ_CLS: &str = r#"{"model_type": "gpt_neox", "architectures": ["GPTNeoXForSequenceClassification"],
    "vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
    "intermediate_size": 128, "hidden_act": "gelu", "rotary_pct": 0.25,
    "rotary_emb_base": 10000, "max_position_embeddings": 64, "layer_norm_eps": 1e-5,
    "use_parallel_residual": true, "tie_word_embeddings": false, "num_labels": 1,
    "pad_token_id": 0}"#;

#[test]
fn sequence_classification_checkpoints_load() {
    let ids = t2(&[&[0, 0, 5, 9, 17], &[1, 2, 3, 4, 5]]);
    let mask = t2(&[&[0, 0, 1, 1, 1], &[1, 1, 1, 1, 1]]);
    for (json, head, prefix) in [
        (LLAMA_SEQ_CLS, "lm_head.weight", "model."),
        (NEOX_SEQ_CLS, "embed_out.weight", "gpt_neox."),
    ] {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), json).unwrap();
        let config = Architecture::from_json_str(json, "config.json").unwrap();
        let (varmap, model) = rm(&config, 77);
        let want = model.score(&ids, Some(&mask)).unwrap();
        // The Hugging Face layout has no LM head.
        varmap.data().lock().unwrap().remove(head);
        let names: Vec<String> = varmap.data().lock().unwrap().keys().cloned().collect();
        assert!(
            names
                .iter()
                .all(|n| n == "score.weight" || n.starts_with(prefix)),
            "{names:?}"
        );
        save_varmap(&varmap, &dir.path().join("model.safetensors")).unwrap();

        let loaded = load_reward_checkpoint(dir.path(), DType::F32, &Device::Cpu).unwrap();
        assert!(loaded.report.unexpected.is_empty());
        assert_eq!(loaded.report.loaded, names.len());
        assert!(!loaded.varmap.data().lock().unwrap().contains_key(head));
        let got = loaded.model.score(&ids, Some(&mask)).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{head}: {got:?} vs {want:?}");
        }
    }
}

#[test]
fn missing_backbone_tensor_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), LLAMA_SEQ_CLS).unwrap();
    let config = Architecture::from_json_str(LLAMA_SEQ_CLS, "config.json").unwrap();
    let (varmap, _) = rm(&config, 1);
    varmap.data().lock().unwrap().remove("model.norm.weight");
    save_varmap(&varmap, &dir.path().join("model.safetensors")).unwrap();
    let err = load_reward_checkpoint(dir.path(), DType::F32, &Device::Cpu)
        .err()
        .expect("missing tensor")
        .to_string();
    assert!(err.contains("model.norm.weight"), "{err}");
}

#[test]
fn causal_checkpoint_gets_a_new_head() {
    let causal = LLAMA_SEQ_CLS.replace("LlamaForSequenceClassification", "LlamaForCausalLM");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), &causal).unwrap();
    let (varmap, _) = common::build(&Architecture::from_json_str(&causal, "c").unwrap(), 4);
    save_varmap(&varmap, &dir.path().join("model.safetensors")).unwrap();
    let a = reward_model_from_causal_checkpoint(dir.path(), 10, DType::F32, &Device::Cpu).unwrap();
    let b = reward_model_from_causal_checkpoint(dir.path(), 10, DType::F32, &Device::Cpu).unwrap();
    let w = a
        .model
        .score_weight()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(
        w,
        b.model
            .score_weight()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
    let std = (w.iter().map(|x| x * x).sum::<f32>() / w.len() as f32).sqrt();
    assert!(std > 0.005 && std < 0.05, "head init std {std}");
    assert!(a.varmap.data().lock().unwrap().contains_key("score.weight"));
    let scores = a.model.score(&t2(&[&[1, 2, 3]]), None).unwrap();
    assert!(scores[0].is_finite());
}
