//! Errors of the text module.

use std::path::PathBuf;

/// Errors from loading, using or saving a tokenizer, or from rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `tokenizer.json` could not be parsed, or the tokenizer failed on an input.
    #[error("{context}: {message}")]
    Tokenizer {
        /// The file or the operation (`encode`, `decode`).
        context: String,
        /// What the tokenizers crate reported.
        message: String,
    },
    /// A `tokenizer_config.json` field is malformed.
    #[error("{file}: field `{field}`: {message}")]
    Config {
        /// The configuration file.
        file: String,
        /// The field (dotted for nested fields).
        field: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A token the caller relies on (eos, pad, a chat marker) is not in the vocabulary.
    #[error("token `{token}` ({role}) is not in the vocabulary: {hint}")]
    MissingToken {
        /// The token text.
        token: String,
        /// What the token is for (`eos_token`, `<|user|>` marker).
        role: String,
        /// How to fix it.
        hint: String,
    },
    /// The tokenizer has no chat template.
    #[error("the tokenizer has no chat template{0}; call `TextTokenizer::ensure_chat_template` to install the fallback template")]
    NoChatTemplate(String),
    /// A chat template failed to compile or render (including `raise_exception`).
    #[error("chat template: {0}")]
    Template(String),
}

impl TextError {
    /// A [`TextError::Tokenizer`] from the tokenizers crate's boxed error.
    pub(crate) fn tokenizer(context: impl Into<String>, err: impl std::fmt::Display) -> Self {
        TextError::Tokenizer {
            context: context.into(),
            message: err.to_string(),
        }
    }

    /// A [`TextError::Config`].
    pub(crate) fn config(file: &str, field: &str, message: impl Into<String>) -> Self {
        TextError::Config {
            file: file.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// A [`TextError::Io`].
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TextError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<minijinja::Error> for TextError {
    fn from(err: minijinja::Error) -> Self {
        // `{:#}` includes the template line and the cause chain.
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(s) = source {
            message.push_str(&format!(": {s}"));
            source = s.source();
        }
        TextError::Template(message)
    }
}
