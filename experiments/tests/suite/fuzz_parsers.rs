//! Bounded fuzz campaigns on the parsers this crate owns: run-config and experiment
//! TOML, model / reward / ArmoRM `config.json`, `tokenizer_config.json`, safetensors
//! headers and shard indexes, and JSONL data rows (generic prompts and pairs,
//! UltraFeedback, AlpacaFarm). Mutated valid inputs must parse or fail with a
//! non-empty error; a panic fails the test and names the input
//! (`rmteach::fuzz::campaign`).

use candle_core::{DType, Device};
use candle_nn::{Init, VarMap};
use rmteach::fuzz::{campaign, FuzzStats};
use rmteach_experiments::data::{load_alpaca_sft, load_pairs, load_prompts, load_ultrafeedback};
use rmteach_experiments::hf::{checkpoint_files, load_into_varmap, tensor_names};
use rmteach_experiments::models::Architecture;
use rmteach_experiments::pipeline::config::RunConfig;
use rmteach_experiments::pipeline::experiment::ExperimentConfig;
use rmteach_experiments::reward::ArmoRmConfig;
use rmteach_experiments::text::TokenizerConfig;
use std::fmt::Display;
use std::path::Path;

/// Inputs per campaign: a few seconds in a debug build.
const ITERATIONS: usize = 3000;

fn fixture(rel: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs a campaign over `corpus` with `parse` (text in, result out); a panic or an
/// empty error message fails. Returns the statistics, which must show both outcomes.
fn fuzz_text<T, E: Display>(
    seed: u64,
    corpus: &[&str],
    parse: impl Fn(&str) -> Result<T, E>,
) -> FuzzStats {
    let bytes: Vec<&[u8]> = corpus.iter().map(|c| c.as_bytes()).collect();
    let stats = campaign(seed, &bytes, ITERATIONS, |input| {
        let text = String::from_utf8_lossy(input);
        match parse(&text) {
            Ok(_) => true,
            Err(e) => {
                assert!(!e.to_string().trim().is_empty(), "empty error for {text:?}");
                false
            }
        }
    })
    .unwrap_or_else(|f| panic!("{f}"));
    assert!(stats.accepted >= corpus.len(), "{stats:?}");
    assert!(stats.accepted < stats.inputs, "{stats:?}");
    stats
}

#[test]
fn run_config_and_experiment_toml_never_panic() {
    let runs = tempfile::tempdir().unwrap();
    let (a, b) = (
        fixture("configs/toy-4.1.toml"),
        fixture("configs/toy-4.2.toml"),
    );
    fuzz_text(1, &[&a], |t| RunConfig::from_toml_str(t, "fuzz.toml"));
    fuzz_text(2, &[&b], |t| {
        ExperimentConfig::from_toml_str(t, "fuzz.toml", Path::new("."), runs.path())
    });
    assert_eq!(
        std::fs::read_dir(runs.path()).unwrap().count(),
        0,
        "parsing a config wrote into the runs root"
    );
}

#[test]
fn model_reward_and_armorm_configs_never_panic() {
    let corpus: Vec<String> = [
        "llama",
        "gpt_neox",
        "gemma",
        "rm_gemma",
        "rm_gemma2",
        "rm_gpt_neox",
    ]
    .iter()
    .map(|d| fixture(&format!("tests/fixtures/{d}/config.json")))
    .collect();
    let refs: Vec<&str> = corpus.iter().map(String::as_str).collect();
    fuzz_text(4, &refs, |t| Architecture::from_json_str(t, "config.json"));
    let armo = r#"{"architectures": ["LlamaForRewardModelWithGating"], "model_type": "llama",
        "vocab_size": 32, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "num_objectives": 19,
        "gating_temperature": 10, "gating_hidden_dim": 8, "gating_n_hidden": 3}"#;
    fuzz_text(5, &[armo], |t| {
        ArmoRmConfig::from_json_str(t, "config.json")
    });
}

#[test]
fn tokenizer_config_never_panics() {
    let text = r#"{"bos_token": "<s>", "eos_token": {"content": "</s>", "special": true},
        "pad_token": null, "model_max_length": 512,
        "chat_template": [{"name": "default", "template": "{% for m in messages %}{{ m['content'] }}{% endfor %}"}],
        "added_tokens_decoder": {"0": {"content": "<s>", "special": true},
                                 "1": {"content": "</s>", "special": true}}}"#;
    fuzz_text(6, &[text], |t| {
        TokenizerConfig::from_json_str(t, "tokenizer_config.json")
    });
}

/// A safetensors file: the little-endian header length, the header, the data.
fn safetensors(header: &[u8], data_len: usize) -> Vec<u8> {
    let mut v = (header.len() as u64).to_le_bytes().to_vec();
    v.extend_from_slice(header);
    v.extend(std::iter::repeat_n(0u8, data_len));
    v
}

#[test]
fn safetensors_headers_and_indexes_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("model.safetensors");
    let header = br#"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}}"#;
    let varmap = VarMap::new();
    varmap
        .get((2, 2), "w", Init::Const(0.0), DType::F32, &Device::Cpu)
        .unwrap();
    let files = [file.clone()];
    // The header mutated, its length prefix kept right: the JSON and the tensor table.
    let stats = campaign(7, &[header.as_slice()], ITERATIONS, |h| {
        std::fs::write(&file, safetensors(h, 24)).unwrap();
        let names = tensor_names(&files).is_ok();
        let _ = load_into_varmap(&varmap, &files);
        names
    })
    .unwrap_or_else(|f| panic!("{f}"));
    assert!(
        stats.accepted > 0 && stats.accepted < stats.inputs,
        "{stats:?}"
    );
    // The whole file mutated: the length prefix and the data too.
    let whole = safetensors(header, 24);
    campaign(8, &[whole.as_slice()], ITERATIONS, |bytes| {
        std::fs::write(&file, bytes).unwrap();
        let _ = load_into_varmap(&varmap, &files);
        tensor_names(&files).is_ok()
    })
    .unwrap_or_else(|f| panic!("{f}"));
    std::fs::remove_file(&file).unwrap();
    // The shard index of a sharded checkpoint.
    let index = r#"{"metadata": {"total_size": 24}, "weight_map": {"w": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#;
    let path = dir.path().join("model.safetensors.index.json");
    fuzz_text(9, &[index], |t| {
        std::fs::write(&path, t).unwrap();
        let files = checkpoint_files(dir.path())?;
        assert!(
            files.iter().all(|f| f.parent() == Some(dir.path())),
            "a shard outside the checkpoint directory: {files:?}"
        );
        Ok::<_, rmteach_experiments::Error>(files)
    });
}

#[test]
fn jsonl_data_rows_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.jsonl");
    let load = |t: &str| {
        std::fs::write(&path, t).unwrap();
        path.as_path()
    };
    let prompts = "{\"prompt\": \"What is 2+2?\"}\n{\"prompt\": \"Name a colour.\", \"id\": 3}\n";
    fuzz_text(10, &[prompts], |t| load_prompts(load(t)));
    let pairs = "{\"prompt\": \"p\", \"chosen\": [{\"role\": \"user\", \"content\": \"p\"}, {\"role\": \"assistant\", \"content\": \"c\"}], \"rejected\": \"r\", \"score_chosen\": 8.5, \"score_rejected\": 2}\n";
    fuzz_text(11, &[pairs], |t| load_pairs(load(t)));
    fuzz_text(12, &[pairs], |t| load_ultrafeedback(load(t)));
    let alpaca = "{\"instruction\": \"A\", \"input\": \"B\", \"output\": \"C\"}\n{\"instruction\": \"D\", \"input\": \"\", \"output\": \"E\"}\n";
    fuzz_text(13, &[alpaca], |t| load_alpaca_sft(load(t)));
}
