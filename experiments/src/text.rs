//! Text handling: Hugging Face tokenizers (`tokenizer.json` + `tokenizer_config.json`)
//! loaded and saved offline, and chat templates (the paper's fallback template and the
//! Jinja templates instruct models ship).

mod config;
mod error;
mod template;
mod tokenizer;

pub use config::{SpecialToken, TokenizerConfig};
pub use error::TextError;
pub use template::{
    ChatTemplate, Message, FALLBACK_ASSISTANT_TOKEN, FALLBACK_TEMPLATE, FALLBACK_USER_TOKEN,
};
pub use tokenizer::TextTokenizer;
