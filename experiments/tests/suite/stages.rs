//! The training stages on a tiny toy Llama: optimiser, SFT, reward-model training,
//! RLOO/GRPO with checkpoint and resume, evaluation.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Optimizer, ParamsAdamW, VarMap};
use rmteach::metrics::Normalizer;
use rmteach_experiments::data::{load_alpaca_sft, load_ultrafeedback, SftExample};
use rmteach_experiments::hf::{
    load_checkpoint, read_config_json, save_checkpoint_with_json, SaveOptions,
};
use rmteach_experiments::models::{Architecture, Model, SeededVarMap};
use rmteach_experiments::reward::load_reward_checkpoint;
use rmteach_experiments::rundir::{MetricsLog, RunDir, StageDir};
use rmteach_experiments::stages::batches::ChatCodec;
use rmteach_experiments::stages::evaluate::{evaluate, sample, EvalOptions};
use rmteach_experiments::stages::optim::{AdamW, OptimConfig, Optimizer as Update};
use rmteach_experiments::stages::pg::{Pg, PgAlgorithm, PgConfig, PgHooks, PgOutcome, PgRecord};
use rmteach_experiments::stages::rewards::{
    GroundTruthReward, Normalized, RewardFn, RewardModelScorer,
};
use rmteach_experiments::stages::rm_train::{RmTrain, RmTrainOptions};
use rmteach_experiments::stages::sft::{Sft, SftOptions};
use rmteach_experiments::stages::{self, advantages, Runtime};
use rmteach_experiments::toy::{
    write_toy_world, ToyModelSize, ToyReward, ToyWorldPaths, ToyWorldSpec,
};
use std::path::Path;

/// A toy world with a tiny, randomly initialised Llama saved in `paths.llama`.
pub(crate) fn toy(root: &Path) -> ToyWorldPaths {
    let model = ToyModelSize {
        hidden_size: 32,
        num_hidden_layers: 2,
        num_attention_heads: 4,
        intermediate_size: 96,
        max_position_embeddings: 64,
    };
    let spec = ToyWorldSpec {
        seed: 3,
        pretrain: 0,
        sft: 24,
        train_prefs: 16,
        test_prefs: 4,
        prompts: 8,
        model,
        offpolicy_gap_permille: 0,
        sft_style: Default::default(),
    };
    let paths = write_toy_world(root, &spec).unwrap();
    let config = Architecture::from_file(&paths.llama.join("config.json")).unwrap();
    let varmap = VarMap::new();
    Model::new(
        &config,
        SeededVarMap::new(varmap.clone(), 7).var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    save_checkpoint_with_json(
        &paths.llama,
        &read_config_json(&paths.llama).unwrap(),
        &varmap,
        &SaveOptions::default(),
    )
    .unwrap();
    paths
}

fn prompts(paths: &ToyWorldPaths) -> Vec<String> {
    load_alpaca_sft(&paths.sft)
        .unwrap()
        .into_iter()
        .map(|e| e.prompt)
        .take(16)
        .collect()
}

/// Quadratic loss `sum (w x - y)^2` on a two-variable map, for optimiser checks.
fn quad(varmap: &VarMap, scale: f64) -> Tensor {
    let vars = varmap.data().lock().unwrap();
    let (a, b) = (vars["a"].as_tensor(), vars["b"].as_tensor());
    let x = Tensor::new(&[1.0f32, -2.0, 0.5], &Device::Cpu).unwrap();
    let l = ((a * &x).unwrap() - 3.0)
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap();
    ((l + b.sqr().unwrap().sum_all().unwrap()).unwrap() * scale).unwrap()
}

fn two_vars() -> VarMap {
    let varmap = VarMap::new();
    let mut d = varmap.data().lock().unwrap();
    d.insert(
        "a".into(),
        candle_core::Var::new(&[0.3f32, -0.1, 0.7], &Device::Cpu).unwrap(),
    );
    d.insert(
        "b".into(),
        candle_core::Var::new(&[2.0f32, 1.0], &Device::Cpu).unwrap(),
    );
    drop(d);
    varmap
}

fn values(varmap: &VarMap) -> Vec<f32> {
    let d = varmap.data().lock().unwrap();
    ["a", "b"]
        .iter()
        .flat_map(|n| d[*n].as_tensor().to_vec1::<f32>().unwrap())
        .collect()
}

#[test]
fn adamw_matches_candle_and_clips_and_resumes() {
    // Without clipping: the same trajectory as candle_nn::AdamW.
    let (ours, theirs) = (two_vars(), two_vars());
    let config = OptimConfig {
        weight_decay: 0.01,
        max_grad_norm: None,
        ..OptimConfig::new(0.05)
    };
    let mut opt = AdamW::new(&ours, config).unwrap();
    let params = ParamsAdamW {
        lr: 0.05,
        weight_decay: 0.01,
        ..Default::default()
    };
    let mut reference = candle_nn::AdamW::new(theirs.all_vars(), params).unwrap();
    for _ in 0..5 {
        opt.step(&quad(&ours, 1.0)).unwrap();
        reference.backward_step(&quad(&theirs, 1.0)).unwrap();
    }
    for (x, y) in values(&ours).iter().zip(values(&theirs)) {
        assert!((x - y).abs() < 1e-6, "{x} vs {y}");
    }
    // Clipping to norm 0.1 equals candle's step on the loss scaled by 0.1 / norm.
    let (ours, theirs) = (two_vars(), two_vars());
    let mut opt = AdamW::new(
        &ours,
        OptimConfig {
            max_grad_norm: Some(0.1),
            ..OptimConfig::new(0.05)
        },
    )
    .unwrap();
    let mut reference = candle_nn::AdamW::new(
        theirs.all_vars(),
        ParamsAdamW {
            lr: 0.05,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    for _ in 0..3 {
        let stats = opt.step(&quad(&ours, 1.0)).unwrap();
        reference
            .backward_step(&quad(&theirs, 0.1 / (stats.grad_norm + 1e-6)))
            .unwrap();
    }
    for (x, y) in values(&ours).iter().zip(values(&theirs)) {
        assert!((x - y).abs() < 1e-5, "clipped: {x} vs {y}");
    }
    // Saved state resumes the same trajectory.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("opt.safetensors");
    opt.save_state(&state).unwrap();
    let copy = two_vars();
    {
        let (src, dst) = (ours.data().lock().unwrap(), copy.data().lock().unwrap());
        for (n, v) in src.iter() {
            dst[n].set(v.as_tensor()).unwrap();
        }
    }
    let mut resumed = AdamW::new(&copy, *opt.config()).unwrap();
    resumed.load_state(&state).unwrap();
    assert_eq!(resumed.step_count(), 3);
    for _ in 0..2 {
        opt.step(&quad(&ours, 1.0)).unwrap();
        resumed.step(&quad(&copy, 1.0)).unwrap();
    }
    assert_eq!(values(&ours), values(&copy));
    // Bad inputs are errors, not panics.
    assert!(AdamW::new(&two_vars(), OptimConfig::new(f64::NAN)).is_err());
    assert!(opt.apply().is_err(), "a step without gradients");
    // A non-finite gradient is refused, naming the fix (not a silent NaN step).
    let e = opt.step(&quad(&ours, f64::NAN)).unwrap_err().to_string();
    assert!(
        e.contains("NaN") && e.contains("diverged") && e.contains("`lr`"),
        "{e}"
    );
    assert!(resumed
        .load_state(&dir.path().join("missing.safetensors"))
        .is_err());
}

#[test]
fn sgd_first_update_is_minus_lr_times_the_gradient() {
    // The gradient of `quad`, read from candle's backward pass before any step.
    let varmap = two_vars();
    let grads = quad(&varmap, 1.0).backward().unwrap();
    let grad: Vec<f32> = {
        let d = varmap.data().lock().unwrap();
        ["a", "b"]
            .iter()
            .flat_map(|n| {
                grads
                    .get(d[*n].as_tensor())
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap()
            })
            .collect()
    };
    let before = values(&varmap);
    let lr = 0.01;
    for (clip, expect_scale) in [(None, 1.0f64), (Some(1.0), f64::NAN)] {
        let ours = two_vars();
        let mut opt = AdamW::new(
            &ours,
            OptimConfig {
                optimizer: Update::Sgd,
                max_grad_norm: clip,
                ..OptimConfig::new(lr)
            },
        )
        .unwrap();
        let stats = opt.step(&quad(&ours, 1.0)).unwrap();
        let norm = grad
            .iter()
            .map(|g| f64::from(*g).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((stats.grad_norm - norm).abs() < 1e-4 * norm);
        // Clipped at 1: the gradient is rescaled to norm 1 (it is far above 1 here).
        let scale = if expect_scale.is_nan() {
            assert!(
                norm > 1.0,
                "the check needs a gradient norm above 1: {norm}"
            );
            1.0 / (norm + 1e-6)
        } else {
            expect_scale
        };
        for ((after, b), g) in values(&ours).iter().zip(&before).zip(&grad) {
            let want = f64::from(*b) - lr * scale * f64::from(*g);
            assert!(
                (f64::from(*after) - want).abs() < 1e-6,
                "clip {clip:?}: {after} vs {want}"
            );
        }
    }
    // AdamW's first step differs from SGD's: about lr per coordinate, not lr * g.
    let adam = two_vars();
    AdamW::new(
        &adam,
        OptimConfig {
            max_grad_norm: None,
            ..OptimConfig::new(lr)
        },
    )
    .unwrap()
    .step(&quad(&adam, 1.0))
    .unwrap();
    for (after, b) in values(&adam).iter().zip(&before) {
        assert!(((after - b).abs() - lr as f32).abs() < 1e-5);
    }
}

#[test]
fn selection_keeps_the_groups_above_the_quantile() {
    // Four groups of 2 with within-group variances 0.5, 0, 2, 0.125.
    let scores = [0.0, 1.0, 3.0, 3.0, -1.0, 1.0, 0.5, 0.0];
    let keep = |q| advantages::select_groups(&scores, 2, q).unwrap();
    assert_eq!(keep(0.5), [true, false, true, false]);
    assert_eq!(keep(0.0), [true; 4]);
    assert_eq!(keep(0.75), [false, false, true, false]);
    // ceil((1 - 0.3) 4) = 3: all but the flat group.
    assert_eq!(keep(0.3), [true, false, true, true]);
    // Ties keep the earlier group; at least one group survives.
    assert_eq!(
        advantages::select_groups(&[1.0, 1.0, 2.0, 2.0], 2, 0.9).unwrap(),
        [true, false]
    );
    assert!(advantages::select_groups(&scores, 2, 1.0).is_err());
    assert!(advantages::select_groups(&scores, 3, 0.5).is_err());
}

#[test]
fn sft_masks_the_prompt_trains_and_saves() {
    let dir = tempfile::tempdir().unwrap();
    let paths = toy(dir.path());
    let codec = ChatCodec::from_dir(&paths.llama).unwrap();
    let (p, r) = codec
        .exchange_ids("write two words about animals", "cat dog")
        .unwrap();
    assert_eq!(
        r,
        [codec.tokenizer.encode("cat dog").unwrap(), vec![codec.eos]].concat(),
        "response + EOS only"
    );
    assert_eq!(
        p,
        codec.prompt_ids("write two words about animals").unwrap()
    );

    let data: Vec<SftExample> = load_alpaca_sft(&paths.sft).unwrap();
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
        &Runtime::cpu(),
    )
    .unwrap();
    assert_eq!(report.losses.len(), 12);
    assert!(report.losses.iter().all(|l| l.is_finite()));
    let (first, last) = (report.losses[0], *report.losses.last().unwrap());
    assert!(last < first, "losses {:?}", report.losses);
    assert!(stage.is_complete());
    load_checkpoint(stage.path(), DType::F32, &Device::Cpu).unwrap();
    ChatCodec::from_dir(stage.path()).unwrap();
    // A complete stage returns its record without training again.
    assert_eq!(
        stages::run(
            Sft {
                init_dir: &paths.llama,
                data: &[],
                options: &o
            },
            &stage,
            &Runtime::cpu()
        )
        .unwrap(),
        report
    );
    // Micro-batching accumulates to the same first loss as whole batches.
    let whole = SftOptions {
        micro_batch_size: None,
        epochs: 1,
        ..o.clone()
    };
    let other = run.stage("sft-whole").unwrap();
    let w = stages::run(
        Sft {
            init_dir: &paths.llama,
            data: &data,
            options: &whole,
        },
        &other,
        &Runtime::cpu(),
    )
    .unwrap();
    assert!((w.losses[0] - report.losses[0]).abs() < 1e-5);
    assert!(stages::run(
        Sft {
            init_dir: &paths.llama,
            data: &data,
            options: &SftOptions { batch_size: 0, ..o }
        },
        &run.stage("bad").unwrap(),
        &Runtime::cpu()
    )
    .is_err());
}

#[test]
fn reward_model_trains_and_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let paths = toy(dir.path());
    let pairs = load_ultrafeedback(&paths.train_prefs).unwrap();
    let stage = RunDir::open(dir.path().join("run"))
        .unwrap()
        .stage("rms/rm-0")
        .unwrap();
    let o = RmTrainOptions {
        lr: 1e-3,
        batch_size: 4,
        micro_batch_size: Some(2),
        epochs: 3,
        ..Default::default()
    };
    let report = stages::run(
        RmTrain {
            name: "rm",
            sft_dir: &paths.llama,
            pairs: &pairs,
            options: &o,
        },
        &stage,
        &Runtime::cpu(),
    )
    .unwrap();
    assert_eq!(
        (report.losses.len(), report.accuracies.len(), report.pairs),
        (12, 12, 48)
    );
    assert!(report.losses.iter().all(|l| l.is_finite()) && (0.0..=1.0).contains(&report.accuracy));
    assert!(
        report.losses[8..].iter().sum::<f64>() < report.losses[..4].iter().sum::<f64>(),
        "{:?}",
        report.losses
    );
    let config = read_config_json(stage.path()).unwrap();
    assert_eq!(config["architectures"][0], "LlamaForSequenceClassification");
    assert_eq!(config["pad_token_id"], 0, "the toy <pad> id");
    let rm = load_reward_checkpoint(stage.path(), DType::F32, &Device::Cpu).unwrap();
    let scorer = RewardModelScorer {
        model: rm.model,
        codec: ChatCodec::from_dir(stage.path()).unwrap(),
        batch_size: 3,
        device: Device::Cpu,
    };
    let (ps, rs): (Vec<String>, Vec<String>) = pairs
        .iter()
        .take(5)
        .map(|p| (p.prompt.clone(), p.chosen.clone()))
        .unzip();
    let scores = scorer.score(&ps, &rs).unwrap();
    assert_eq!(scores.len(), 5);
    assert!(scores.iter().all(|s| s.is_finite()));
}

fn pg_options(algorithm: PgAlgorithm) -> PgConfig {
    PgConfig {
        algorithm,
        lr: 1e-3,
        batch_size: 8,
        max_new_tokens: 10,
        epochs: 2.0,
        checkpoint_every: 2,
        ..Default::default()
    }
}

/// The training seed of the policy-gradient tests.
const PG_SEED: u64 = 11;

/// Every tensor of two safetensors files, which must be equal.
fn same_weights(a: &Path, b: &Path) {
    let (x, y) = (
        candle_core::safetensors::load(a, &Device::Cpu).unwrap(),
        candle_core::safetensors::load(b, &Device::Cpu).unwrap(),
    );
    assert_eq!(x.len(), y.len());
    for (name, t) in &x {
        let d = (t - &y[name])
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0, "{name} differs by {d}");
    }
}

fn without_time(records: Vec<PgRecord>) -> Vec<PgRecord> {
    records
        .into_iter()
        .map(|r| PgRecord {
            seconds: 0.0,
            rollout_seconds: 0.0,
            ..r
        })
        .collect()
}

/// Records `(epoch, update)` at every epoch end.
#[derive(Default)]
struct EpochEnds(Vec<(u64, u64)>);

impl PgHooks for EpochEnds {
    fn epoch_end(
        &mut self,
        epoch: u64,
        _: &Model,
        record: &PgRecord,
    ) -> rmteach_experiments::Result<()> {
        self.0.push((epoch, record.update));
        Ok(())
    }
}

/// Runs the policy-gradient stage (seed [`PG_SEED`], stopped after `stop_after`
/// updates when given) from `init_dir` on `prompts`, trained on the toy ground truth,
/// in `stage`.
fn pg_on_gt(
    init_dir: &Path,
    prompts: &[String],
    (options, stop_after): (&PgConfig, Option<u64>),
    hooks: &mut dyn PgHooks,
    stage: &StageDir,
) -> rmteach_experiments::Result<PgOutcome> {
    let reward = GroundTruthReward(ToyReward::default());
    let pg = Pg {
        reward_name: "gt",
        init_dir,
        prompts,
        reward: &reward,
        options,
        seed: PG_SEED,
        stop_after,
        hooks,
    };
    stages::run(pg, stage, &Runtime::cpu())
}

#[test]
fn rloo_runs_and_resumes_exactly_after_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let paths = toy(dir.path());
    let prompts = prompts(&paths);
    let run = RunDir::open(dir.path().join("run")).unwrap();
    let o = pg_options(PgAlgorithm::Rloo);

    let whole = run.stage("pg/gt/seed0").unwrap();
    let mut epochs = EpochEnds::default();
    let outcome = pg_on_gt(&paths.llama, &prompts, (&o, None), &mut epochs, &whole).unwrap();
    assert_eq!(epochs.0, [(1, 2), (2, 4)], "epoch ends (epoch, update)");
    assert!(
        matches!(outcome, PgOutcome::Finished { updates: 4, .. }),
        "{outcome:?}"
    );
    let records: Vec<PgRecord> = MetricsLog::read_all(&whole.file("metrics.jsonl")).unwrap();
    assert_eq!(records.len(), 4);
    assert!(records
        .iter()
        .all(|r| r.loss.is_finite() && r.kl.is_finite() && r.grad_norm > 0.0));
    assert_eq!((records[3].optimizer_step, records[3].completions), (8, 32));

    // Stopped after update 3: the checkpoint holds update 2, the log has 3 records.
    let killed = run.stage("pg/gt/seed0-killed").unwrap();
    assert_eq!(
        pg_on_gt(&paths.llama, &prompts, (&o, Some(3)), &mut (), &killed).unwrap(),
        PgOutcome::Stopped(3)
    );
    assert_eq!(
        MetricsLog::read_all::<PgRecord>(&killed.file("metrics.jsonl"))
            .unwrap()
            .len(),
        3
    );
    assert!(killed.file("ckpt/update-00000002").is_dir());
    // Other options are refused; the same options resume and finish identically.
    let other = PgConfig {
        lr: 1e-4,
        ..o.clone()
    };
    assert!(pg_on_gt(&paths.llama, &prompts, (&other, None), &mut (), &killed).is_err());
    // A damaged checkpoint is refused with the way out (delete ckpt/ to start over).
    let weights = killed.file("ckpt/update-00000002/policy.safetensors");
    let intact = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &intact[..100]).unwrap();
    let e = pg_on_gt(&paths.llama, &prompts, (&o, None), &mut (), &killed)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("cannot resume") && e.contains("policy.safetensors") && e.contains("delete"),
        "{e}"
    );
    std::fs::write(&weights, &intact).unwrap();
    // A checkpoint written by the code before the config and the stage shared one
    // options type, and before the algorithm's TOML spelling (`"Rloo"`), resumes: its
    // options in that spelling, written out here.
    let latest = killed.file("ckpt/LATEST.json");
    let mut state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&latest).unwrap()).unwrap();
    state["state"]["options"] = serde_json::json!({
        "algorithm": "Rloo", "batch_size": 8, "beta": 0.05, "checkpoint_every": 2,
        "clip_range": 0.2, "epochs": 2.0, "grpo_kl": "rollout", "k": 2, "lr": 0.001,
        "max_grad_norm": 1.0, "max_new_tokens": 10, "micro_batch_size": null,
        "mini_batches": 2, "seed": PG_SEED, "temperature": 1.0
    });
    std::fs::write(&latest, serde_json::to_string_pretty(&state).unwrap()).unwrap();
    pg_on_gt(&paths.llama, &prompts, (&o, None), &mut epochs, &killed).unwrap();
    assert_eq!(
        epochs.0,
        [(1, 2), (2, 4), (2, 4)],
        "only epoch 2 ends after the resume"
    );
    let resumed: Vec<PgRecord> = MetricsLog::read_all(&killed.file("metrics.jsonl")).unwrap();
    assert_eq!(without_time(resumed), without_time(records));
    same_weights(
        &whole.file("policy/model.safetensors"),
        &killed.file("policy/model.safetensors"),
    );
}

#[test]
fn grpo_runs_and_bad_options_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let paths = toy(dir.path());
    let prompts = prompts(&paths);
    let run = RunDir::open(dir.path().join("run")).unwrap();
    let o = PgConfig {
        k: 4,
        epochs: 1.0,
        ..pg_options(PgAlgorithm::Grpo)
    };
    pg_on_gt(
        &paths.llama,
        &prompts,
        (&o, None),
        &mut (),
        &run.stage("grpo").unwrap(),
    )
    .unwrap();
    let records: Vec<PgRecord> =
        MetricsLog::read_all(&run.stage("grpo").unwrap().file("metrics.jsonl")).unwrap();
    assert_eq!(records.len(), 2);
    assert!(records
        .iter()
        .all(|r| r.loss.is_finite() && r.reward == r.score));
    assert!(records.iter().all(|r| r.kept_group_std.is_none()));
    // Prompt selection: the kept prompts' within-prompt std is at least the batch's.
    let selecting = PgConfig {
        select_quantile: Some(0.5),
        reward_scale: 2.0,
        ..o.clone()
    };
    pg_on_gt(
        &paths.llama,
        &prompts,
        (&selecting, None),
        &mut (),
        &run.stage("select").unwrap(),
    )
    .unwrap();
    let records: Vec<PgRecord> =
        MetricsLog::read_all(&run.stage("select").unwrap().file("metrics.jsonl")).unwrap();
    for r in &records {
        let (kept, all) = (
            r.kept_group_std.unwrap(),
            r.spread.unwrap().group_reward_std,
        );
        assert!(kept >= all - 1e-12 && r.loss.is_finite(), "{kept} vs {all}");
    }
    for bad in [
        PgConfig {
            select_quantile: Some(1.0),
            ..o.clone()
        },
        PgConfig {
            reward_scale: 0.0,
            ..o.clone()
        },
        PgConfig { k: 1, ..o.clone() },
        PgConfig {
            batch_size: 6,
            ..o.clone()
        },
        PgConfig {
            mini_batches: 3,
            ..o.clone()
        },
    ] {
        assert!(pg_on_gt(
            &paths.llama,
            &prompts,
            (&bad, None),
            &mut (),
            &run.stage("bad").unwrap()
        )
        .is_err());
    }
}

#[test]
fn evaluation_uses_the_shared_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let paths = toy(dir.path());
    let prompts = prompts(&paths);
    let ckpt = load_checkpoint(&paths.llama, DType::F32, &Device::Cpu).unwrap();
    let codec = ChatCodec::from_dir(&paths.llama).unwrap();
    let o = EvalOptions {
        samples_per_prompt: 4,
        max_new_tokens: 8,
        batch_size: 6,
        ..Default::default()
    };
    let samples = sample(&ckpt.model, &codec, &prompts, &o, &Device::Cpu).unwrap();
    assert_eq!(
        samples,
        sample(&ckpt.model, &codec, &prompts, &o, &Device::Cpu).unwrap(),
        "seeded"
    );
    assert_eq!(samples.responses.len(), 64);
    assert!(samples
        .response_ids
        .iter()
        .all(|r| !r.is_empty() && r.len() <= 8));

    let gt = GroundTruthReward(ToyReward::default());
    let raw: Vec<f64> = samples.score(&gt).unwrap().concat();
    let normalizer = Normalizer::fit(&raw).unwrap();
    let proxy = Normalized::new(GroundTruthReward(ToyReward::default()), normalizer);
    let gt_norm = Normalized::new(GroundTruthReward(ToyReward::default()), normalizer);
    let report = evaluate(
        &ckpt.model,
        Some(&ckpt.model),
        &codec,
        &prompts,
        &proxy,
        &gt_norm,
        &o,
        &Device::Cpu,
    )
    .unwrap();
    assert!(
        report.proxy.mean.abs() < 1e-9,
        "normalised on the same samples: {}",
        report.proxy.mean
    );
    assert_eq!(report.proxy.on_policy_accuracy, 1.0);
    assert_eq!(report.proxy, report.ground_truth);
    assert_eq!(report.kl, Some(0.0));
    // Scaling half the prompts by 0.001 keeps the accuracy and cuts their variance.
    let low = Normalized::new(GroundTruthReward(ToyReward::default()), normalizer)
        .with_scaled_prompts(0..8, 1e-3);
    let scaled = evaluate(
        &ckpt.model,
        None,
        &codec,
        &prompts,
        &low,
        &gt_norm,
        &o,
        &Device::Cpu,
    )
    .unwrap();
    assert_eq!(scaled.proxy.on_policy_accuracy, 1.0);
    assert!(scaled.proxy.variance < report.proxy.variance);
    assert!(sample(&ckpt.model, &codec, &[], &o, &Device::Cpu).is_err());
}

/// Per-step wall times on the default toy models (about 3M parameters): run with
/// `RAYON_NUM_THREADS=1 cargo test --test stages -- --ignored --nocapture`.
#[test]
#[ignore = "timing report, not a check"]
fn stage_timings_on_default_toy_models() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ToyWorldSpec {
        seed: 3,
        pretrain: 0,
        sft: 64,
        train_prefs: 64,
        test_prefs: 4,
        prompts: 8,
        ..Default::default()
    };
    let paths = write_toy_world(dir.path(), &spec).unwrap();
    let run = RunDir::open(dir.path().join("run")).unwrap();
    for (label, model_dir) in [("llama", &paths.llama), ("gpt-neox", &paths.gpt_neox)] {
        let config = Architecture::from_file(&model_dir.join("config.json")).unwrap();
        let varmap = VarMap::new();
        Model::new(
            &config,
            SeededVarMap::new(varmap.clone(), 7).var_builder(DType::F32, &Device::Cpu),
        )
        .unwrap();
        let params: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();
        save_checkpoint_with_json(
            model_dir,
            &read_config_json(model_dir).unwrap(),
            &varmap,
            &SaveOptions::default(),
        )
        .unwrap();
        let data = load_alpaca_sft(&paths.sft).unwrap();
        let sft = SftOptions {
            lr: 1e-4,
            batch_size: 32,
            ..Default::default()
        };
        let r = stages::run(
            Sft {
                init_dir: model_dir,
                data: &data,
                options: &sft,
            },
            &run.stage(&format!("{label}/sft")).unwrap(),
            &Runtime::cpu(),
        )
        .unwrap();
        println!(
            "{label} ({params} params): SFT {:.3} s/step (batch 32, {} steps)",
            r.seconds / r.losses.len() as f64,
            r.losses.len()
        );
        let pairs = load_ultrafeedback(&paths.train_prefs).unwrap();
        let rm = RmTrainOptions {
            lr: 1e-4,
            batch_size: 32,
            ..Default::default()
        };
        let r = stages::run(
            RmTrain {
                name: "rm",
                sft_dir: model_dir,
                pairs: &pairs,
                options: &rm,
            },
            &run.stage(&format!("{label}/rm")).unwrap(),
            &Runtime::cpu(),
        )
        .unwrap();
        println!(
            "{label}: RM {:.3} s/step (batch 32 pairs, {} steps)",
            r.seconds / r.losses.len() as f64,
            r.losses.len()
        );
        let prompts: Vec<String> = data.iter().map(|e| e.prompt.clone()).take(32).collect();
        for algorithm in [PgAlgorithm::Rloo, PgAlgorithm::Grpo] {
            let o = PgConfig {
                algorithm,
                lr: 1e-5,
                max_new_tokens: 16,
                epochs: 2.0,
                checkpoint_every: 100,
                ..Default::default()
            };
            let stage = run.stage(&format!("{label}/pg-{algorithm:?}")).unwrap();
            pg_on_gt(model_dir, &prompts, (&o, None), &mut (), &stage).unwrap();
            let recs: Vec<PgRecord> = MetricsLog::read_all(&stage.file("metrics.jsonl")).unwrap();
            let secs: Vec<String> = recs
                .iter()
                .map(|r| format!("{:.2} (rollout {:.2})", r.seconds, r.rollout_seconds))
                .collect();
            let len = recs.iter().map(|r| r.response_len).sum::<f64>() / recs.len() as f64;
            println!("{label}: {algorithm:?} s/update (32 completions, 2 mini-batches, mean response {len:.1} tokens): {secs:?}");
        }
        let ckpt = load_checkpoint(model_dir, DType::F32, &Device::Cpu).unwrap();
        let codec = ChatCodec::from_dir(model_dir).unwrap();
        let o = EvalOptions {
            max_new_tokens: 16,
            ..Default::default()
        };
        let gt = GroundTruthReward(ToyReward::default());
        let t = std::time::Instant::now();
        evaluate(
            &ckpt.model,
            Some(&ckpt.model),
            &codec,
            &prompts[..8],
            &gt,
            &gt,
            &o,
            &Device::Cpu,
        )
        .unwrap();
        println!(
            "{label}: evaluation of 8 prompts x 10 samples (16 tokens, KL included) {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Rec {
    step: u64,
    x: f64,
}

impl rmteach_experiments::rundir::Stepped for Rec {
    fn step(&self) -> u64 {
        self.step
    }
}

#[test]
fn metrics_log_resumes_at_the_checkpoint_and_stages_complete_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let run = RunDir::open(dir.path().join("run")).unwrap();
    let stage = run.stage("pg/x/seed0").unwrap();
    let path = stage.file("metrics.jsonl");
    let (mut log, kept) = MetricsLog::resume::<Rec>(&path, None).unwrap();
    assert!(kept.is_empty());
    for step in 1..=4 {
        log.append(&Rec {
            step,
            x: step as f64 / 2.0,
        })
        .unwrap();
    }
    drop(log);
    // A torn last line (a kill mid-write) and records past the checkpoint are dropped.
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"step\": 5, \"x\"");
    std::fs::write(&path, text).unwrap();
    let (mut log, kept) = MetricsLog::resume::<Rec>(&path, Some(2)).unwrap();
    assert_eq!(kept.iter().map(|r| r.step).collect::<Vec<_>>(), [1, 2]);
    log.append(&Rec { step: 3, x: 9.0 }).unwrap();
    let all: Vec<Rec> = MetricsLog::read_all(&path).unwrap();
    assert_eq!(all.last(), Some(&Rec { step: 3, x: 9.0 }));
    assert_eq!(all.len(), 3);

    assert!(!stage.is_complete());
    assert_eq!(stage.summary::<Rec>().unwrap(), None);
    stage.complete(&Rec { step: 3, x: 1.0 }).unwrap();
    assert!(stage.is_complete());
    assert_eq!(
        stage.summary::<Rec>().unwrap(),
        Some(Rec { step: 3, x: 1.0 })
    );
    std::fs::write(stage.file("DONE.json"), "{not json").unwrap();
    assert!(!stage.is_complete());
    assert!(
        stage.summary::<Rec>().is_err(),
        "a corrupt marker names its file"
    );
}

#[test]
fn the_normalize_stage_counts_every_sequence_it_announces() {
    use rmteach_experiments::data::PreferencePair;
    use rmteach_experiments::progress::{self, Reporter};
    use rmteach_experiments::stages::normalize::Normalize;
    use rmteach_experiments::stages::rewards::RewardFn;

    let dir = tempfile::tempdir().unwrap();
    let paths = toy(dir.path());
    let pairs: Vec<PreferencePair> = prompts(&paths)
        .into_iter()
        .take(5)
        .map(|prompt| PreferencePair {
            prompt,
            chosen: "a".into(),
            rejected: "b".into(),
            score_chosen: None,
            score_rejected: None,
        })
        .collect();
    let rewards = vec!["gt".to_string(), "gt-copy".to_string()];
    let load = |_: &str| -> rmteach_experiments::Result<Box<dyn RewardFn>> {
        Ok(Box::new(GroundTruthReward(ToyReward::default())))
    };
    let run = RunDir::open(dir.path().join("run")).unwrap();
    let reporter = Reporter::start("normalize");
    stages::run(
        Normalize {
            policy_dir: &paths.llama,
            pairs: &pairs,
            rewards: &rewards,
            load: &load,
            sampling: EvalOptions {
                samples_per_prompt: 3,
                max_new_tokens: 4,
                batch_size: 4,
                ..Default::default()
            },
        },
        &run.stage("normalize").unwrap(),
        &Runtime::cpu(),
    )
    .unwrap();
    // 5 prompts x 3 samples drawn, then scored by two rewards with both sides of the
    // 5 pairs: 15 + 2 x (15 + 10).
    assert_eq!(reporter.position(), (65, 65));
    progress::inc(); // an update is not this stage's unit
    assert_eq!(reporter.position(), (65, 65));
}
