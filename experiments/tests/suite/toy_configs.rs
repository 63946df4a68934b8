//! The toy models' `config.json`s parse with the crate's config parser, name the toy
//! tokenizer's ids, and have 1-10M parameters.

use rmteach_experiments::models::Architecture;
use rmteach_experiments::toy::{
    gpt_neox_config, llama_config, toy_tokenizer, write_toy_world, ToyModelSize, ToyTokenIds,
    ToyWorldSpec,
};

fn ids() -> ToyTokenIds {
    let tok = toy_tokenizer().unwrap();
    ToyTokenIds {
        vocab_size: tok.vocab_size(),
        eos: tok.eos_token_id().unwrap(),
        pad: tok.pad_token_id().unwrap(),
    }
}

/// Parameter count of a parsed config (weights and biases, untied unless tied).
fn parameters(config: &Architecture) -> usize {
    match config {
        Architecture::GptNeox(c) => {
            let (v, h, m) = (c.vocab_size, c.hidden_size, c.intermediate_size);
            let block = 4 * h + (3 * h * h + 3 * h) + (h * h + h) + (h * m + m) + (m * h + h);
            2 * v * h + c.num_hidden_layers * block + 2 * h
        }
        Architecture::Llama(c) => {
            let (v, h, m) = (c.vocab_size, c.hidden_size, c.intermediate_size);
            let q = c.num_attention_heads * c.head_dim;
            let kv = c.num_key_value_heads * c.head_dim;
            let block = 2 * h + h * q + 2 * h * kv + q * h + 3 * h * m;
            let head = if c.tie_word_embeddings { 0 } else { v * h };
            v * h + head + c.num_hidden_layers * block + h
        }
        other => panic!(
            "toy worlds use GPT-NeoX or Llama, not {}",
            other.model_type()
        ),
    }
}

#[test]
fn toy_configs_parse_and_are_small() {
    let ids = ids();
    let size = ToyModelSize::default();
    let neox =
        Architecture::from_json_str(&gpt_neox_config(&size, &ids).to_string(), "neox").unwrap();
    let llama =
        Architecture::from_json_str(&llama_config(&size, &ids).to_string(), "llama").unwrap();
    for config in [&neox, &llama] {
        assert_eq!(config.vocab_size(), ids.vocab_size);
        let n = parameters(config);
        assert!((1_000_000..=10_000_000).contains(&n), "{n} parameters");
    }
    let Architecture::GptNeox(c) = &neox else {
        panic!("expected gpt_neox")
    };
    assert_eq!(c.rotary_dims(), 16);
    let Architecture::Llama(c) = &llama else {
        panic!("expected llama")
    };
    assert_eq!((c.num_key_value_heads, c.head_dim), (2, 64));
}

#[test]
fn toy_world_model_dirs_parse_from_disk() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ToyWorldSpec {
        pretrain: 1,
        sft: 1,
        train_prefs: 1,
        test_prefs: 1,
        prompts: 1,
        ..ToyWorldSpec::default()
    };
    let paths = write_toy_world(dir.path(), &spec).unwrap();
    for model_dir in [&paths.gpt_neox, &paths.llama] {
        let config = Architecture::from_file(&model_dir.join("config.json")).unwrap();
        assert_eq!(config.vocab_size(), ids().vocab_size);
    }
}
