//! The crate's error type: every failure names the file and, where there is one, the
//! field or tensor that caused it.

use std::path::PathBuf;

/// Errors of the experiments crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `config.json` field is missing, has the wrong type, or asks for something
    /// this crate does not implement.
    #[error("{file}: field `{field}`: {message}")]
    Config {
        /// The configuration file (or a label such as `<memory>`).
        file: String,
        /// The JSON field, dotted for nested fields (`rope_parameters.rope_theta`).
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A weight file is unreadable, or lacks or mis-shapes a tensor.
    #[error("{file}: {message}")]
    Weights {
        /// The safetensors file (or directory).
        file: String,
        /// What is wrong.
        message: String,
    },
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A tensor operation failed (shape mismatch, device error).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// The caller passed inputs of the wrong shape or type.
    #[error("invalid input: {0}")]
    Input(String),
    /// A tokenizer or chat-template failure.
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
    /// A dataset file is unreadable or malformed (file, row and column named).
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// Reading a run's records or writing its report failed (file and line named;
    /// boxed, as it is large and rare).
    #[error(transparent)]
    Analysis(Box<crate::analysis::AnalysisError>),
}

impl From<crate::analysis::AnalysisError> for Error {
    fn from(e: crate::analysis::AnalysisError) -> Self {
        Error::Analysis(Box::new(e))
    }
}

/// Result with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// A [`Error::Config`] for `field` of `file`.
    pub fn config(file: &str, field: &str, message: impl Into<String>) -> Self {
        Error::Config {
            file: file.to_string(),
            field: field.to_string(),
            message: message.into(),
        }
    }

    /// The error's text without [`Error::Input`]'s `invalid input: ` prefix, for
    /// wrapping it into another input error that says it once.
    pub fn detail(self) -> String {
        match self {
            Error::Input(message) => message,
            e => e.to_string(),
        }
    }
}
