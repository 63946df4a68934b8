//! A `[world.paper]` run: the same pipeline on user-provided directories and files
//! (here a toy world laid out as a user would, with a sequence-classification reward
//! model as the ground truth), and its path errors.

use candle_core::{DType, Device};
use candle_nn::VarMap;
use rmteach_experiments::hf::{read_config_json, save_checkpoint_with_json, SaveOptions};
use rmteach_experiments::models::{Architecture, Model, SeededVarMap};
use rmteach_experiments::pipeline::{run, RunConfig};
use rmteach_experiments::records::RmEvalTable;
use rmteach_experiments::reward::new_reward_model;
use rmteach_experiments::rundir::read_json;
use rmteach_experiments::toy::{write_toy_world, ToyModelSize, ToyWorldSpec};
use std::path::Path;

/// A toy world with random policy weights and a random ground-truth RM under `root`.
fn user_files(root: &Path) {
    let spec = ToyWorldSpec {
        seed: 5,
        pretrain: 0,
        sft: 16,
        train_prefs: 20,
        test_prefs: 1,
        prompts: 1,
        model: ToyModelSize {
            hidden_size: 16,
            num_hidden_layers: 1,
            num_attention_heads: 2,
            intermediate_size: 32,
            max_position_embeddings: 48,
        },
        offpolicy_gap_permille: 0,
        sft_style: Default::default(),
    };
    let paths = write_toy_world(root, &spec).unwrap();
    let config = Architecture::from_file(&paths.llama.join("config.json")).unwrap();
    let json = read_config_json(&paths.llama).unwrap();
    let varmap = VarMap::new();
    Model::new(
        &config,
        SeededVarMap::new(varmap.clone(), 1).var_builder(DType::F32, &Device::Cpu),
    )
    .unwrap();
    save_checkpoint_with_json(&paths.llama, &json, &varmap, &SaveOptions::default()).unwrap();
    let varmap = VarMap::new();
    new_reward_model(&config, &varmap, 2, DType::F32, &Device::Cpu).unwrap();
    let mut rm_json = json;
    rm_json["architectures"] = serde_json::json!(["LlamaForSequenceClassification"]);
    rm_json["num_labels"] = serde_json::json!(1);
    let options = SaveOptions {
        extra_files: ["tokenizer.json", "tokenizer_config.json"]
            .map(|f| paths.llama.join(f))
            .to_vec(),
        ..Default::default()
    };
    save_checkpoint_with_json(&root.join("models/gt-rm"), &rm_json, &varmap, &options).unwrap();
}

const CONFIG: &str = r#"
name = "paper-tiny"
[world.paper]
model = "user/models/llama-toy"
sft_data = "user/data/sft.jsonl"
train_prefs = "user/data/train_prefs.jsonl"
ground_truth = "user/models/gt-rm"
[sft]
batch_size = 8
[prefdata]
max_new_tokens = 5
[rm]
mixes = [50]
batch_size = 8
[low_variance]
enabled = false
[normalize]
prompts = 2
samples = 2
max_new_tokens = 5
[pg]
batch = 4
epochs = 1.0
max_new_tokens = 5
seeds = [3]
[eval]
prompts = 2
samples = 2
max_new_tokens = 5
"#;

#[test]
fn paper_world_runs_on_local_files_and_missing_paths_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let config_file = dir.path().join("run.toml");
    std::fs::write(&config_file, CONFIG).unwrap();
    // Nothing there yet: the missing path is named.
    let config = RunConfig::from_file(&config_file).unwrap();
    let e = run(&config, &dir.path().join("runs"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("world.paper.model"), "{e}");

    user_files(&dir.path().join("user"));
    let summary = run(&config, &dir.path().join("runs")).unwrap();
    assert!(summary.finished);
    assert!(summary.stages.iter().all(|s| s.stage != "world"));
    let table: RmEvalTable = read_json(&summary.dir.join("rm_eval/rm_eval.json")).unwrap();
    assert_eq!(table.columns, ["rm-50", "gt"]);
    assert_eq!(table.rewards["gt"].off_policy_accuracy, 1.0);
    assert!(summary.dir.join("pg/gt/seed3/DONE.json").is_file());
}
