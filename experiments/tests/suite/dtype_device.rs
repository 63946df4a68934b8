//! dtype and device: bf16 through sampling, scoring and training on candle's CPU
//! backend (which runs bf16), and the device-side pieces that replaced host
//! round-trips (attention inputs, token choice, reward pooling, optimiser norms)
//! checked against their host-side definitions.

use crate::common::{all_tiny, batch, build, max_abs_diff, tiny_llama};
use crate::stages::toy;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use rand::Rng;
use rand::SeedableRng;
use rmteach_experiments::data::{load_alpaca_sft, load_ultrafeedback};
use rmteach_experiments::hf::load_checkpoint;
use rmteach_experiments::logprobs::{token_logprobs, SequenceBatch};
use rmteach_experiments::models::attention::MASK_VALUE;
use rmteach_experiments::models::{Architecture, AttentionInputs, CausalLm, Model};
use rmteach_experiments::reward::reward_model_from_causal_checkpoint;
use rmteach_experiments::rundir::{MetricsLog, RunDir};
use rmteach_experiments::sample::{
    generate, pick_token, pick_tokens, row_rng, FinishReason, SamplingConfig,
};
use rmteach_experiments::stages::optim::{global_norm, AdamW, OptimConfig};
use rmteach_experiments::stages::pg::{Pg, PgAlgorithm, PgConfig, PgOutcome, PgRecord};
use rmteach_experiments::stages::rewards::GroundTruthReward;
use rmteach_experiments::stages::rm_train::{RmTrain, RmTrainOptions};
use rmteach_experiments::stages::sft::{Sft, SftOptions};
use rmteach_experiments::stages::{self, Runtime};
use rmteach_experiments::toy::ToyReward;

const CPU: Device = Device::Cpu;

/// `varmap`'s variables converted to `dtype`, in a new map.
fn converted(varmap: &VarMap, dtype: DType) -> VarMap {
    let out = VarMap::new();
    {
        let src = varmap.data().lock().unwrap();
        let mut dst = out.data().lock().unwrap();
        for (name, var) in src.iter() {
            let t = var.as_tensor().to_dtype(dtype).unwrap();
            dst.insert(name.clone(), Var::from_tensor(&t).unwrap());
        }
    }
    out
}

/// The same seeded weights as an f32 and a bf16 model.
fn twins(config: &Architecture, seed: u64) -> (Model, Model) {
    let (varmap, f32_model) = build(config, seed);
    let bf16 = converted(&varmap, DType::BF16);
    let bf16_model = Model::new(config, VarBuilder::from_varmap(&bf16, DType::BF16, &CPU)).unwrap();
    (f32_model, bf16_model)
}

fn logits(model: &Model, ids: &Tensor, mask: &Tensor) -> Tensor {
    let (b, t) = ids.dims2().unwrap();
    let inputs = AttentionInputs::new(Some(mask), b, t, 0, DType::F32, &CPU).unwrap();
    let hidden = model.forward_hidden(ids, &inputs, None).unwrap();
    model
        .lm_head(&hidden)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
}

/// Largest absolute value of a tensor.
fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn bf16_logits_and_logprobs_track_f32() {
    let (ids, mask) = batch();
    for (label, config) in all_tiny() {
        let (m32, m16) = twins(&config, 5);
        let (l32, l16) = (logits(&m32, &ids, &mask), logits(&m16, &ids, &mask));
        assert_eq!(l16.dtype(), DType::F32, "{label}: logits come back as f32");
        // bf16 keeps 8 significant bits: each of the two layers' matmuls, norms and
        // the head round at ~0.4%; 5% of the logit scale bounds what accumulates.
        let (diff, scale) = (max_abs_diff(&l32, &l16), max_abs(&l32));
        assert!(
            diff <= 0.05 * scale,
            "{label}: logits differ by {diff} (scale {scale})"
        );
        assert!(diff > 0.0, "{label}: bf16 must actually round something");

        let prompts = vec![vec![5u32, 9, 17], vec![4, 8]];
        let responses = vec![vec![33u32, 2, 60, 7], vec![15]];
        let seq = SequenceBatch::new(&prompts, &responses, 0, &CPU).unwrap();
        let (p32, p16) = (
            token_logprobs(&m32, &seq).unwrap(),
            token_logprobs(&m16, &seq).unwrap(),
        );
        assert_eq!(
            p16.dtype(),
            DType::F32,
            "{label}: log-probabilities are f32"
        );
        let d = max_abs_diff(&p32, &p16);
        assert!(d < 0.02, "{label}: log-probabilities differ by {d}");
    }
}

/// The host-side definition of [`AttentionInputs`]: positions count real tokens
/// before each query (pads get 0); a key is visible when real and not in the future.
fn reference_inputs(rows: &[Vec<u32>], query_len: usize, past: usize) -> (Vec<u32>, Vec<f32>) {
    let (mut pos, mut mask) = (Vec::new(), Vec::new());
    for row in rows {
        for i in 0..query_len {
            let q = past + i;
            let before = row[..=q].iter().filter(|&&m| m != 0).count() as u32;
            pos.push(if row[q] != 0 { before - 1 } else { 0 });
            for (j, &m) in row.iter().enumerate() {
                mask.push(if j <= q && m != 0 { 0.0 } else { MASK_VALUE });
            }
        }
    }
    (pos, mask)
}

#[test]
fn attention_inputs_built_on_the_device_match_their_definition() {
    let cases: Vec<(Vec<Vec<u32>>, usize, usize)> = vec![
        (vec![vec![0, 0, 1, 1, 1], vec![1, 1, 1, 1, 1]], 3, 2),
        (vec![vec![1, 1, 0, 1], vec![0, 1, 1, 0]], 4, 0),
        (vec![vec![0, 0, 1, 1, 0, 1]], 1, 5),
    ];
    for (rows, query_len, past) in cases {
        let (b, keys) = (rows.len(), rows[0].len());
        let flat: Vec<u32> = rows.iter().flatten().copied().collect();
        let (want_pos, want_mask) = reference_inputs(&rows, query_len, past);
        for dtype in [DType::U32, DType::F32, DType::BF16] {
            let m = Tensor::from_vec(flat.clone(), (b, keys), &CPU)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let got = AttentionInputs::new(Some(&m), b, query_len, past, DType::F32, &CPU).unwrap();
            let pos = got
                .positions
                .flatten_all()
                .unwrap()
                .to_vec1::<u32>()
                .unwrap();
            assert_eq!(pos, want_pos, "positions of {rows:?} past {past}");
            assert_eq!(got.mask.dims(), [b, 1, query_len, keys]);
            let mask = got.mask.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            assert_eq!(mask, want_mask, "mask of {rows:?} past {past}");
        }
    }
    let none = AttentionInputs::new(None, 2, 3, 1, DType::BF16, &CPU).unwrap();
    assert_eq!(none.mask.dtype(), DType::BF16);
    assert_eq!(
        none.positions.to_vec2::<u32>().unwrap(),
        vec![vec![1, 2, 3], vec![1, 2, 3]]
    );
    let bad = Tensor::ones((2, 3), DType::U32, &CPU).unwrap();
    assert!(AttentionInputs::new(Some(&bad), 2, 3, 1, DType::F32, &CPU).is_err());
}

/// Seeded random logits `(rows, vocab)`.
fn random_logits(rows: usize, vocab: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..rows)
        .map(|_| (0..vocab).map(|_| rng.random_range(-3.0f32..3.0)).collect())
        .collect()
}

fn tensor2(rows: &[Vec<f32>]) -> Tensor {
    let (b, v) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (b, v), &CPU).unwrap()
}

#[test]
fn device_token_choice_matches_the_host_sampler() {
    // vocab 37: not a square, so the blocked prefix sum pads its last block.
    let (b, vocab) = (4, 37);
    for (label, cfg) in [
        ("t=1", SamplingConfig::sampling(1, 1.0, 99, 0, 3)),
        ("t=0.7", SamplingConfig::sampling(1, 0.7, 99, 0, 4)),
        ("t=2.5", SamplingConfig::sampling(1, 2.5, 99, 0, 5)),
        (
            "top-k",
            SamplingConfig::sampling(1, 1.0, 99, 0, 6).with_top_k(5),
        ),
        (
            "top-p",
            SamplingConfig::sampling(1, 1.0, 99, 0, 7).with_top_p(0.8),
        ),
        ("greedy", SamplingConfig::greedy(1, 99, 0)),
    ] {
        let mut dev_rngs: Vec<_> = (0..b).map(|r| row_rng(cfg.seed, r)).collect();
        let mut host_rngs = dev_rngs.clone();
        let all = vec![true; b];
        for step in 0..200 {
            let rows = random_logits(b, vocab, 1000 + step);
            let got = pick_tokens(&tensor2(&rows), &cfg, &mut dev_rngs, &all).unwrap();
            let want: Vec<u32> = (0..b)
                .map(|r| pick_token(&rows[r], &cfg, &mut host_rngs[r]).unwrap())
                .collect();
            assert_eq!(got, want, "{label}: step {step}");
        }
    }
    // Inactive rows draw nothing: their streams stay where they were.
    let cfg = SamplingConfig::sampling(1, 1.0, 99, 0, 8);
    let mut rngs: Vec<_> = (0..2).map(|r| row_rng(8, r)).collect();
    pick_tokens(
        &tensor2(&random_logits(2, 9, 1)),
        &cfg,
        &mut rngs,
        &[true, false],
    )
    .unwrap();
    assert_eq!(rngs[1].random::<u64>(), row_rng(8, 1).random::<u64>());
    assert_ne!(rngs[0].random::<u64>(), row_rng(8, 0).random::<u64>());
}

#[test]
fn device_token_choice_rejects_bad_logits() {
    let cfg = SamplingConfig::sampling(1, 1.0, 99, 0, 1);
    let mut rngs: Vec<_> = (0..2).map(|r| row_rng(1, r)).collect();
    let nan = tensor2(&[vec![0.0, 1.0, 2.0], vec![0.0, f32::NAN, 1.0]]);
    let err = pick_tokens(&nan, &cfg, &mut rngs, &[true, true]).unwrap_err();
    assert!(err.to_string().contains("row 1"), "{err}");
    // A finished row's bad logits do not matter.
    assert!(pick_tokens(&nan, &cfg, &mut rngs, &[true, false]).is_ok());
    let inf = tensor2(&[vec![f32::INFINITY, 0.0, 0.0], vec![0.0; 3]]);
    assert!(pick_tokens(
        &inf,
        &SamplingConfig::greedy(1, 9, 0),
        &mut rngs,
        &[true, true]
    )
    .is_err());
    let ninf = tensor2(&[vec![f32::NEG_INFINITY; 3], vec![0.0; 3]]);
    assert!(pick_tokens(&ninf, &cfg, &mut rngs, &[true, true]).is_err());
    assert!(
        pick_tokens(&ninf, &cfg, &mut rngs, &[true]).is_err(),
        "row count mismatch"
    );
    // -inf logits outside the argmax are fine: those tokens are never drawn.
    let masked = tensor2(&vec![vec![f32::NEG_INFINITY, 0.0, f32::NEG_INFINITY]; 2]);
    for _ in 0..20 {
        assert_eq!(
            pick_tokens(&masked, &cfg, &mut rngs, &[true, true]).unwrap(),
            vec![1, 1]
        );
    }
}

#[test]
fn bf16_sampling_is_reproducible_and_greedy_runs() {
    let (_, m16) = twins(&tiny_llama(false, true), 4);
    let prompts = vec![vec![5u32, 9, 17], vec![4, 8, 15, 16, 23, 42, 7], vec![33]];
    let cfg = SamplingConfig::sampling(12, 1.0, 63, 0, 1234);
    let a = generate(&m16, &prompts, &cfg, &CPU).unwrap();
    let b = generate(&m16, &prompts, &cfg, &CPU).unwrap();
    assert_eq!(a, b, "same seed, same samples");
    let c = generate(&m16, &prompts, &cfg.clone().with_seed(99), &CPU).unwrap();
    assert_ne!(a.responses, c.responses, "another seed, other samples");
    assert!(a.responses.iter().flatten().all(|&t| t < 64));
    // Greedy bf16 decoding is deterministic and stops where it says it stopped.
    let greedy = SamplingConfig::greedy(8, 63, 0);
    let g = generate(&m16, &prompts, &greedy, &CPU).unwrap();
    assert_eq!(g, generate(&m16, &prompts, &greedy, &CPU).unwrap());
    for (r, f) in g.responses.iter().zip(&g.finish_reasons) {
        match f {
            FinishReason::Length => assert_eq!(r.len(), 8),
            FinishReason::Eos => assert_eq!(r.last(), Some(&63)),
        }
    }
}

#[test]
fn adamw_keeps_f32_masters_for_bf16_weights() {
    // One bf16 weight of 1.0: its bf16 neighbours are 2^-7 apart, far more than an
    // AdamW step of lr = 1e-4, which the variable alone would round away.
    let varmap = VarMap::new();
    let w = Var::from_tensor(&Tensor::ones(4, DType::BF16, &CPU).unwrap()).unwrap();
    varmap.data().lock().unwrap().insert("w".into(), w.clone());
    let mut opt = AdamW::new(&varmap, OptimConfig::new(1e-4)).unwrap();
    assert!(opt.has_master_weights());
    for _ in 0..3 {
        let loss = w
            .as_tensor()
            .to_dtype(DType::F32)
            .unwrap()
            .sum_all()
            .unwrap();
        let stats = opt.step(&loss).unwrap();
        assert!((stats.grad_norm - 2.0).abs() < 1e-6, "{}", stats.grad_norm);
    }
    let stored = w
        .as_tensor()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(stored, vec![1.0; 4], "bf16 cannot hold 1 - 3e-4");
    let masters = opt.master_varmap(&varmap).unwrap();
    let master = masters.data().lock().unwrap()["w"]
        .as_tensor()
        .to_vec1::<f32>()
        .unwrap();
    for m in &master {
        assert!((m - (1.0 - 3e-4)).abs() < 1e-6, "master {m}");
    }

    // Save / restore: a fresh optimiser over fresh bf16 weights gets the masters back.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opt.safetensors");
    opt.save_state(&path).unwrap();
    let other = VarMap::new();
    let w2 = Var::from_tensor(&Tensor::zeros(4, DType::BF16, &CPU).unwrap()).unwrap();
    other.data().lock().unwrap().insert("w".into(), w2.clone());
    let mut restored = AdamW::new(&other, OptimConfig::new(1e-4)).unwrap();
    restored.load_state(&path).unwrap();
    assert_eq!(restored.step_count(), 3);
    let back = restored.master_varmap(&other).unwrap();
    assert_eq!(
        back.data().lock().unwrap()["w"]
            .as_tensor()
            .to_vec1::<f32>()
            .unwrap(),
        master
    );
    assert_eq!(
        w2.as_tensor()
            .to_dtype(DType::F32)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        vec![1.0; 4],
        "the variable is the master rounded to bf16"
    );

    // f32 variables have no master copy and the norm is one device-side sum.
    let (f32_map, _) = build(&tiny_llama(true, false), 1);
    assert!(!AdamW::new(&f32_map, OptimConfig::new(1e-3))
        .unwrap()
        .has_master_weights());
    let a = Tensor::new(&[3f32, 0.0], &CPU).unwrap();
    let b = Tensor::new(&[4f32], &CPU)
        .unwrap()
        .to_dtype(DType::BF16)
        .unwrap();
    assert!((global_norm(&[&a, &b]).unwrap() - 5.0).abs() < 1e-6);
    assert_eq!(global_norm(&[]).unwrap(), 0.0);
}

#[test]
fn bf16_reward_scores_track_f32_and_pool_on_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let paths = toy(dir.path());
    let rm32 = reward_model_from_causal_checkpoint(&paths.llama, 2, DType::F32, &CPU).unwrap();
    let rm16 = reward_model_from_causal_checkpoint(&paths.llama, 2, DType::BF16, &CPU).unwrap();
    let prompts = vec![vec![5u32, 9, 17], vec![4, 8, 15, 16, 23, 42, 7], vec![33]];
    let responses = vec![vec![3u32, 4], vec![], vec![6, 7, 8, 9, 10]];
    let seq = SequenceBatch::new(&prompts, &responses, 0, &CPU).unwrap();
    let by_batch = rm32.model.forward_batch(&seq).unwrap();
    let by_mask = rm32
        .model
        .forward(&seq.input_ids, Some(&seq.attention_mask))
        .unwrap();
    assert_eq!(
        by_batch.to_vec1::<f32>().unwrap(),
        by_mask.to_vec1::<f32>().unwrap(),
        "device-side pooling picks the same tokens as the host-side check"
    );
    let s16 = rm16.model.forward_batch(&seq).unwrap();
    assert_eq!(s16.dtype(), DType::F32);
    let (d, scale) = (max_abs_diff(&by_batch, &s16), max_abs(&by_batch));
    assert!(
        d <= 0.05 * scale + 1e-3,
        "bf16 scores differ by {d} (scale {scale})"
    );
}

#[test]
fn bf16_sft_trains_and_saves_its_f32_masters() {
    let dir = tempfile::tempdir().unwrap();
    let paths = toy(dir.path());
    let data = load_alpaca_sft(&paths.sft).unwrap();
    let run = RunDir::open(dir.path().join("run")).unwrap();
    let stage = run.stage("sft").unwrap();
    let o = SftOptions {
        lr: 3e-3,
        batch_size: 4,
        micro_batch_size: Some(2),
        epochs: 2,
        ..Default::default()
    };
    let report = stages::run(
        Sft {
            init_dir: &paths.llama,
            data: &data,
            options: &o,
        },
        &stage,
        &Runtime {
            device: CPU,
            dtype: DType::BF16,
        },
    )
    .unwrap();
    assert_eq!(report.losses.len(), 12);
    assert!(report.losses.iter().all(|l| l.is_finite()));
    let (first, last) = (report.losses[0], *report.losses.last().unwrap());
    assert!(last < first, "bf16 SFT losses {:?}", report.losses);
    // The saved weights are the f32 masters: not all of them bf16-representable.
    let saved = load_checkpoint(stage.path(), DType::F32, &CPU).unwrap();
    let off_grid = saved.varmap.all_vars().iter().any(|v| {
        let t = v.as_tensor();
        let rounded = t
            .to_dtype(DType::BF16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        max_abs_diff(t, &rounded) > 0.0
    });
    assert!(
        off_grid,
        "checkpoint holds only bf16 values: masters were not saved"
    );

    let bad = run.stage("sft-f16").unwrap();
    let err = stages::run(
        Sft {
            init_dir: &paths.llama,
            data: &data,
            options: &o,
        },
        &bad,
        &Runtime {
            device: CPU,
            dtype: DType::F16,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("f32 or bf16"), "{err}");
}

#[test]
fn bf16_reward_model_and_policy_gradient_run() {
    let dir = tempfile::tempdir().unwrap();
    let paths = toy(dir.path());
    let run = RunDir::open(dir.path().join("run")).unwrap();
    let pairs = load_ultrafeedback(&paths.train_prefs).unwrap();
    let o = RmTrainOptions {
        lr: 1e-3,
        batch_size: 4,
        micro_batch_size: Some(2),
        epochs: 1,
        ..Default::default()
    };
    let stage = run.stage("rms/rm-0").unwrap();
    let report = stages::run(
        RmTrain {
            name: "rm",
            sft_dir: &paths.llama,
            pairs: &pairs,
            options: &o,
        },
        &stage,
        &Runtime {
            device: CPU,
            dtype: DType::BF16,
        },
    )
    .unwrap();
    assert_eq!((report.losses.len(), report.pairs), (4, 16));
    assert!(report.losses.iter().all(|l| l.is_finite()));
    assert!(report.accuracies.iter().all(|a| (0.0..=1.0).contains(a)));

    let prompts: Vec<String> = load_alpaca_sft(&paths.sft)
        .unwrap()
        .into_iter()
        .map(|e| e.prompt)
        .take(8)
        .collect();
    let reward = GroundTruthReward(ToyReward::default());
    let po = PgConfig {
        algorithm: PgAlgorithm::Grpo,
        lr: 1e-3,
        batch_size: 8,
        max_new_tokens: 8,
        epochs: 2.0,
        checkpoint_every: 1,
        ..Default::default()
    };
    let stage = run.stage("pg/gt/seed0").unwrap();
    let out = stages::run(
        Pg {
            reward_name: "gt",
            init_dir: &paths.llama,
            prompts: &prompts,
            reward: &reward,
            options: &po,
            seed: 11,
            stop_after: None,
            hooks: &mut (),
        },
        &stage,
        &Runtime {
            device: CPU,
            dtype: DType::BF16,
        },
    )
    .unwrap();
    assert!(
        matches!(out, PgOutcome::Finished { updates: 2, .. }),
        "{out:?}"
    );
    let records: Vec<PgRecord> = MetricsLog::read_all(&stage.file("metrics.jsonl")).unwrap();
    assert_eq!(records.len(), 2);
    assert!(records.iter().all(|r| r.loss.is_finite()
        && r.kl.is_finite()
        && r.grad_norm > 0.0
        && (0.0..=1.0).contains(&r.clip_frac)));
    load_checkpoint(&stage.file("policy"), DType::F32, &CPU).unwrap();
}
