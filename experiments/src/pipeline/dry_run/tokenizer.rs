//! Stand-in tokenizers of the paper's model families: a byte-level BPE `tokenizer.json`
//! (the format of GPT-NeoX's and Llama 3's tokenizers) over the 256 byte symbols with
//! no merges, plus each family's special tokens and `tokenizer_config.json` with its
//! chat template as published. The vocabulary is shrunk; the format, the special
//! tokens and the templates are the real ones.

use crate::text::{TextTokenizer, TokenizerConfig};
use crate::{Error, Result};
use serde_json::json;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

/// A tokenizer family of the paper's models.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Pythia (GPT-NeoX-20B tokenizer): `<|endoftext|>` is BOS, EOS and UNK; no pad
    /// token and no chat template (the pipeline adds the paper's fallback).
    Pythia,
    /// Llama 3.2 base: Llama-3 specials, EOS `<|end_of_text|>`, the Llama-3.2 template.
    Llama32,
    /// Llama 3.2 Instruct: as the base, with EOS `<|eot_id|>`.
    Llama32Instruct,
    /// Llama 3 (8B) reward models (ArmoRM, GRM-Llama3.2 keeps the 3.2 template): the
    /// Llama-3 template, EOS `<|eot_id|>`.
    Llama3,
    /// Tulu 2 on Llama 3: Llama-3 specials with the Tulu `<|user|>` / `<|assistant|>`
    /// template and a `<pad>` token.
    Tulu,
    /// Gemma and Gemma-2: `<bos>`, `<eos>`, `<pad>`, `<start_of_turn>`, `<end_of_turn>`
    /// and the Gemma template.
    Gemma,
}

const LLAMA3_SPECIALS: [&str; 5] = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
];

/// Llama 3's template (ArmoRM, Llama-3-8B-Instruct).
const LLAMA3_TEMPLATE: &str = "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/// Llama 3.2's template without tool calls: a system header with the knowledge
/// cut-off and date, then the Llama-3 turns.
const LLAMA32_TEMPLATE: &str = "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content']|trim %}{%- set messages = messages[1:] %}{%- else %}{%- set system_message = \"\" %}{%- endif %}{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}{{- \"Cutting Knowledge Date: December 2023\\n\" }}{{- \"Today Date: 26 Jul 2024\\n\\n\" }}{{- system_message }}{{- \"<|eot_id|>\" }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

/// The Tulu 2 template.
const TULU_TEMPLATE: &str = "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '\n' }}{% elif message['role'] == 'assistant' %}{% if not loop.last %}{{ '<|assistant|>\n'  + message['content'] + eos_token + '\n' }}{% else %}{{ '<|assistant|>\n'  + message['content'] + eos_token }}{% endif %}{% endif %}{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}";

/// Gemma's template.
const GEMMA_TEMPLATE: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

impl Family {
    /// Special tokens (added after the 256 byte symbols, in this order) and the
    /// `tokenizer_config.json` fields: (specials, bos, eos, pad, unk, template).
    #[allow(clippy::type_complexity)]
    fn spec(
        self,
    ) -> (
        Vec<&'static str>,
        Option<&'static str>,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        Option<&'static str>,
    ) {
        let llama3 = LLAMA3_SPECIALS.to_vec();
        match self {
            Self::Pythia => (
                vec!["<|endoftext|>", "<|padding|>"],
                Some("<|endoftext|>"),
                "<|endoftext|>",
                None,
                Some("<|endoftext|>"),
                None,
            ),
            Self::Llama32 => (
                llama3,
                Some("<|begin_of_text|>"),
                "<|end_of_text|>",
                None,
                None,
                Some(LLAMA32_TEMPLATE),
            ),
            Self::Llama32Instruct => (
                llama3,
                Some("<|begin_of_text|>"),
                "<|eot_id|>",
                None,
                None,
                Some(LLAMA32_TEMPLATE),
            ),
            Self::Llama3 => (
                llama3,
                Some("<|begin_of_text|>"),
                "<|eot_id|>",
                None,
                None,
                Some(LLAMA3_TEMPLATE),
            ),
            Self::Tulu => {
                let mut s = llama3;
                s.push("<pad>");
                (
                    s,
                    Some("<|begin_of_text|>"),
                    "<|end_of_text|>",
                    Some("<pad>"),
                    None,
                    Some(TULU_TEMPLATE),
                )
            }
            Self::Gemma => (
                vec![
                    "<pad>",
                    "<eos>",
                    "<bos>",
                    "<unk>",
                    "<start_of_turn>",
                    "<end_of_turn>",
                ],
                Some("<bos>"),
                "<eos>",
                Some("<pad>"),
                Some("<unk>"),
                Some(GEMMA_TEMPLATE),
            ),
        }
    }

    /// The family's stand-in tokenizer.
    pub fn tokenizer(self) -> Result<TextTokenizer> {
        let (specials, bos, eos, pad, unk, template) = self.spec();
        let mut symbols: Vec<char> = ByteLevel::alphabet().into_iter().collect();
        symbols.sort_unstable();
        let vocab: tokenizers::models::bpe::Vocab = symbols
            .iter()
            .enumerate()
            .map(|(i, c)| (c.to_string(), i as u32))
            .collect();
        let bpe = BPE::builder()
            .vocab_and_merges(vocab, Vec::new())
            .build()
            .map_err(|e| Error::Input(format!("stand-in {self:?} tokenizer: {e}")))?;
        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
        tokenizer.with_decoder(Some(ByteLevel::new(false, true, true)));
        let specials: Vec<AddedToken> = specials
            .iter()
            .map(|s| AddedToken::from(*s, true))
            .collect();
        tokenizer
            .add_special_tokens(specials)
            .map_err(|e| Error::Input(format!("stand-in {self:?} tokenizer: {e}")))?;
        let own = |s: Option<&str>| s.map(str::to_string);
        let mut config = TokenizerConfig {
            bos_token: own(bos),
            eos_token: Some(eos.to_string()),
            pad_token: own(pad),
            unk_token: own(unk),
            ..TokenizerConfig::default()
        };
        if let Some(t) = template {
            config.chat_templates.insert("default".into(), t.into());
        }
        config
            .extra
            .insert("clean_up_tokenization_spaces".into(), json!(false));
        let label = format!("<stand-in {self:?} tokenizer_config>");
        Ok(TextTokenizer::from_parts(tokenizer, config, &label)?)
    }
}
