//! Section 4.2 experiments: the file expands into one run per (policy, algorithm),
//! bad entries are named, and a tiny experiment over another run's reward models
//! finishes with a cross-policy report, reusing each policy's stages across algorithms.

use crate::pipeline_run::TINY;
use rmteach_experiments::pipeline::config::{Checked, SftSource};
use rmteach_experiments::pipeline::run::RunSummary;
use rmteach_experiments::pipeline::{
    is_experiment, parse_toml, run, run_experiment, ExperimentConfig, RunConfig, RunOptions,
};
use rmteach_experiments::rundir::read_json;
use rmteach_experiments::stages::rm_eval::RmEvalTable;
use rmteach_experiments::toy::SftStyle;
use std::path::Path;

fn parse(text: &str, runs: &Path) -> Result<Checked<ExperimentConfig>, String> {
    ExperimentConfig::from_toml_str(text, "exp.toml", Path::new("/cfg"), runs)
        .map_err(|e| e.to_string())
}

#[test]
fn the_toy_preset_expands_into_policy_by_algorithm_runs() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/toy-4.2.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(is_experiment(&parse_toml(&text, "toy-4.2.toml").unwrap()));
    assert!(!is_experiment(&parse_toml(TINY, "tiny.toml").unwrap()));
    let exp = ExperimentConfig::from_file(&path, Path::new("/runs")).unwrap();
    assert_eq!(exp.name, "toy-4.2");
    let names: Vec<&str> = exp.runs.iter().map(|r| r.config.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "topic-rloo",
            "length-rloo",
            "topic-beta0-rloo",
            "length-beta0-rloo"
        ]
    );
    assert_eq!(exp.algorithms(), ["rloo"]);
    let (topic, length) = (&exp.runs[0].config, &exp.runs[1].config);
    let style = |c: &RunConfig| c.world.toy.as_ref().unwrap().sft_style;
    assert_eq!(
        (style(topic), style(length)),
        (SftStyle::Topic, SftStyle::Length)
    );
    // Overrides merge into tables: the other [pg] fields stay the base's.
    let beta0 = &exp.runs[2].config;
    assert_eq!((beta0.pg.beta, beta0.pg.lr), (0.0, 1e-4));
    assert_eq!(topic.pg.beta, 0.05);
    assert!(topic.pg.seeds.len() >= 6 && topic.pg.algorithm.name() == "rloo");
    // Each policy's own RM, the other's, and the union: the experiment's own, so
    // relative to its directory (where its runs run), not to the runs root.
    let e = &length.rm.external[0];
    assert_eq!(e.name, "rm-topic");
    assert_eq!(
        (e.dir.as_deref(), e.from_run.as_deref()),
        (None, Some(Path::new("topic-rloo/rms/rm-100")))
    );
    assert_eq!(
        e.resolve(Path::new("/runs/toy-4.2")),
        Path::new("/runs/toy-4.2/topic-rloo/rms/rm-100")
    );
    assert_eq!(topic.rm.union_with, [Path::new("length-rloo")]);
    assert_eq!(
        exp.teachers,
        [
            ("topic".to_string(), "rm-topic".to_string()),
            ("length".into(), "rm-length".into()),
            ("topic-beta0".into(), "rm-topic".into()),
            ("length-beta0".into(), "rm-length".into())
        ]
    );
    assert_eq!(exp.contrasts.len(), 2);
    assert_eq!(topic.pg_rewards(), ["rm-topic", "rm-length", "rm-union"]);
}

#[test]
fn bad_experiments_are_named() {
    let runs = Path::new("/runs");
    let base = "name = \"e\"\n[world.toy]\n";
    let cases = [
        (base.to_string(), "policies"),
        (
            format!("{base}[[policies]]\narch = 1\n"),
            "policies[0].name",
        ),
        (
            format!("{base}[[policies]]\nname = \"a\"\n[[policies]]\nname = \"a\"\n"),
            "policies[1].name",
        ),
        (
            format!("algorithms = []\n{base}[[policies]]\nname = \"a\"\n"),
            "algorithms",
        ),
        (
            format!("algorithms = [\"ppo\"]\n{base}[[policies]]\nname = \"a\"\n"),
            "pg.algorithm",
        ),
        (
            format!("{base}[[policies]]\nname = \"a\"\nsft.epochz = 1\n"),
            "sft.epochz",
        ),
        (
            format!("{base}[[policies]]\nname = \"a\"\nteacher = 3\n"),
            "policies[0].teacher",
        ),
        (
            format!("contrasts = [\"a\"]\n{base}[[policies]]\nname = \"a\"\n"),
            "contrasts",
        ),
        (
            format!(
                "contrasts = [[\"a\", \"b\"]]\n{base}[[policies]]\nname = \"a\"\n\
                 teacher = \"rm-100\"\n[[policies]]\nname = \"b\"\n"
            ),
            "contrasts[0]",
        ),
        (
            format!("{base}[[policies]]\nname = \"a\"\nworld.toy.sft_style = \"odd\"\n"),
            "world.toy.sft_style",
        ),
        (
            format!("{base}[[policies]]\nname = \"a\"\nrm.union_with = [\"x\"]\nrm.mixes = [0]\n"),
            "rm.union_with",
        ),
    ];
    for (text, field) in cases {
        let e = parse(&text, runs).unwrap_err();
        assert!(e.contains(field) && e.contains("exp.toml"), "{field}: {e}");
    }
}

#[test]
fn experiment_and_policy_names_cannot_leave_the_runs_root() {
    let runs = Path::new("/runs");
    for bad in [
        "../escape",
        "/abs/path",
        "",
        ".",
        "..",
        "a/b",
        ".hidden",
        "a\\b",
    ] {
        let exp = format!("name = {bad:?}\n[world.toy]\n[[policies]]\nname = \"a\"\n");
        let e = parse(&exp, runs).unwrap_err();
        assert!(
            e.contains("exp.toml") && e.contains("`name`") && e.contains("--runs"),
            "experiment name {bad:?}: {e}"
        );
        let pol = format!("name = \"e\"\n[world.toy]\n[[policies]]\nname = {bad:?}\n");
        let e = parse(&pol, runs).unwrap_err();
        assert!(
            e.contains("exp.toml") && e.contains("policies[0].name"),
            "policy name {bad:?}: {e}"
        );
    }
    // A hand-built or edited experiment with a bad name is refused where it is
    // validated (the runner takes only validated experiments), naming the field.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("runs");
    let ok = parse(
        "name = \"e\"\n[world.toy]\n[[policies]]\nname = \"a\"\n",
        &root,
    )
    .unwrap();
    for bad in ["../escape", ""] {
        let exp = ExperimentConfig {
            name: bad.into(),
            ..ok.clone().into_inner()
        };
        let e = exp.validate("<hand-built>").unwrap_err().to_string();
        assert!(e.contains("<hand-built>") && e.contains("`name`"), "{e}");
    }
    assert!(!root.exists() && !tmp.path().join("escape").exists());
}

#[test]
fn external_reward_models_are_checked() {
    let base = "name = \"x\"\n[world.toy]\n[rm]\nmixes = []\n";
    let refused = |extra: &str, field: &str| {
        let e = RunConfig::from_toml_str(&format!("{base}{extra}"), "c.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains(field), "{field}: {e}");
    };
    // No reward model at all.
    refused("", "rm.mixes");
    refused(
        "[[rm.external]]\nname = \"gt\"\ndir = \"/m\"\n",
        "rm.external[0].name",
    );
    refused(
        "[[rm.external]]\nname = \"a b\"\ndir = \"/m\"\n",
        "rm.external[0].name",
    );
    refused(
        "[[rm.external]]\nname = \"a\"\ndir = \"/m\"\nfrom_run = \"r/m\"\n",
        "rm.external[0].dir",
    );
    refused("[[rm.external]]\nname = \"a\"\n", "rm.external[0].dir");
    refused(
        "[[rm.external]]\nname = \"a\"\ndir = \"/m\"\n[[rm.external]]\nname = \"a\"\ndir = \"/n\"\n",
        "rm.external[1].name",
    );
    let ok = RunConfig::from_toml_str(
        &format!("{base}[[rm.external]]\nname = \"a\"\ndir = \"m\"\n"),
        "c.toml",
    )
    .unwrap();
    assert_eq!(ok.reward_names(), ["a", "gt-low-variance", "gt"]);
}

/// Two policies x two algorithms over the reward models of the tiny 4.1 run.
fn tiny_42() -> String {
    // The tiny 4.1 config with its RMs replaced by the first run's (top-level keys
    // first, arrays of tables last).
    let base = TINY
        .replace(
            "name = \"tiny\"",
            "algorithms = [\"rloo\", \"grpo\"]\ncontrasts = [[\"llama\", \"neox\"]]\n\
             name = \"tiny-42\"",
        )
        .replace("mixes = [100, 0]", "mixes = []")
        .replace(
            "[pg]\n",
            "[pg]\nrewards = [\"rm-100@tiny\", \"rm-0@tiny\"]\n",
        );
    format!(
        "{base}\n[low_variance]\nenabled = false\n\n\
         [[rm.external]]\nname = \"rm-100@tiny\"\nfrom_run = \"tiny/rms/rm-100\"\n\n\
         [[rm.external]]\nname = \"rm-0@tiny\"\nfrom_run = \"tiny/rms/rm-0\"\n\n\
         [[policies]]\nname = \"llama\"\nteacher = \"rm-100@tiny\"\n\n\
         [[policies]]\nname = \"neox\"\nteacher = \"rm-0@tiny\"\nworld.toy.arch = \"gpt-neox\"\n"
    )
}

#[test]
fn a_tiny_experiment_over_another_runs_reward_models_reports_across_policies() {
    let root = tempfile::tempdir().unwrap();
    let exp = parse(&tiny_42(), root.path()).unwrap();
    // Before the 4.1 run exists, the missing reward model is named.
    let e = run_experiment(&exp, root.path(), &RunOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rm.external[0]") && e.contains("tiny/rms/rm-100"),
        "{e}"
    );
    // ... before anything was written.
    assert!(!root.path().join("tiny-42").exists());

    let first = run(
        &RunConfig::from_toml_str(TINY, "tiny.toml").unwrap(),
        root.path(),
    )
    .unwrap();
    assert!(first.finished);
    let summary = run_experiment(&exp, root.path(), &RunOptions::default()).unwrap();
    assert!(summary.finished);
    assert_eq!(summary.runs.len(), 4);
    let skipped = |s: &RunSummary, stage: &str| {
        s.stages
            .iter()
            .find(|t| t.stage == stage)
            .map(|t| t.skipped)
    };
    // The second algorithm of a policy starts from the first's finished stages.
    assert_eq!(skipped(&summary.runs[0], "sft"), Some(false));
    assert_eq!(skipped(&summary.runs[1], "sft"), Some(true));
    assert_eq!(skipped(&summary.runs[1], "rm_eval"), Some(true));
    assert_eq!(skipped(&summary.runs[1], "pg/rm-0@tiny/seed0"), Some(false));
    let dir = root.path().join("tiny-42");
    let table: RmEvalTable = read_json(&dir.join("neox-grpo/rm_eval/rm_eval.json")).unwrap();
    assert_eq!(table.columns, ["rm-100@tiny", "rm-0@tiny", "gt"]);
    assert!(table
        .rewards
        .values()
        .all(|e| e.reward_variance.is_finite()));
    for algorithm in ["rloo", "grpo"] {
        for f in ["report_policies.md", "table10_0.md", "table10_1.md"] {
            let path = dir.join("report").join(algorithm).join(f);
            assert!(path.is_file(), "{} written", path.display());
        }
    }
    let md = std::fs::read_to_string(dir.join("report/grpo/report_policies.md")).unwrap();
    assert!(md.contains("rm-0@tiny") && md.contains("neox-grpo"), "{md}");
    assert!(
        md.contains("## What these runs show") && md.contains("best teacher"),
        "{md}"
    );
    // The 2 x 2 of the two policies and their teachers, with the contrast.
    assert!(
        md.contains("### Interaction: policies llama-grpo, neox-grpo")
            && md.contains("Interaction contrast"),
        "{md}"
    );
    // A second invocation finds everything done.
    let again = run_experiment(&exp, root.path(), &RunOptions::default()).unwrap();
    assert!(again
        .runs
        .iter()
        .all(|s| s.stages.iter().all(|t| t.skipped)));
}

#[test]
fn sft_on_the_rm_split_takes_the_ground_truths_preferred_responses() {
    use rmteach_experiments::data::load_ultrafeedback;
    use rmteach_experiments::stages::prefdata::rm_split_chosen;
    use rmteach_experiments::stages::rewards::{GroundTruthReward, RewardFn};
    use rmteach_experiments::toy::{write_toy_world, GroundTruth, ToyReward, ToyWorldSpec};
    let root = tempfile::tempdir().unwrap();
    let spec = ToyWorldSpec {
        train_prefs: 40,
        ..ToyWorldSpec::default()
    };
    let paths = write_toy_world(root.path(), &spec).unwrap();
    let pairs = load_ultrafeedback(&paths.train_prefs).unwrap();
    let gt = GroundTruthReward(ToyReward::default());
    let sft = rm_split_chosen(pairs.clone(), &gt, 0.75, 3).unwrap();
    assert_eq!(sft.len(), 30, "the RM split's share of 40 pairs");
    let score = |p: &str, r: &str| ToyReward::default().score(p, r);
    for ex in &sft {
        // The pair it came from (prompts may repeat): the other response scores no higher.
        let pair = pairs
            .iter()
            .find(|p| {
                p.prompt == ex.prompt && (p.chosen == ex.response || p.rejected == ex.response)
            })
            .unwrap();
        let other = if pair.chosen == ex.response {
            &pair.rejected
        } else {
            &pair.chosen
        };
        assert!(score(&ex.prompt, &ex.response) >= score(&ex.prompt, other));
    }
    // Somewhere the dataset's order was wrong and the ground truth's wins.
    assert!(sft
        .iter()
        .any(|ex| pairs.iter().any(|p| p.prompt == ex.prompt
            && p.rejected == ex.response
            && score(&p.prompt, &p.rejected) > score(&p.prompt, &p.chosen))));
    assert!(gt
        .score(&[sft[0].prompt.clone()], &[sft[0].response.clone()])
        .is_ok());
    // Wired into a run: `sft.source` selects it (and bad values are named).
    let cfg = RunConfig::from_toml_str(
        &TINY.replace("[sft]\n", "[sft]\nsource = \"rm_split_chosen\"\n"),
        "t.toml",
    )
    .unwrap();
    let opts = RunOptions {
        stop_after: Some("sft".into()),
        ..RunOptions::default()
    };
    let s = rmteach_experiments::pipeline::run::run_with(&cfg, root.path(), &opts).unwrap();
    assert!(!s.finished && root.path().join("tiny/sft/DONE.json").is_file());
    let e = RunConfig::from_toml_str(
        &TINY.replace("[sft]\n", "[sft]\nsource = \"x\"\n"),
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("sft.source"), "{e}");
}

#[test]
fn the_paper_scale_experiment_presets_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let p42 = ExperimentConfig::from_file(&dir.join("paper-4.2.toml"), Path::new("runs")).unwrap();
    assert_eq!(p42.runs.len(), 6);
    let instruct = &p42.runs[4].config;
    assert_eq!(p42.runs[4].policy, "llama-3.2-1b-instruct");
    assert!(!instruct.sft.enabled);
    assert_eq!(p42.runs[0].config.sft.source, SftSource::RmSplitChosen);
    assert_eq!(instruct.rm.external.len(), 4);
    assert!(instruct
        .rm
        .external
        .iter()
        .all(|e| e.dir.as_ref().unwrap().starts_with(&dir)));
    assert_eq!(instruct.pg_rewards().len(), 4);
    assert_eq!(instruct.pg.epochs, 2.0);
    let app = ExperimentConfig::from_file(&dir.join("paper-4.1-appendix.toml"), Path::new("runs"))
        .unwrap();
    let names: Vec<&str> = app.runs.iter().map(|r| r.config.name.as_str()).collect();
    assert_eq!(
        names,
        ["pythia-1b-rm-split-sft-rloo", "other-ground-truth-rloo"]
    );
    let p = app.runs[0].config.world.paper.as_ref().unwrap();
    assert!(p.model.ends_with("pythia-1b") && p.model.starts_with(&dir));
    assert_eq!(app.runs[0].config.rm.mixes, [100, 75, 50, 25, 0]);
    let explore = dir.join("explore");
    for f in std::fs::read_dir(&explore).unwrap() {
        let path = f.unwrap().path();
        RunConfig::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

#[test]
fn a_tiny_run_in_bf16_finishes_with_finite_tables() {
    let root = tempfile::tempdir().unwrap();
    let text = TINY.replace("seed = 1\n", "seed = 1\ndtype = \"bf16\"\n");
    let cfg = RunConfig::from_toml_str(&text, "bf16.toml").unwrap();
    assert_eq!(cfg.dtype.dtype(), candle_core::DType::BF16);
    let s = run(&cfg, root.path()).unwrap();
    assert!(s.finished);
    let table: RmEvalTable = read_json(&root.path().join("tiny/rm_eval/rm_eval.json")).unwrap();
    assert!(table
        .rows
        .iter()
        .all(|r| r.values.iter().all(|v| v.is_finite())));
    assert!(root.path().join("tiny/report/report.md").is_file());
}

/// Copies directory `from` into `to` (created), recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn an_experiment_over_its_own_reward_models_can_be_moved_and_rerun() {
    // Two policies; the second trains with the first's RM (as toy 4.2 does).
    let text = TINY
        .replace("name = \"tiny\"", "algorithms = [\"rloo\"]\nname = \"own\"")
        .replace("[pg]\n", "[pg]\nrewards = [\"rm-100\", \"rm-100@llama\"]\n");
    let text = format!(
        "{text}\n[low_variance]\nenabled = false\n\n\
         [[rm.external]]\nname = \"rm-100@llama\"\nfrom_run = \"own/llama-rloo/rms/rm-100\"\n\n\
         [[policies]]\nname = \"llama\"\n\n\
         [[policies]]\nname = \"neox\"\nworld.toy.arch = \"gpt-neox\"\n"
    );
    let first = tempfile::tempdir().unwrap();
    let exp = parse(&text, first.path()).unwrap();
    assert!(
        run_experiment(&exp, first.path(), &RunOptions::default())
            .unwrap()
            .finished
    );
    let config = std::fs::read_to_string(first.path().join("own/neox-rloo/config.json")).unwrap();
    let old_root = first.path().display().to_string();
    assert!(!config.contains(&old_root), "{config}");

    let second = tempfile::tempdir().unwrap();
    copy_dir(&first.path().join("own"), &second.path().join("own"));
    drop(first);
    let exp = parse(&text, second.path()).unwrap();
    let again = run_experiment(&exp, second.path(), &RunOptions::default()).unwrap();
    assert!(again.finished);
    assert!(again
        .runs
        .iter()
        .all(|s| s.stages.iter().all(|t| t.skipped)));
}
