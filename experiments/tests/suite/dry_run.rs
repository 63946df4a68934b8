//! `exp run --dry-run`: the mapping of the paper configs to their dry runs, and the
//! stand-ins (models, tokenizers, parquet data) read back through the real loaders.

use candle_core::{DType, Device};
use rmteach_experiments::data::{filter_max_tokens, load_alpaca_sft, load_ultrafeedback};
use rmteach_experiments::hf::load_checkpoint;
use rmteach_experiments::models::Architecture;
use rmteach_experiments::pipeline::dry_run::{
    dry_run_config, real_size_dry_run_config, DryRunSpec, StandIn,
};
use rmteach_experiments::pipeline::{ExperimentConfig, RunConfig};
use rmteach_experiments::reward::{find_gating_position, load, ArmoRmConfig};
use rmteach_experiments::runtime::DTypeSpec;
use rmteach_experiments::text::TextTokenizer;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn configs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

#[test]
fn paper_4_1_maps_to_stand_ins_with_lengths_kept_and_counts_shrunk() {
    let file = configs().join("paper-4.1.toml");
    let c = RunConfig::from_file(&file).unwrap();
    let d = dry_run_config(&c, "paper-4.1.toml").unwrap();
    let spec = d.dry_run.as_ref().unwrap();
    assert_eq!(spec.policy, StandIn::Pythia);
    assert_eq!(spec.ground_truth, StandIn::Armorm);
    // Lengths, stages and rewards as configured.
    assert_eq!(d.data.max_tokens, 512);
    assert_eq!(d.pg.max_new_tokens, c.pg.max_new_tokens);
    assert_eq!(d.eval.max_new_tokens, c.eval.max_new_tokens);
    assert_eq!(d.reward_names(), c.reward_names());
    // Counts shrunk, on the CPU.
    assert_eq!(d.pg.seeds, vec![0]);
    assert!(d.pg.epochs <= 1.0 && d.normalize.prompts < c.normalize.prompts);
    assert_eq!(d.device.to_string(), "cpu");
    // The mapped config is valid and needs none of the paper's files.
    let d = d.validate("dry").unwrap();
    d.check_paths("dry", Path::new("/nonexistent")).unwrap();
    assert!(c.check_paths("real", Path::new("/nonexistent")).is_err());
}

#[test]
fn paper_4_2_stands_in_for_every_policy_and_public_reward_model() {
    let file = configs().join("paper-4.2.toml");
    let exp = ExperimentConfig::from_file(&file, Path::new("/nonexistent")).unwrap();
    let mut policies = BTreeMap::new();
    for r in &exp.runs {
        let d = dry_run_config(&r.config, "paper-4.2.toml").unwrap();
        d.check_paths("dry", Path::new("/nonexistent")).unwrap();
        let spec = d.dry_run.unwrap();
        policies.insert(r.policy.clone(), spec.policy);
        let external: Vec<(&str, StandIn)> = spec
            .external
            .iter()
            .map(|(n, s)| (n.as_str(), *s))
            .collect();
        assert_eq!(
            external,
            [
                ("grm-gemma2-2b", StandIn::GrmGemma2),
                ("grm-llama3.2-3b", StandIn::GrmLlama32),
                ("rm-gemma-2b", StandIn::RmGemma),
                ("tulu-2-8b-uf-mean-rm", StandIn::TuluLlama3),
            ]
        );
        assert_eq!(spec.ground_truth, StandIn::Armorm);
    }
    let expected = [
        ("llama-3.2-1b-instruct", StandIn::Llama32Instruct),
        ("llama-3.2-1b-sft", StandIn::Llama32),
        ("pythia-1b-sft", StandIn::Pythia),
    ];
    assert_eq!(
        policies.into_iter().collect::<Vec<_>>(),
        expected.map(|(p, s)| (p.to_string(), s))
    );
}

/// `--dry-run --real-sizes`: the same mapping with Pythia-1B's and Llama-3-8B's (ArmoRM)
/// published sizes kept and the run in bf16; the configs parse as the real loaders
/// read them (no weights are written here: 1B + 8B random parameters take minutes).
#[test]
fn real_size_dry_run_keeps_pythia_1b_and_llama_3_8b_dims() {
    let c = RunConfig::from_file(&configs().join("paper-4.1.toml")).unwrap();
    let d = real_size_dry_run_config(&c, "paper-4.1.toml").unwrap();
    let spec = d.dry_run.as_ref().unwrap();
    assert!(spec.real_sizes && d.dtype == DTypeSpec::Bf16);
    assert_eq!(
        (spec.policy, spec.ground_truth),
        (StandIn::Pythia, StandIn::Armorm)
    );
    assert_eq!(
        d.normalize.prompts,
        dry_run_config(&c, "x").unwrap().normalize.prompts
    );
    d.validate("dry").unwrap();
    let json = |s: StandIn, real: bool| {
        s.config_json(&s.family().tokenizer().unwrap(), real)
            .unwrap()
    };
    let dims = |v: &serde_json::Value, keys: &[&str]| -> Vec<u64> {
        keys.iter().map(|k| v[*k].as_u64().unwrap_or(0)).collect()
    };
    let keys = [
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "vocab_size",
    ];
    let pythia = json(StandIn::Pythia, true);
    assert_eq!(dims(&pythia, &keys), [2048, 16, 8, 8192, 50304]);
    assert_eq!(pythia["rotary_pct"], 0.25);
    assert_eq!(pythia["architectures"][0], "GPTNeoXForCausalLM");
    let arch = Architecture::from_json_str(&pythia.to_string(), "pythia config.json").unwrap();
    assert_eq!(arch.vocab_size(), 50304);
    let armorm = json(StandIn::Armorm, true);
    let keys_kv = [
        &keys[..],
        &["num_key_value_heads", "head_dim", "gating_hidden_dim"],
    ]
    .concat();
    assert_eq!(
        dims(&armorm, &keys_kv),
        [4096, 32, 32, 14336, 128256, 8, 128, 1024]
    );
    assert_eq!(armorm["tie_word_embeddings"], false);
    assert_eq!(armorm["architectures"][0], "LlamaForRewardModelWithGating");
    ArmoRmConfig::from_json_str(&armorm.to_string(), "armorm config.json").unwrap();
    // The shrunk stand-ins are unchanged.
    assert_eq!(json(StandIn::Pythia, false)["hidden_size"], 64);
    assert_eq!(json(StandIn::Armorm, false)["hidden_size"], 64);
}

#[test]
fn a_toy_config_has_no_dry_run() {
    let c = RunConfig::from_file(&configs().join("toy-4.1.toml")).unwrap();
    let e = dry_run_config(&c, "toy-4.1.toml").unwrap_err().to_string();
    assert!(e.contains("toy-4.1.toml") && e.contains("world"), "{e}");
}

/// Every stand-in loads through the real loaders, and its template renders its
/// family's markers (ArmoRM finds its gating pattern in a rendered exchange).
#[test]
fn stand_ins_load_through_the_real_loaders() {
    let tmp = tempfile::tempdir().unwrap();
    let all = [
        (StandIn::Pythia, "<|assistant|>"),
        (
            StandIn::Llama32,
            "<|start_header_id|>assistant<|end_header_id|>",
        ),
        (StandIn::Llama32Instruct, "Cutting Knowledge Date"),
        (
            StandIn::Armorm,
            "<|start_header_id|>assistant<|end_header_id|>",
        ),
        (
            StandIn::GrmLlama32,
            "<|start_header_id|>assistant<|end_header_id|>",
        ),
        (StandIn::GrmGemma2, "<start_of_turn>model"),
        (StandIn::TuluLlama3, "<|assistant|>\n"),
        (StandIn::RmGemma, "<start_of_turn>model"),
        (
            StandIn::LlamaRm,
            "<|start_header_id|>assistant<|end_header_id|>",
        ),
    ];
    for (i, (s, marker)) in all.into_iter().enumerate() {
        let dir = tmp.path().join(format!("m{i}"));
        s.write(&dir, 7, false, &Device::Cpu).unwrap();
        let mut tok = TextTokenizer::from_dir(&dir).unwrap();
        if s.is_reward() {
            load(&dir, DType::F32, &Device::Cpu).unwrap();
        } else {
            let ckpt = load_checkpoint(&dir, DType::F32, &Device::Cpu).unwrap();
            // Pythia has no template: the SFT stage installs the fallback, whose
            // tokens must be embedding rows the model has.
            tok.ensure_chat_template().unwrap();
            assert!(tok.vocab_size() <= ckpt.config.vocab_size(), "{s:?}");
        }
        let template = tok.chat_template().unwrap();
        let text = template.render_exchange("Hi there", "Hello.").unwrap();
        assert!(text.contains(marker), "{s:?}: {text:?}");
        if s == StandIn::Armorm {
            let config = ArmoRmConfig::from_file(&dir.join("config.json")).unwrap();
            let ids = tok.encode(&text).unwrap();
            assert!(find_gating_position(&ids, &config.gating_token_pattern).is_some());
        }
    }
}

/// The parquet files load through the real loaders; every 8th pair is over the
/// 512-token filter.
#[test]
fn stand_in_data_is_parquet_in_the_hugging_face_layouts() {
    let tmp = tempfile::tempdir().unwrap();
    let spec = DryRunSpec {
        policy: StandIn::Pythia,
        ground_truth: StandIn::LlamaRm,
        external: BTreeMap::new(),
        sft_examples: 5,
        train_prefs: 24,
        long_every: 8,
        real_sizes: false,
    };
    spec.write(tmp.path(), 3, 512, &Device::Cpu).unwrap();
    let p = spec.paths(tmp.path());
    assert_eq!(load_alpaca_sft(&p.sft_data).unwrap().len(), 5);
    let pairs = load_ultrafeedback(&p.train_prefs).unwrap();
    assert_eq!(pairs.len(), 24);
    assert!(pairs
        .iter()
        .all(|q| !q.prompt.is_empty() && !q.rejected.is_empty()));
    let tok = TextTokenizer::from_dir(&p.policy).unwrap();
    let filtered = filter_max_tokens(pairs, &tok, 512).unwrap();
    assert_eq!(filtered.dropped, 3);
}

/// The paper's code resizes the token embeddings to `len(tokenizer)` after adding the
/// fallback template's tokens: the Pythia stand-in (rows padded to a multiple of 128,
/// like Pythia's 50304) is cut to the tokenizer's rows, the cut model's logits are the
/// first rows of the full model's (same weights), and growing is refused.
#[test]
fn fine_tuning_cuts_padded_embedding_rows_to_the_tokenizer() {
    use rmteach_experiments::hf::load_checkpoint_cut;
    use rmteach_experiments::models::CausalLm;
    use rmteach_experiments::stages::batches::ChatCodec;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pythia");
    StandIn::Pythia.write(&dir, 7, false, &Device::Cpu).unwrap();
    let full = load_checkpoint(&dir, DType::F32, &Device::Cpu).unwrap();
    let padded = full.config.vocab_size();
    let (codec, cut) = ChatCodec::for_fine_tuning(&dir, padded).unwrap();
    let rows = codec.tokenizer.vocab_size();
    assert!(
        rows < padded,
        "the stand-in pads its rows: {rows} vs {padded}"
    );
    assert_eq!(cut, Some(rows));
    let (small, json) = load_checkpoint_cut(&dir, rows, DType::F32, &Device::Cpu).unwrap();
    assert_eq!(small.config.vocab_size(), rows);
    assert_eq!(json["vocab_size"].as_u64(), Some(rows as u64));
    let ids = codec.prompt_ids("Hi there").unwrap();
    let input = candle_core::Tensor::new(ids.as_slice(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let a = full.model.forward(&input, None).unwrap();
    let b = small.model.forward(&input, None).unwrap();
    assert_eq!(b.dims(), &[1, ids.len(), rows]);
    let a = a.narrow(2, 0, rows).unwrap();
    let diff = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
    let e = load_checkpoint_cut(&dir, padded + 1, DType::F32, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("vocab_size") && e.contains("config.json"), "{e}");
    // A tokenizer that already has a template adds nothing and cuts nothing.
    let llama = tmp.path().join("llama");
    StandIn::Llama32
        .write(&llama, 7, false, &Device::Cpu)
        .unwrap();
    let rows = load_checkpoint(&llama, DType::F32, &Device::Cpu)
        .unwrap()
        .config
        .vocab_size();
    assert_eq!(ChatCodec::for_fine_tuning(&llama, rows).unwrap().1, None);
}
