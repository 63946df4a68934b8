//! [`TextTokenizer`]: a Hugging Face fast tokenizer (`tokenizer.json`) with its
//! `tokenizer_config.json`, loaded from and saved to a directory, offline.

use super::template::{FALLBACK_ASSISTANT_TOKEN, FALLBACK_TEMPLATE, FALLBACK_USER_TOKEN};
use super::{ChatTemplate, SpecialToken, TextError, TokenizerConfig};
use serde_json::Value;
use std::path::Path;
use tokenizers::{AddedToken, Tokenizer};

/// File names inside a tokenizer directory.
const TOKENIZER_FILE: &str = "tokenizer.json";
const CONFIG_FILE: &str = "tokenizer_config.json";
/// transformers >= 4.43 may save the template beside the config instead of inside it.
const TEMPLATE_FILE: &str = "chat_template.jinja";

/// A tokenizer and its configuration (special tokens, chat templates).
///
/// Encoding adds no special tokens unless asked ([`TextTokenizer::encode_with`]), as
/// transformers' `apply_chat_template` tokenizes rendered chats: templates already
/// contain the markers they need.
///
/// Byte-level BPE tokenizers may be saved with `add_prefix_space: true` (the
/// tokenizers crate's default for `ByteLevel`): then `" " + text` is what is
/// tokenized and `decode(encode(text))` returns it with a leading space. Loading keeps
/// the file's setting (so ids agree with transformers); [`TextTokenizer::adds_prefix_space`]
/// reports it and [`TextTokenizer::disable_prefix_space`] turns it off for exact round
/// trips (saved that way too, so transformers agrees again).
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    tokenizer: Tokenizer,
    config: TokenizerConfig,
    /// The file the chat templates came from (named when one does not compile).
    template_file: String,
}

impl TextTokenizer {
    /// Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json` and
    /// `dir/chat_template.jinja` (used when the config has no `chat_template`).
    pub fn from_dir(dir: &Path) -> Result<Self, TextError> {
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        let tokenizer = load_tokenizer_json(&tokenizer_path)?;
        let config_path = dir.join(CONFIG_FILE);
        let mut config = if config_path.exists() {
            TokenizerConfig::from_file(&config_path)?
        } else {
            TokenizerConfig::default()
        };
        let template_path = dir.join(TEMPLATE_FILE);
        let from_jinja = config.chat_templates.is_empty() && template_path.exists();
        if from_jinja {
            let template = std::fs::read_to_string(&template_path)
                .map_err(|e| TextError::io(&template_path, e))?;
            config.chat_templates.insert("default".into(), template);
        }
        let mut tok = Self::from_parts(tokenizer, config, &config_path.display().to_string())?;
        if from_jinja {
            tok.template_file = template_path.display().to_string();
        }
        Ok(tok)
    }

    /// Combines a tokenizer and a config. Tokens listed in `added_tokens_decoder` but
    /// missing from the tokenizer are added; one whose id disagrees is an error that
    /// names `config_label`.
    pub fn from_parts(
        mut tokenizer: Tokenizer,
        config: TokenizerConfig,
        config_label: &str,
    ) -> Result<Self, TextError> {
        for (id, token) in &config.added_tokens_decoder {
            if tokenizer.token_to_id(&token.content).is_none() {
                tokenizer
                    .add_tokens([AddedToken::from(token.content.clone(), token.special)])
                    .map_err(|e| TextError::tokenizer("add_tokens", e))?;
            }
            let found = tokenizer.token_to_id(&token.content);
            if found != Some(*id) {
                return Err(TextError::config(
                    config_label,
                    &format!("added_tokens_decoder.{id}"),
                    format!(
                        "token `{}` has id {found:?} in tokenizer.json; make the two files agree",
                        token.content
                    ),
                ));
            }
        }
        Ok(Self {
            tokenizer,
            config,
            template_file: config_label.to_string(),
        })
    }

    /// Token ids of `text`, no special tokens added.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        self.encode_with(text, false)
    }

    /// Token ids of `text`; with `add_special_tokens` the tokenizer's post-processor
    /// adds its markers (e.g. a BOS token).
    pub fn encode_with(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TextError> {
        let encoding = self
            .tokenizer
            .encode(text, add_special_tokens)
            .map_err(|e| TextError::tokenizer("encode", e))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Number of tokens of `text` (no special tokens added).
    pub fn count_tokens(&self, text: &str) -> Result<usize, TextError> {
        Ok(self.encode(text)?.len())
    }

    /// The text of `ids`; with `skip_special_tokens` special tokens are left out.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TextError> {
        self.tokenizer
            .decode(ids, skip_special_tokens)
            .map_err(|e| TextError::tokenizer("decode", e))
    }

    /// The id of `token` (vocabulary or added token).
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// The token text of `id`.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.tokenizer.id_to_token(id)
    }

    /// The id of `token`, or a [`TextError::MissingToken`] naming its `role`.
    pub fn require_token_id(&self, token: &str, role: &str) -> Result<u32, TextError> {
        self.token_to_id(token)
            .ok_or_else(|| TextError::MissingToken {
                token: token.to_string(),
                role: role.to_string(),
                hint: "add it to tokenizer.json (added_tokens) or fix tokenizer_config.json"
                    .to_string(),
            })
    }

    /// The BOS token id, when the config names one that is in the vocabulary.
    pub fn bos_token_id(&self) -> Option<u32> {
        self.config
            .bos_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
    }

    /// The EOS token id, when the config names one that is in the vocabulary.
    pub fn eos_token_id(&self) -> Option<u32> {
        self.config
            .eos_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
    }

    /// The padding token id, when the config names one that is in the vocabulary.
    pub fn pad_token_id(&self) -> Option<u32> {
        self.config
            .pad_token
            .as_deref()
            .and_then(|t| self.token_to_id(t))
    }

    /// The EOS id or an error saying the config lacks one.
    pub fn require_eos_token_id(&self) -> Result<u32, TextError> {
        match &self.config.eos_token {
            Some(t) => self.require_token_id(t, "eos_token"),
            None => Err(TextError::config(
                CONFIG_FILE,
                "eos_token",
                "not set; name the end-of-sequence token in tokenizer_config.json",
            )),
        }
    }

    /// Number of embedding rows the tokenizer needs: one more than its largest id
    /// (vocabulary and added tokens).
    pub fn vocab_size(&self) -> usize {
        let max_added = self
            .tokenizer
            .get_added_tokens_decoder()
            .keys()
            .map(|&id| id as usize + 1)
            .max()
            .unwrap_or(0);
        self.tokenizer.get_vocab_size(true).max(max_added)
    }

    /// Refuses a tokenizer (of the model directory `dir`) with ids the model's
    /// `model_vocab` embedding rows (`vocab_size` of its `config.json`) cannot hold:
    /// such an id would fail deep inside the model, or read another token's row.
    pub fn check_fits(&self, dir: &Path, model_vocab: usize) -> Result<(), TextError> {
        let needed = self.vocab_size();
        if needed <= model_vocab {
            return Ok(());
        }
        Err(TextError::config(
            &dir.join("tokenizer.json").display().to_string(),
            "model.vocab",
            format!(
                "the tokenizer has ids up to {} but config.json's vocab_size is \
                 {model_vocab}; use the tokenizer the model was trained with, or a model \
                 whose vocab_size is at least {needed}",
                needed - 1
            ),
        ))
    }

    /// The configuration.
    pub fn config(&self) -> &TokenizerConfig {
        &self.config
    }

    /// The configuration, for changes (special tokens, templates) before saving.
    pub fn config_mut(&mut self) -> &mut TokenizerConfig {
        &mut self.config
    }

    /// The underlying tokenizers-crate tokenizer.
    pub fn inner(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// Adds `tokens` as special tokens; returns how many new ids were created (so the
    /// caller can resize embeddings). Tokens already in the vocabulary only become
    /// special.
    pub fn add_special_tokens(&mut self, tokens: &[&str]) -> Result<usize, TextError> {
        let added = tokens.iter().map(|t| AddedToken::from(t.to_string(), true));
        let n = self
            .tokenizer
            .add_special_tokens(added)
            .map_err(|e| TextError::tokenizer("add_special_tokens", e))?;
        self.sync_added_tokens_decoder();
        Ok(n)
    }

    /// Whether a byte-level pre-tokenizer adds a space in front of the text.
    pub fn adds_prefix_space(&self) -> bool {
        self.pre_tokenizer_json()
            .is_some_and(|mut v| visit_byte_level(&mut v, false))
    }

    /// Turns off `add_prefix_space` on every byte-level pre-tokenizer so that
    /// `decode(encode(text)) == text`; returns whether anything changed.
    pub fn disable_prefix_space(&mut self) -> Result<bool, TextError> {
        let json = self
            .tokenizer
            .to_string(false)
            .map_err(|e| TextError::tokenizer("serialize", e))?;
        let mut value: Value =
            serde_json::from_str(&json).map_err(|e| TextError::tokenizer("serialize", e))?;
        let changed = value
            .get_mut("pre_tokenizer")
            .is_some_and(|pt| visit_byte_level(pt, true));
        if changed {
            self.tokenizer = Tokenizer::from_bytes(value.to_string())
                .map_err(|e| TextError::tokenizer("reload", e))?;
        }
        Ok(changed)
    }

    /// The default chat template, compiled.
    pub fn chat_template(&self) -> Result<ChatTemplate, TextError> {
        self.named_chat_template(None)
    }

    /// The chat template `name` (the default one for `None`), compiled. A template
    /// that does not compile is an error naming its file, the template and minijinja's
    /// line (not "no chat template").
    pub fn named_chat_template(&self, name: Option<&str>) -> Result<ChatTemplate, TextError> {
        let source = self.config.chat_template(name).ok_or_else(|| {
            TextError::NoChatTemplate(name.map(|n| format!(" named `{n}`")).unwrap_or_default())
        })?;
        ChatTemplate::new(source, &self.config).map_err(|e| match e {
            TextError::Template(message) => TextError::config(
                &self.template_file,
                &match name {
                    Some(n) => format!("chat_template.{n}"),
                    None => "chat_template".to_string(),
                },
                format!(
                    "the Jinja template does not compile: {message} (lines count from the \
                     template's first line); fix the template or remove it to use the \
                     paper's fallback"
                ),
            ),
            other => other,
        })
    }

    /// Installs the paper's fallback template when the tokenizer has no chat template:
    /// adds `<|user|>` and `<|assistant|>` as special tokens and returns how many new
    /// ids that created (resize the model's embeddings by as many). Returns 0 and
    /// changes nothing when a template exists. Needs an EOS token.
    pub fn ensure_chat_template(&mut self) -> Result<usize, TextError> {
        if self.config.chat_template(None).is_some() {
            return Ok(0);
        }
        self.require_eos_token_id()?;
        let added = self.add_special_tokens(&[FALLBACK_USER_TOKEN, FALLBACK_ASSISTANT_TOKEN])?;
        self.config
            .chat_templates
            .insert("default".into(), FALLBACK_TEMPLATE.into());
        Ok(added)
    }

    /// Writes `dir/tokenizer.json` and `dir/tokenizer_config.json` (creating `dir`),
    /// in the form transformers' `AutoTokenizer.from_pretrained(dir)` loads.
    pub fn save(&self, dir: &Path) -> Result<(), TextError> {
        std::fs::create_dir_all(dir).map_err(|e| TextError::io(dir, e))?;
        let tokenizer_path = dir.join(TOKENIZER_FILE);
        self.tokenizer
            .save(&tokenizer_path, true)
            .map_err(|e| TextError::tokenizer(tokenizer_path.display().to_string(), e))?;
        let mut config = self.config.clone();
        config.added_tokens_decoder = self.added_tokens();
        let text = serde_json::to_string_pretty(&config.to_json())
            .map_err(|e| TextError::tokenizer(CONFIG_FILE, e))?;
        let config_path = dir.join(CONFIG_FILE);
        std::fs::write(&config_path, text + "\n").map_err(|e| TextError::io(&config_path, e))
    }

    /// The tokenizer's added tokens, as `added_tokens_decoder` lists them.
    fn added_tokens(&self) -> std::collections::BTreeMap<u32, SpecialToken> {
        self.tokenizer
            .get_added_tokens_decoder()
            .into_iter()
            .map(|(id, t)| {
                (
                    id,
                    SpecialToken {
                        content: t.content,
                        special: t.special,
                    },
                )
            })
            .collect()
    }

    fn sync_added_tokens_decoder(&mut self) {
        self.config.added_tokens_decoder = self.added_tokens();
    }

    fn pre_tokenizer_json(&self) -> Option<Value> {
        let json = self.tokenizer.to_string(false).ok()?;
        let mut value: Value = serde_json::from_str(&json).ok()?;
        value.get_mut("pre_tokenizer").map(Value::take)
    }
}

/// Reads a `tokenizer.json`, naming the file in errors. An added token that the
/// tokenizers library loads under another id than the file declares is an error that
/// explains why (the library numbers added tokens after the vocabulary's size, so a
/// vocabulary whose ids have gaps shifts them).
fn load_tokenizer_json(path: &Path) -> Result<Tokenizer, TextError> {
    let bytes = std::fs::read(path).map_err(|e| TextError::io(path, e))?;
    let label = path.display().to_string();
    let raw: Option<Value> = serde_json::from_slice(&bytes).ok();
    let tokenizer =
        Tokenizer::from_bytes(bytes).map_err(|e| TextError::tokenizer(label.clone(), e))?;
    if let Some(raw) = raw {
        check_added_token_ids(&raw, &tokenizer, &label)?;
    }
    Ok(tokenizer)
}

/// Ids declared by `model.vocab` (a token -> id object, or Unigram's list of
/// `[token, score]` numbered by position).
fn vocab_ids(raw: &Value) -> Vec<u64> {
    match &raw["model"]["vocab"] {
        Value::Object(m) => m.values().filter_map(Value::as_u64).collect(),
        Value::Array(a) => (0..a.len() as u64).collect(),
        _ => Vec::new(),
    }
}

/// Every `added_tokens[i]` of the raw `tokenizer.json` must load under its declared id.
fn check_added_token_ids(raw: &Value, tokenizer: &Tokenizer, label: &str) -> Result<(), TextError> {
    let Some(added) = raw["added_tokens"].as_array() else {
        return Ok(());
    };
    for (i, token) in added.iter().enumerate() {
        let (Some(declared), Some(content)) = (token["id"].as_u64(), token["content"].as_str())
        else {
            continue;
        };
        let loaded = tokenizer.token_to_id(content);
        if loaded.map(u64::from) == Some(declared) {
            continue;
        }
        let mut ids = vocab_ids(raw);
        ids.sort_unstable();
        ids.dedup();
        let n = ids.len() as u64;
        let missing: Vec<String> = {
            let mut next = 0u64;
            let mut out = Vec::new();
            for &id in &ids {
                while next < id && out.len() < 10 {
                    out.push(next.to_string());
                    next += 1;
                }
                next = id + 1;
            }
            out
        };
        let why = if ids.last().is_some_and(|&m| m + 1 != n) {
            format!(
                "model.vocab's ids are not contiguous ({n} entries, largest id {}; missing \
                 {}{}), and the tokenizers library numbers added tokens from the vocabulary's \
                 size, not from the ids in the file. Renumber model.vocab to 0..{} (and the \
                 added tokens after it), or fill the gaps",
                ids.last().copied().unwrap_or(0),
                missing.join(", "),
                if missing.len() == 10 { ", ..." } else { "" },
                n.saturating_sub(1)
            )
        } else {
            "the tokenizers library assigned another id on load (an added token must follow \
             the vocabulary, without gaps or duplicates among the added tokens); renumber \
             added_tokens"
                .to_string()
        };
        return Err(TextError::config(
            label,
            &format!("added_tokens[{i}]"),
            format!(
                "token `{content}` declares id {declared} but loads as {}: {why}",
                loaded.map_or_else(|| "no id".into(), |x| x.to_string())
            ),
        ));
    }
    Ok(())
}

/// Walks a serialized pre-tokenizer (recursing into `Sequence`s); returns whether a
/// `ByteLevel` with `add_prefix_space: true` was found, setting it to false when `clear`.
fn visit_byte_level(v: &mut Value, clear: bool) -> bool {
    let mut found = false;
    if let Some(list) = v.get_mut("pretokenizers").and_then(Value::as_array_mut) {
        for item in list {
            found |= visit_byte_level(item, clear);
        }
    }
    let is_byte_level = v.get("type").and_then(Value::as_str) == Some("ByteLevel");
    if is_byte_level && v.get("add_prefix_space").and_then(Value::as_bool) == Some(true) {
        found = true;
        if clear {
            v["add_prefix_space"] = Value::Bool(false);
        }
    }
    found
}
