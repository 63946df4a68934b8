//! Chat templates rendered with minijinja the way transformers renders them
//! (`trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`, Python string
//! methods), and the paper's fallback template for tokenizers that ship none.

use super::{TextError, TokenizerConfig};
use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The user-turn marker of the fallback template (added as a special token).
pub const FALLBACK_USER_TOKEN: &str = "<|user|>";
/// The assistant-turn marker of the fallback template (added as a special token).
pub const FALLBACK_ASSISTANT_TOKEN: &str = "<|assistant|>";

/// The paper's fallback template, `<|user|>{content}{eos}<|assistant|>{content}{eos}`,
/// whose generation prompt ends with `<|assistant|>`. Written as Jinja so that it is
/// saved in `tokenizer_config.json` and transformers renders it identically.
pub const FALLBACK_TEMPLATE: &str = "{% for message in messages %}\
{% if message['role'] == 'user' %}{{ '<|user|>' + message['content'] + eos_token }}\
{% elif message['role'] == 'assistant' %}{{ '<|assistant|>' + message['content'] + eos_token }}\
{% else %}{{ raise_exception('the fallback chat template supports only user and assistant messages, found role ' + message['role']) }}\
{% endif %}{% endfor %}\
{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}";

/// Name under which the template is registered in its environment.
const TEMPLATE_NAME: &str = "chat";

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl Message {
    /// A message with `role` and `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// A compiled chat template together with the special tokens it may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    env: Environment<'static>,
    special_tokens: Vec<(&'static str, String)>,
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token`, `eos_token`, `pad_token` and `unk_token` come
    /// from `config` (those it leaves unset are undefined in the template, as in
    /// transformers).
    pub fn new(source: &str, config: &TokenizerConfig) -> Result<Self, TextError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_template_owned(TEMPLATE_NAME, source.to_string())?;
        let special_tokens = [
            ("bos_token", &config.bos_token),
            ("eos_token", &config.eos_token),
            ("pad_token", &config.pad_token),
            ("unk_token", &config.unk_token),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect();
        Ok(Self {
            source: source.to_string(),
            env,
            special_tokens,
        })
    }

    /// The Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders `messages`; with `add_generation_prompt` the text ends where the
    /// assistant's reply begins. `tools` and `documents` are `none`, as transformers
    /// passes them when no tools are given.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, TextError> {
        let mut ctx: BTreeMap<&str, Value> = BTreeMap::from([
            ("messages", Value::from_serialize(messages)),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
            ("tools", Value::from(())),
            ("documents", Value::from(())),
        ]);
        for (k, v) in &self.special_tokens {
            ctx.insert(k, Value::from(v.as_str()));
        }
        let template = self.env.get_template(TEMPLATE_NAME)?;
        Ok(template.render(ctx)?)
    }

    /// The generation prompt for a single user turn: `render([user(prompt)], true)`.
    pub fn render_prompt(&self, prompt: &str) -> Result<String, TextError> {
        self.render(&[Message::user(prompt)], true)
    }

    /// A full single-turn conversation (user prompt, assistant response), without a
    /// generation prompt: the text a policy is trained or scored on.
    pub fn render_exchange(&self, prompt: &str, response: &str) -> Result<String, TextError> {
        self.render(
            &[Message::user(prompt), Message::assistant(response)],
            false,
        )
    }
}

/// `raise_exception(message)`, which Hugging Face templates call on bad input.
fn raise_exception(message: String) -> Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
}
