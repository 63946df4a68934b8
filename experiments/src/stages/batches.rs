//! Chat-formatted token ids and batch orders shared by the stages.

use crate::text::{ChatTemplate, TextTokenizer};
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A tokenizer with its compiled chat template and the ids the stages need.
pub struct ChatCodec {
    /// The tokenizer.
    pub tokenizer: TextTokenizer,
    /// Its chat template (the paper's fallback for toy and base models).
    pub template: ChatTemplate,
    /// End-of-sequence id (stops generation; ends every trained response).
    pub eos: u32,
    /// Padding id (the tokenizer's, else EOS).
    pub pad: u32,
}

impl ChatCodec {
    /// Wraps `tokenizer`, which must have a chat template and an EOS token.
    pub fn new(tokenizer: TextTokenizer) -> Result<Self> {
        let template = tokenizer.chat_template()?;
        let eos = tokenizer.require_eos_token_id()?;
        let pad = tokenizer.pad_token_id().unwrap_or(eos);
        Ok(Self {
            tokenizer,
            template,
            eos,
            pad,
        })
    }

    /// Loads the tokenizer of the model directory `dir`.
    pub fn from_dir(dir: &std::path::Path) -> Result<Self> {
        Self::new(TextTokenizer::from_dir(dir)?)
    }

    /// Loads the tokenizer of the model directory `dir` for fine-tuning a model with
    /// `embedding_rows` token embeddings: a tokenizer without a chat template (Pythia's)
    /// gets the paper's fallback template and its `<|user|>` / `<|assistant|>` special
    /// tokens, whose ids must be rows the model has (Pythia pads its embeddings past
    /// the tokenizer's vocabulary); the fine-tuned model is saved with it.
    ///
    /// Also returns the embedding rows the fine-tuned model keeps when the fallback
    /// added tokens: the tokenizer's length (`Some(rows)` below `embedding_rows`), as the
    /// paper's code resizes the embeddings to `len(tokenizer)` after adding them; `None`
    /// when nothing was added or the rows already match.
    pub fn for_fine_tuning(
        dir: &std::path::Path,
        embedding_rows: usize,
    ) -> Result<(Self, Option<usize>)> {
        let mut tokenizer = TextTokenizer::from_dir(dir)?;
        let added = tokenizer.ensure_chat_template()?;
        if added > 0 && tokenizer.vocab_size() > embedding_rows {
            return Err(Error::Input(format!(
                "{}: the tokenizer has no chat template, and the fallback template's \
                 special tokens need {} token ids but the model has {embedding_rows} \
                 embedding rows; give the tokenizer a chat template (tokenizer_config.json)",
                dir.display(),
                tokenizer.vocab_size()
            )));
        }
        let rows = tokenizer.vocab_size();
        let cut = (added > 0 && rows < embedding_rows).then_some(rows);
        Ok((Self::new(tokenizer)?, cut))
    }

    /// Token ids of the generation prompt of a single user turn.
    pub fn prompt_ids(&self, prompt: &str) -> Result<Vec<u32>> {
        let ids = self
            .tokenizer
            .encode(&self.template.render_prompt(prompt)?)?;
        if ids.is_empty() {
            return Err(Error::Input(format!(
                "prompt {prompt:?} encodes to no tokens"
            )));
        }
        Ok(ids)
    }

    /// `(prompt ids, response ids)` of a rendered exchange: the response part is what
    /// follows the generation prompt (the response and the template's closing EOS).
    /// Fails when the rendered exchange does not start with the generation prompt's ids.
    pub fn exchange_ids(&self, prompt: &str, response: &str) -> Result<(Vec<u32>, Vec<u32>)> {
        let p = self.prompt_ids(prompt)?;
        let full = self
            .tokenizer
            .encode(&self.template.render_exchange(prompt, response)?)?;
        if full.len() <= p.len() || full[..p.len()] != p[..] {
            return Err(Error::Input(format!(
                "the chat template's exchange for prompt {prompt:?} does not start with its generation prompt's tokens"
            )));
        }
        let response = full[p.len()..].to_vec();
        Ok((p, response))
    }

    /// The text of response ids, special tokens (EOS) left out.
    pub fn decode_response(&self, ids: &[u32]) -> Result<String> {
        Ok(self.tokenizer.decode(ids, true)?)
    }
}

/// `0..n` in the order of a seeded shuffle (or in order when `seed` is `None`).
pub fn order(n: usize, seed: Option<u64>) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if let Some(seed) = seed {
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    }
    idx
}

/// Checks a batch size and a micro-batch size (at most the batch size); returns the
/// micro-batch size to use.
pub fn check_batch(batch_size: usize, micro: Option<usize>, what: &str) -> Result<usize> {
    if batch_size == 0 {
        return Err(Error::Input(format!(
            "{what}: `batch_size` must be positive"
        )));
    }
    match micro {
        None => Ok(batch_size),
        Some(m) if m > 0 && m <= batch_size => Ok(m),
        Some(m) => Err(Error::Input(format!(
            "{what}: `micro_batch_size` = {m} must be in 1..={batch_size}"
        ))),
    }
}

/// A seed derived from `seed` and a counter (SplitMix64), so every batch of a stage
/// draws from its own stream and a resumed stage redraws the same numbers.
pub fn mix_seed(seed: u64, counter: u64) -> u64 {
    let mut z = seed ^ counter.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
