//! The whole pipeline on a minimal toy world: it completes, a second invocation skips
//! every stage, and a run stopped after the reward models resumes and finishes with
//! the same results as an uninterrupted one.

use rmteach_experiments::pipeline::config::{Checked, LowVarianceOrder, SftSource};
use rmteach_experiments::pipeline::run::{run_with, EvalRecord};
use rmteach_experiments::pipeline::{run, RunConfig, RunOptions};
use rmteach_experiments::rundir::{read_json, MetricsLog};
use rmteach_experiments::stages::rm_eval::RmEvalTable;
use std::path::Path;

/// A handful of steps per stage: 2 RMs, the low-variance reward and the ground truth,
/// one seed, one epoch.
pub const TINY: &str = r#"
name = "tiny"
seed = 1

[world.toy]
seed = 2
sft = 16
train_prefs = 20
hidden_size = 16
num_hidden_layers = 1
num_attention_heads = 2
intermediate_size = 32
max_position_embeddings = 48

[sft]
lr = 1e-3
batch_size = 8

[prefdata]
max_new_tokens = 6

[rm]
mixes = [100, 0]
lr = 1e-3
batch_size = 8

[normalize]
prompts = 3
samples = 3
max_new_tokens = 6

[pg]
lr = 1e-3
batch = 4
epochs = 1.0
max_new_tokens = 6
seeds = [0]

[eval]
prompts = 2
samples = 2
max_new_tokens = 6
"#;

fn config() -> Checked<RunConfig> {
    RunConfig::from_toml_str(TINY, "tiny.toml").unwrap()
}

/// The tiny config changed by `edit`, validated again.
fn edited(edit: impl FnOnce(&mut RunConfig)) -> Checked<RunConfig> {
    let mut c = config().into_inner();
    edit(&mut c);
    c.validate("tiny.toml (edited)").unwrap()
}

const STAGES: [&str; 11] = [
    "world",
    "sft",
    "prefdata",
    "rms/rm-100",
    "rms/rm-0",
    "normalize",
    "rm_eval",
    "baseline",
    "pg/rm-100/seed0",
    "pg/rm-0/seed0",
    "pg/gt-low-variance/seed0",
];

fn eval_records(run: &Path, reward: &str) -> Vec<EvalRecord> {
    MetricsLog::read_all::<EvalRecord>(&run.join(format!("pg/{reward}/seed0/eval.jsonl")))
        .unwrap()
        .into_iter()
        .map(|r| EvalRecord { seconds: 0.0, ..r })
        .collect()
}

#[test]
fn tiny_run_completes_and_a_rerun_skips_every_stage() {
    let root = tempfile::tempdir().unwrap();
    let first = run(&config(), root.path()).unwrap();
    assert!(first.finished);
    let names: Vec<&str> = first.stages.iter().map(|s| s.stage.as_str()).collect();
    assert_eq!(names[..STAGES.len()], STAGES);
    assert_eq!(names.last(), Some(&"pg/gt/seed0"));
    assert!(first.stages.iter().all(|s| !s.skipped), "{first:?}");
    let dir = root.path().join("tiny");
    for s in &names {
        assert!(dir.join(s).join("DONE.json").is_file(), "{s} complete");
    }
    // Table 1 layout.
    let table: RmEvalTable = read_json(&dir.join("rm_eval/rm_eval.json")).unwrap();
    assert_eq!(table.columns, ["rm-100", "rm-0", "gt-low-variance", "gt"]);
    assert_eq!(table.rows.len(), 3);
    assert!(table
        .rows
        .iter()
        .all(|r| r.values.len() == 4 && r.values.iter().all(|v| v.is_finite())));
    let gt = &table.rewards["gt"];
    assert_eq!((gt.on_policy_accuracy, gt.off_policy_accuracy), (1.0, 1.0));
    let low = &table.rewards["gt-low-variance"];
    assert_eq!(low.on_policy_accuracy, 1.0);
    assert!(low.reward_variance <= gt.reward_variance);
    // Each Table 1 number is the mean of its per-prompt values, inside its interval.
    let pp = gt.per_prompt.as_ref().unwrap();
    let mean = pp.reward_variance.iter().sum::<f64>() / pp.reward_variance.len() as f64;
    assert!((mean - gt.reward_variance).abs() < 1e-12);
    let ci = gt.intervals.unwrap().reward_variance.unwrap();
    assert!(ci.lo <= gt.reward_variance && gt.reward_variance <= ci.hi);
    // The low-variance reward scales half the RLHF rows, chosen by index, as recorded.
    let lv = table.low_variance.as_ref().unwrap();
    assert_eq!((lv.scaled_count, lv.rlhf_prompts), (2, 4));
    assert_eq!(lv.scaled_fraction, 0.5);
    assert_eq!(lv.order, LowVarianceOrder::ScaleThenNormalize);
    assert_eq!(lv.reward_variance_by_order.len(), 2);
    assert_eq!(
        lv.reward_variance_by_order["scale_then_normalize"],
        low.reward_variance
    );
    // Epoch 0 (the initial policy) and epoch 1 evaluated; epoch 0 is the run's one
    // shared evaluation: the same ground truth for every reward.
    let evals = eval_records(&dir, "rm-100");
    assert_eq!(evals.iter().map(|r| r.epoch).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(evals[0].kl, 0.0);
    let other = eval_records(&dir, "rm-0");
    assert_eq!(evals[0].ground_truth, other[0].ground_truth);
    assert_eq!(evals[0].gt_per_prompt, other[0].gt_per_prompt);
    assert_eq!(evals[1].proxy_per_prompt.len(), 2);
    assert!(evals[1].kl.is_finite());
    assert!(dir.join("pg/gt/seed0/policy/model.safetensors").is_file());
    assert!(dir.join("summary.json").is_file());
    // The report: Table 1, Table 2, figures, report.md.
    for f in [
        "rm_eval/rm_eval.json",
        "report/report.md",
        "report/table1.md",
        "report/table2.md",
        "report/reward_increase_vs_epoch.png",
    ] {
        assert!(dir.join(f).is_file(), "{f} written");
    }
    let report = std::fs::read_to_string(dir.join("report/report.md")).unwrap();
    assert!(
        report.contains("## What this run shows") && report.contains("Proxy-reward increase"),
        "{report}"
    );
    let table1 = std::fs::read_to_string(dir.join("report/table1.md")).unwrap();
    assert!(
        table1.contains("rm-100") && table1.contains("On-Policy"),
        "{table1}"
    );

    // The report stage is marked complete last; a killed report's temporaries go.
    assert!(dir.join("report/DONE.json").is_file());
    let stale = dir.join("report/.table1.md.999.0.tmp");
    std::fs::write(&stale, "half").unwrap();

    let second = run(&config(), root.path()).unwrap();
    assert!(!stale.exists() && dir.join("report/DONE.json").is_file());
    // summary.json keeps the times of the call that ran each stage.
    let kept: rmteach_experiments::pipeline::run::RunSummary =
        read_json(&dir.join("summary.json")).unwrap();
    assert_eq!(kept.stages, first.stages);
    assert!(second.finished);
    assert_eq!(second.stages.len(), first.stages.len());
    assert!(second.stages.iter().all(|s| s.skipped), "{second:?}");
    assert!(second.table().contains("skipped"));

    // Another config in the same run directory is refused.
    let other = edited(|c| c.pg.lr = 5e-4);
    let e = run(&other, root.path()).unwrap_err().to_string();
    assert!(e.contains("different config"), "{e}");
    // ... naming the field that differs, both values and the way out.
    assert!(
        e.contains("`pg.lr`: 0.001 -> 0.0005") && e.contains("another `name`"),
        "{e}"
    );
}

#[test]
fn a_run_stopped_after_the_reward_models_resumes_and_finishes() {
    let root = tempfile::tempdir().unwrap();
    let stop = RunOptions {
        progress: false,
        stop_after: Some("rms".into()),
        ..RunOptions::default()
    };
    let partial = run_with(&config(), root.path(), &stop).unwrap();
    assert!(!partial.finished);
    assert_eq!(
        partial.stages.last().map(|s| s.stage.as_str()),
        Some("rms/rm-0")
    );
    let dir = root.path().join("tiny");
    assert!(dir.join("rms/rm-0/DONE.json").is_file());
    assert!(!dir.join("normalize/DONE.json").exists());

    let resumed = run(&config(), root.path()).unwrap();
    assert!(resumed.finished);
    for s in &resumed.stages {
        let before_rms = STAGES[..5].contains(&s.stage.as_str());
        assert_eq!(s.skipped, before_rms, "{}", s.stage);
    }
    // The same results as an uninterrupted run.
    let whole = tempfile::tempdir().unwrap();
    run(&config(), whole.path()).unwrap();
    let w = whole.path().join("tiny");
    let (a, b): (RmEvalTable, RmEvalTable) = (
        read_json(&dir.join("rm_eval/rm_eval.json")).unwrap(),
        read_json(&w.join("rm_eval/rm_eval.json")).unwrap(),
    );
    assert_eq!(a, b);
    for reward in ["rm-100", "gt"] {
        assert_eq!(eval_records(&dir, reward), eval_records(&w, reward));
    }
}

#[test]
fn a_run_killed_inside_policy_gradient_resumes_from_its_checkpoint() {
    // Three epochs of one update each: checkpoints at every epoch end.
    let c = edited(|c| {
        c.pg.epochs = 3.0;
        c.pg.rewards = Some(vec!["rm-0".into()]);
    });
    let root = tempfile::tempdir().unwrap();
    let kill = RunOptions {
        pg_stop_after: Some(2),
        ..RunOptions::default()
    };
    let partial = run_with(&c, root.path(), &kill).unwrap();
    assert!(!partial.finished);
    let dir = root.path().join("tiny");
    assert!(!dir.join("pg/rm-0/seed0/DONE.json").exists());
    let evals = eval_records(&dir, "rm-0");
    assert_eq!(evals.iter().map(|r| r.epoch).collect::<Vec<_>>(), [0, 1, 2]);

    let resumed = run(&c, root.path()).unwrap();
    assert!(resumed.finished);
    let ran: Vec<&str> = resumed
        .stages
        .iter()
        .filter(|s| !s.skipped)
        .map(|s| s.stage.as_str())
        .collect();
    assert_eq!(ran, ["pg/rm-0/seed0"]);
    let whole = tempfile::tempdir().unwrap();
    run(&c, whole.path()).unwrap();
    let resumed_evals = eval_records(&dir, "rm-0");
    assert_eq!(resumed_evals.len(), 4);
    assert_eq!(
        resumed_evals,
        eval_records(&whole.path().join("tiny"), "rm-0")
    );
}

#[test]
fn an_emptied_sft_set_names_the_file_and_the_filter() {
    let root = tempfile::tempdir().unwrap();
    let c = edited(|c| {
        c.sft.source = SftSource::RmSplitChosen;
        c.data.max_tokens = 1;
    });
    let e = run(&c, root.path()).unwrap_err().to_string();
    assert!(
        e.contains("sft: no training examples")
            && e.contains("train_prefs.jsonl")
            && e.contains("data.max_tokens = 1"),
        "{e}"
    );
    assert!(!root.path().join("tiny/sft/DONE.json").exists());
}
