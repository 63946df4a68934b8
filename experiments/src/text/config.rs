//! `tokenizer_config.json`: special tokens in their several spellings, chat templates
//! (one string, or a list of named templates), `added_tokens_decoder`. Fields this
//! crate does not interpret are kept and written back unchanged.

use super::TextError;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// The special-token fields of `tokenizer_config.json`, in the order they are read.
const SPECIAL_TOKEN_FIELDS: [&str; 4] = ["bos_token", "eos_token", "pad_token", "unk_token"];

/// One entry of `added_tokens_decoder` (and of `tokenizer.json`'s `added_tokens`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecialToken {
    /// The token text.
    pub content: String,
    /// Whether the tokenizer treats it as special (skipped by `decode(.., true)`).
    pub special: bool,
}

/// The parsed `tokenizer_config.json`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenizerConfig {
    /// Beginning-of-sequence token text.
    pub bos_token: Option<String>,
    /// End-of-sequence token text.
    pub eos_token: Option<String>,
    /// Padding token text.
    pub pad_token: Option<String>,
    /// Unknown-token text.
    pub unk_token: Option<String>,
    /// Chat templates by name; a single-string `chat_template` is named `default`.
    pub chat_templates: BTreeMap<String, String>,
    /// `added_tokens_decoder`: id -> token.
    pub added_tokens_decoder: BTreeMap<u32, SpecialToken>,
    /// Every other field, written back unchanged by [`TokenizerConfig::to_json`].
    pub extra: Map<String, Value>,
}

impl TokenizerConfig {
    /// Reads `path`.
    pub fn from_file(path: &Path) -> Result<Self, TextError> {
        let text = std::fs::read_to_string(path).map_err(|e| TextError::io(path, e))?;
        Self::from_json_str(&text, &path.display().to_string())
    }

    /// Parses the text of a `tokenizer_config.json`; `file` labels error messages.
    pub fn from_json_str(text: &str, file: &str) -> Result<Self, TextError> {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| TextError::config(file, "<document>", format!("invalid JSON: {e}")))?;
        let Value::Object(mut obj) = value else {
            return Err(TextError::config(
                file,
                "<document>",
                "expected a JSON object",
            ));
        };
        let mut config = TokenizerConfig::default();
        for field in SPECIAL_TOKEN_FIELDS {
            let token = match obj.remove(field) {
                None => None,
                Some(v) => token_text(&v).map_err(|m| TextError::config(file, field, m))?,
            };
            match field {
                "bos_token" => config.bos_token = token,
                "eos_token" => config.eos_token = token,
                "pad_token" => config.pad_token = token,
                _ => config.unk_token = token,
            }
        }
        if let Some(v) = obj.remove("chat_template") {
            config.chat_templates = parse_chat_templates(&v, file)?;
        }
        if let Some(v) = obj.remove("added_tokens_decoder") {
            config.added_tokens_decoder = parse_added_tokens_decoder(&v, file)?;
        }
        config.extra = obj;
        Ok(config)
    }

    /// The chat template named `name`, or the `default` one when `name` is `None`
    /// (Hugging Face's rule; a lone named template is also taken as the default).
    pub fn chat_template(&self, name: Option<&str>) -> Option<&str> {
        match name {
            Some(n) => self.chat_templates.get(n).map(String::as_str),
            None => self
                .chat_templates
                .get("default")
                .or_else(|| match self.chat_templates.len() {
                    1 => self.chat_templates.values().next(),
                    _ => None,
                })
                .map(String::as_str),
        }
    }

    /// The config as JSON, in the spelling transformers writes (special tokens as
    /// strings, `chat_template` a string when there is only `default`).
    pub fn to_json(&self) -> Value {
        let mut obj = self.extra.clone();
        for (field, token) in [
            ("bos_token", &self.bos_token),
            ("eos_token", &self.eos_token),
            ("pad_token", &self.pad_token),
            ("unk_token", &self.unk_token),
        ] {
            obj.insert(
                field.to_string(),
                token.clone().map_or(Value::Null, Value::String),
            );
        }
        let decoder: Map<String, Value> = self
            .added_tokens_decoder
            .iter()
            .map(|(id, t)| {
                (
                    id.to_string(),
                    json!({
                        "content": t.content, "lstrip": false, "normalized": false,
                        "rstrip": false, "single_word": false, "special": t.special
                    }),
                )
            })
            .collect();
        obj.insert("added_tokens_decoder".into(), Value::Object(decoder));
        match self.chat_templates.len() {
            0 => {}
            1 if self.chat_templates.contains_key("default") => {
                obj.insert(
                    "chat_template".into(),
                    json!(self.chat_templates["default"]),
                );
            }
            _ => {
                let list: Vec<Value> = self
                    .chat_templates
                    .iter()
                    .map(|(name, template)| json!({"name": name, "template": template}))
                    .collect();
                obj.insert("chat_template".into(), Value::Array(list));
            }
        }
        obj.entry("tokenizer_class")
            .or_insert_with(|| json!("PreTrainedTokenizerFast"));
        Value::Object(obj)
    }
}

/// A special token spelled as a string, `{"content": ...}` (an `AddedToken`), or null.
fn token_text(v: &Value) -> Result<Option<String>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Object(o) => match o.get("content") {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            _ => Err(format!(
                "expected a string or an object with a string `content`, found {v}"
            )),
        },
        _ => Err(format!(
            "expected a string, an object with `content`, or null; found {v}"
        )),
    }
}

/// `chat_template`: a string, or a list of `{"name", "template"}` objects.
fn parse_chat_templates(v: &Value, file: &str) -> Result<BTreeMap<String, String>, TextError> {
    let mut out = BTreeMap::new();
    match v {
        Value::Null => {}
        Value::String(s) => {
            out.insert("default".to_string(), s.clone());
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let field = format!("chat_template[{i}]");
                let name = item.get("name").and_then(Value::as_str);
                let template = item.get("template").and_then(Value::as_str);
                match (name, template) {
                    (Some(n), Some(t)) => {
                        out.insert(n.to_string(), t.to_string());
                    }
                    _ => {
                        return Err(TextError::config(
                            file,
                            &field,
                            "expected an object with string fields `name` and `template`",
                        ))
                    }
                }
            }
        }
        _ => {
            return Err(TextError::config(
                file,
                "chat_template",
                "expected a string or a list of {name, template} objects",
            ))
        }
    }
    Ok(out)
}

/// `added_tokens_decoder`: `{"<id>": {"content": ..., "special": ...}}`.
fn parse_added_tokens_decoder(
    v: &Value,
    file: &str,
) -> Result<BTreeMap<u32, SpecialToken>, TextError> {
    let Value::Object(map) = v else {
        return Err(TextError::config(
            file,
            "added_tokens_decoder",
            "expected an object mapping ids to tokens",
        ));
    };
    let mut out = BTreeMap::new();
    for (key, entry) in map {
        let field = format!("added_tokens_decoder.{key}");
        let id: u32 = key
            .parse()
            .map_err(|_| TextError::config(file, &field, "the key must be a token id"))?;
        let content = token_text(entry)
            .map_err(|m| TextError::config(file, &field, m))?
            .ok_or_else(|| TextError::config(file, &field, "the token is null"))?;
        let special = entry
            .get("special")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        out.insert(id, SpecialToken { content, special });
    }
    Ok(out)
}
