//! `TextTokenizer`: loading `tokenizer.json` + `tokenizer_config.json` (special tokens
//! in their several spellings), byte-level prefix-space round trips, special tokens,
//! and saving in a form that loads again unchanged.

use rmteach_experiments::text::{TextError, TextTokenizer, TokenizerConfig};
use serde_json::json;
use std::path::Path;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

/// A byte-level BPE tokenizer without merges (one token per byte), with
/// `add_prefix_space` as given and `<|endoftext|>` as its special token.
fn byte_level_tokenizer(add_prefix_space: bool) -> Tokenizer {
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort_unstable();
    assert_eq!(alphabet.len(), 256);
    let vocab: [(String, u32); 256] = std::array::from_fn(|i| (alphabet[i].to_string(), i as u32));
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, vec![])
        .build()
        .unwrap();
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(
        ByteLevel::default().add_prefix_space(add_prefix_space),
    ));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer
        .add_special_tokens([AddedToken::from("<|endoftext|>", true)])
        .unwrap();
    tokenizer
}

/// Writes `tokenizer.json` and a config whose special tokens use the object spelling.
fn write_dir(dir: &Path, add_prefix_space: bool) {
    byte_level_tokenizer(add_prefix_space)
        .save(dir.join("tokenizer.json"), false)
        .unwrap();
    let config = json!({
        "bos_token": {"__type": "AddedToken", "content": "<|endoftext|>", "lstrip": false,
                      "normalized": true, "rstrip": false, "single_word": false},
        "eos_token": "<|endoftext|>",
        "pad_token": null,
        "unk_token": {"content": "<|endoftext|>"},
        "added_tokens_decoder": {
            "256": {"content": "<|endoftext|>", "special": true, "lstrip": false,
                    "normalized": false, "rstrip": false, "single_word": false}
        },
        "model_max_length": 2048,
        "tokenizer_class": "GPTNeoXTokenizer"
    });
    std::fs::write(dir.join("tokenizer_config.json"), config.to_string()).unwrap();
}

#[test]
fn loads_special_tokens_in_every_spelling() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), false);
    let tok = TextTokenizer::from_dir(dir.path()).unwrap();
    let cfg = tok.config();
    assert_eq!(cfg.bos_token.as_deref(), Some("<|endoftext|>"));
    assert_eq!(cfg.eos_token.as_deref(), Some("<|endoftext|>"));
    assert_eq!(cfg.unk_token.as_deref(), Some("<|endoftext|>"));
    assert_eq!(cfg.pad_token, None);
    assert_eq!(tok.eos_token_id(), Some(256));
    assert_eq!(tok.bos_token_id(), Some(256));
    assert_eq!(tok.pad_token_id(), None);
    assert_eq!(tok.vocab_size(), 257);
    assert_eq!(tok.token_to_id("<|endoftext|>"), Some(256));
    assert_eq!(tok.id_to_token(256).as_deref(), Some("<|endoftext|>"));
    assert_eq!(cfg.extra["model_max_length"], json!(2048));
}

#[test]
fn encode_adds_no_special_tokens_and_decode_can_skip_them() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), false);
    let tok = TextTokenizer::from_dir(dir.path()).unwrap();
    let ids = tok.encode("hi<|endoftext|>").unwrap();
    assert_eq!(ids.len(), 3, "h, i, and the special token as one id");
    assert_eq!(ids[2], 256);
    assert_eq!(tok.decode(&ids, false).unwrap(), "hi<|endoftext|>");
    assert_eq!(tok.decode(&ids, true).unwrap(), "hi");
    assert_eq!(tok.count_tokens("héllo").unwrap(), 6, "é is two bytes");
}

#[test]
fn prefix_space_is_reported_and_can_be_disabled_for_exact_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), true);
    let mut tok = TextTokenizer::from_dir(dir.path()).unwrap();
    assert!(tok.adds_prefix_space());
    let text = "Hello wörld ✓ 世界";
    let ids = tok.encode(text).unwrap();
    // The file's setting is kept (as transformers would): a space is prepended.
    assert_eq!(tok.decode(&ids, false).unwrap(), format!(" {text}"));

    assert!(tok.disable_prefix_space().unwrap());
    assert!(!tok.adds_prefix_space());
    assert!(
        !tok.disable_prefix_space().unwrap(),
        "second call changes nothing"
    );
    for s in [text, " leading space", "a\nb\tc", ""] {
        let ids = tok.encode(s).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), s);
    }
    // Saved that way, it loads that way.
    let out = tempfile::tempdir().unwrap();
    tok.save(out.path()).unwrap();
    let back = TextTokenizer::from_dir(out.path()).unwrap();
    assert!(!back.adds_prefix_space());
    assert_eq!(
        back.decode(&back.encode(text).unwrap(), false).unwrap(),
        text
    );
}

#[test]
fn save_and_load_round_trip_keeps_tokens_config_and_unknown_fields() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), false);
    let mut tok = TextTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(
        tok.add_special_tokens(&["<sep>", "<|endoftext|>"]).unwrap(),
        1
    );
    tok.config_mut().pad_token = Some("<sep>".into());
    let out = tempfile::tempdir().unwrap();
    tok.save(out.path()).unwrap();

    let back = TextTokenizer::from_dir(out.path()).unwrap();
    assert_eq!(back.vocab_size(), 258);
    assert_eq!(back.pad_token_id(), Some(257));
    assert_eq!(back.config().extra["model_max_length"], json!(2048));
    assert_eq!(
        back.config().extra["tokenizer_class"],
        json!("GPTNeoXTokenizer")
    );
    assert_eq!(back.config().added_tokens_decoder.len(), 2);
    assert!(back.config().added_tokens_decoder[&257].special);
    let text = "a<sep>b";
    assert_eq!(back.encode(text).unwrap(), tok.encode(text).unwrap());

    // The saved config uses transformers' spelling: plain strings, string-keyed ids.
    let raw: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(raw["pad_token"], json!("<sep>"));
    assert_eq!(
        raw["added_tokens_decoder"]["257"]["content"],
        json!("<sep>")
    );
}

#[test]
fn config_without_tokenizer_config_file_loads_with_defaults() {
    let dir = tempfile::tempdir().unwrap();
    byte_level_tokenizer(false)
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    let tok = TextTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.eos_token_id(), None);
    assert!(matches!(
        tok.require_eos_token_id(),
        Err(TextError::Config { .. })
    ));
    assert!(matches!(
        tok.chat_template(),
        Err(TextError::NoChatTemplate(_))
    ));
}

#[test]
fn added_tokens_missing_from_tokenizer_json_are_added() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), false);
    let config = json!({
        "eos_token": "<|im_end|>",
        "added_tokens_decoder": {"257": {"content": "<|im_end|>", "special": true}}
    });
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let tok = TextTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(tok.eos_token_id(), Some(257));
    let mut ids = tok.encode("h").unwrap();
    ids.push(257);
    assert_eq!(tok.decode(&ids, true).unwrap(), "h");
    assert_eq!(tok.decode(&ids, false).unwrap(), "h<|im_end|>");
}

#[test]
fn malformed_files_are_errors_naming_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), false);
    let cases = [
        (json!({"eos_token": 5}), "eos_token"),
        (json!({"eos_token": {"lstrip": false}}), "eos_token"),
        (json!({"chat_template": 3}), "chat_template"),
        (
            json!({"chat_template": [{"name": "default"}]}),
            "chat_template[0]",
        ),
        (
            json!({"added_tokens_decoder": {"x": {"content": "a"}}}),
            "added_tokens_decoder.x",
        ),
        (
            json!({"added_tokens_decoder": {"300": {"content": "<|endoftext|>"}}}),
            "added_tokens_decoder.300",
        ),
    ];
    for (config, field) in cases {
        std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
        let err = TextTokenizer::from_dir(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("tokenizer_config.json"), "{msg}");
        assert!(msg.contains(&format!("`{field}`")), "{field}: {msg}");
    }
    std::fs::write(dir.path().join("tokenizer.json"), "{not json").unwrap();
    let err = TextTokenizer::from_dir(dir.path()).unwrap_err();
    assert!(matches!(err, TextError::Tokenizer { .. }), "{err}");
    let missing = TextTokenizer::from_dir(&dir.path().join("nope")).unwrap_err();
    assert!(matches!(missing, TextError::Io { .. }), "{missing}");
}

#[test]
fn chat_template_list_picks_default_or_named() {
    let config = TokenizerConfig::from_json_str(
        r#"{"chat_template": [{"name": "default", "template": "D"},
                              {"name": "tool_use", "template": "T"}]}"#,
        "cfg",
    )
    .unwrap();
    assert_eq!(config.chat_template(None), Some("D"));
    assert_eq!(config.chat_template(Some("tool_use")), Some("T"));
    assert_eq!(config.chat_template(Some("rag")), None);
    // Saved back as a list, since there are several.
    assert!(config.to_json()["chat_template"].is_array());
    let single = TokenizerConfig::from_json_str(r#"{"chat_template": "S"}"#, "cfg").unwrap();
    assert_eq!(single.to_json()["chat_template"], json!("S"));
}

#[test]
fn a_vocabulary_with_gaps_is_explained_not_blamed_on_the_config() {
    // tokenizer.json's vocabulary misses id 100, so the tokenizers library renumbers
    // the added token that both files put at 256. The error must say so (the file, the
    // token, the declared and the loaded id, the missing id), not that the two files
    // disagree.
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), false);
    let path = dir.path().join("tokenizer.json");
    let mut raw: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let vocab = raw["model"]["vocab"].as_object_mut().unwrap();
    let gap = vocab
        .iter()
        .find(|(_, id)| id.as_u64() == Some(100))
        .map(|(t, _)| t.clone())
        .unwrap();
    vocab.remove(&gap);
    std::fs::write(&path, raw.to_string()).unwrap();
    let msg = TextTokenizer::from_dir(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("tokenizer.json"), "{msg}");
    assert!(msg.contains("`added_tokens[0]`"), "{msg}");
    assert!(msg.contains("declares id 256"), "{msg}");
    assert!(
        msg.contains("not contiguous") && msg.contains("100"),
        "{msg}"
    );
    assert!(!msg.contains("make the two files agree"), "{msg}");
}

#[test]
fn a_broken_chat_template_names_its_file_and_line_not_a_missing_template() {
    let dir = tempfile::tempdir().unwrap();
    write_dir(dir.path(), false);
    let config = json!({
        "eos_token": "<|endoftext|>",
        "chat_template": "{% for m in messages %}\n{{ m['content'] }\n{% endfor %}"
    });
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let tok = TextTokenizer::from_dir(dir.path()).unwrap();
    let err = tok.chat_template().unwrap_err();
    assert!(!matches!(err, TextError::NoChatTemplate(_)), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("tokenizer_config.json"), "{msg}");
    assert!(msg.contains("`chat_template`"), "{msg}");
    assert!(msg.contains(":2"), "no line 2 in: {msg}");
    // The same template from chat_template.jinja names that file.
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        json!({"eos_token": "<|endoftext|>"}).to_string(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "{% for m in messages %}\n{{ m['content'] }\n{% endfor %}",
    )
    .unwrap();
    let msg = TextTokenizer::from_dir(dir.path())
        .unwrap()
        .chat_template()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("chat_template.jinja"), "{msg}");
}
