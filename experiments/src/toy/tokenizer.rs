//! The toy tokenizer: a word-level model over the toy vocabulary, split on
//! whitespace, built with the tokenizers crate and saved as a real `tokenizer.json`,
//! so it is read back through the same path as a downloaded tokenizer.

use super::language::{COUNT_WORDS, FILLER_WORDS, PROMPT_WORDS, TOPICS};
use crate::text::{TextError, TextTokenizer, TokenizerConfig};
use serde_json::json;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::{AddedToken, Tokenizer};

/// Padding token (id 0).
pub const PAD_TOKEN: &str = "<pad>";
/// End-of-sequence token (id 1).
pub const EOS_TOKEN: &str = "<eos>";
/// Unknown-word token (id 2).
pub const UNK_TOKEN: &str = "<unk>";

/// Longest sequence the toy models take; written as `model_max_length`.
pub const TOY_MAX_LENGTH: usize = 256;

/// The word-level vocabulary in id order: pad, eos, unk, then prompt words, count
/// words, filler words, topic names and topic words. The chat markers `<|user|>` and
/// `<|assistant|>` come after these, added by the chat-template path.
pub fn toy_vocabulary() -> Vec<String> {
    let mut vocab: Vec<&str> = vec![PAD_TOKEN, EOS_TOKEN, UNK_TOKEN];
    vocab.extend(PROMPT_WORDS);
    vocab.extend(COUNT_WORDS);
    vocab.extend(FILLER_WORDS);
    vocab.extend(TOPICS.iter().map(|(name, _)| *name));
    for (_, words) in TOPICS {
        vocab.extend(words.iter());
    }
    vocab.into_iter().map(String::from).collect()
}

/// Builds the toy tokenizer: eos `<eos>`, pad `<pad>`, unk `<unk>`, no BOS, and the
/// paper's fallback chat template with `<|user|>` and `<|assistant|>` as special
/// tokens (installed by [`TextTokenizer::ensure_chat_template`]).
pub fn toy_tokenizer() -> Result<TextTokenizer, TextError> {
    let vocab = toy_vocabulary();
    let model = WordLevel::builder()
        .vocab(
            vocab
                .iter()
                .enumerate()
                .map(|(id, w)| (w.clone(), id as u32))
                .collect(),
        )
        .unk_token(UNK_TOKEN.to_string())
        .build()
        .map_err(|e| TextError::tokenizer("toy WordLevel model", e))?;
    let mut tokenizer = Tokenizer::new(model);
    tokenizer.with_pre_tokenizer(Some(WhitespaceSplit));
    tokenizer
        .add_special_tokens([PAD_TOKEN, EOS_TOKEN, UNK_TOKEN].map(|t| AddedToken::from(t, true)))
        .map_err(|e| TextError::tokenizer("toy special tokens", e))?;
    let mut config = TokenizerConfig {
        eos_token: Some(EOS_TOKEN.into()),
        pad_token: Some(PAD_TOKEN.into()),
        unk_token: Some(UNK_TOKEN.into()),
        ..TokenizerConfig::default()
    };
    config
        .extra
        .insert("model_max_length".into(), json!(TOY_MAX_LENGTH));
    config
        .extra
        .insert("clean_up_tokenization_spaces".into(), json!(false));
    let mut text = TextTokenizer::from_parts(tokenizer, config, "<toy tokenizer_config>")?;
    text.ensure_chat_template()?;
    Ok(text)
}
