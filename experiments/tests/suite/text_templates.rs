//! Chat templates: Llama-3, Zephyr and ChatML templates as instruct models ship them,
//! `raise_exception`, Python string methods, and the paper's fallback template.

use rmteach_experiments::text::{
    ChatTemplate, Message, TextError, TextTokenizer, TokenizerConfig, FALLBACK_TEMPLATE,
};
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::{AddedToken, Tokenizer};

/// Meta-Llama-3-8B-Instruct's template.
const LLAMA3: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}\
{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}\
{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}\
{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// Zephyr's template (multi-line: relies on trim_blocks and lstrip_blocks).
const ZEPHYR: &str = "{% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>\n' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>\n' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>\n'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %}";

/// A ChatML template using Python string methods and `raise_exception`.
const CHATML: &str = "{% if messages[0]['role'].startswith('sys') %}{{ raise_exception('System role not supported') }}{% endif %}\
{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'].strip() + '<|im_end|>\n' }}{% endfor %}\
{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

fn config(bos: Option<&str>, eos: &str) -> TokenizerConfig {
    TokenizerConfig {
        bos_token: bos.map(String::from),
        eos_token: Some(eos.into()),
        ..TokenizerConfig::default()
    }
}

#[test]
fn llama3_template_renders_like_transformers() {
    let t = ChatTemplate::new(LLAMA3, &config(Some("<|begin_of_text|>"), "<|eot_id|>")).unwrap();
    let chat = [Message::user("  Hi there \n"), Message::assistant("Hello!")];
    assert_eq!(
        t.render(&chat, false).unwrap(),
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
    );
    assert_eq!(
        t.render_prompt("Hi").unwrap(),
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>\
         <|start_header_id|>assistant<|end_header_id|>\n\n"
    );
}

#[test]
fn zephyr_template_uses_trim_and_lstrip_blocks() {
    let t = ChatTemplate::new(ZEPHYR, &config(Some("<s>"), "</s>")).unwrap();
    let chat = [Message::new("system", "Be brief."), Message::user("Hi")];
    assert_eq!(
        t.render(&chat, true).unwrap(),
        "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\n"
    );
    assert_eq!(
        t.render_exchange("Hi", "Hello").unwrap(),
        "<|user|>\nHi</s>\n<|assistant|>\nHello</s>\n"
    );
}

#[test]
fn chatml_template_has_python_methods_and_raise_exception() {
    let t = ChatTemplate::new(CHATML, &config(None, "<|im_end|>")).unwrap();
    assert_eq!(
        t.render_prompt("  Hi  ").unwrap(),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let err = t
        .render(&[Message::new("system", "x"), Message::user("Hi")], true)
        .unwrap_err();
    assert!(matches!(err, TextError::Template(_)));
    assert!(
        err.to_string().contains("System role not supported"),
        "{err}"
    );
}

#[test]
fn broken_template_is_an_error_not_a_panic() {
    let err = ChatTemplate::new("{% for m in messages %}", &config(None, "</s>")).unwrap_err();
    assert!(matches!(err, TextError::Template(_)), "{err}");
}

/// A word-level tokenizer with `</s>` and no chat template.
fn plain_tokenizer() -> TextTokenizer {
    let vocab = ["<unk>", "</s>", "hello", "there", "hi"];
    let model = WordLevel::builder()
        .vocab(
            vocab
                .iter()
                .enumerate()
                .map(|(i, w)| (w.to_string(), i as u32))
                .collect(),
        )
        .unk_token("<unk>".into())
        .build()
        .unwrap();
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(WhitespaceSplit));
    tokenizer
        .add_special_tokens([AddedToken::from("</s>", true)])
        .unwrap();
    TextTokenizer::from_parts(tokenizer, config(None, "</s>"), "test").unwrap()
}

#[test]
fn fallback_template_adds_two_special_tokens_once_and_survives_saving() {
    let mut tok = plain_tokenizer();
    assert!(tok.chat_template().is_err());
    assert_eq!(tok.ensure_chat_template().unwrap(), 2);
    assert_eq!(tok.ensure_chat_template().unwrap(), 0, "idempotent");
    assert_eq!(tok.vocab_size(), 7);
    let t = tok.chat_template().unwrap();
    assert_eq!(t.source(), FALLBACK_TEMPLATE);
    assert_eq!(
        t.render_prompt("hello").unwrap(),
        "<|user|>hello</s><|assistant|>"
    );
    let full = t.render_exchange("hello there", "hi").unwrap();
    assert_eq!(full, "<|user|>hello there</s><|assistant|>hi</s>");
    let user = tok.token_to_id("<|user|>").unwrap();
    let assistant = tok.token_to_id("<|assistant|>").unwrap();
    assert_eq!(
        tok.encode(&full).unwrap(),
        vec![user, 2, 3, 1, assistant, 4, 1]
    );
    assert_eq!(
        tok.decode(&tok.encode(&full).unwrap(), true).unwrap(),
        "hello there hi"
    );
    let err = t.render(&[Message::new("system", "x")], false).unwrap_err();
    assert!(err.to_string().contains("found role system"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    tok.save(dir.path()).unwrap();
    let mut back = TextTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(back.ensure_chat_template().unwrap(), 0);
    assert_eq!(back.vocab_size(), 7);
    assert_eq!(
        back.chat_template()
            .unwrap()
            .render_exchange("hello there", "hi")
            .unwrap(),
        full
    );
}

#[test]
fn fallback_needs_an_eos_token() {
    let mut tok = plain_tokenizer();
    tok.config_mut().eos_token = None;
    assert!(tok.ensure_chat_template().is_err());
    tok.config_mut().eos_token = Some("<missing>".into());
    let err = tok.ensure_chat_template().unwrap_err();
    assert!(matches!(err, TextError::MissingToken { .. }), "{err}");
}

#[test]
fn template_from_chat_template_jinja_file_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let tok = plain_tokenizer();
    tok.save(dir.path()).unwrap();
    std::fs::write(dir.path().join("chat_template.jinja"), CHATML).unwrap();
    let back = TextTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(back.chat_template().unwrap().source(), CHATML);
}
