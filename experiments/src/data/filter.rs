//! The token-length filter: drop records any of whose texts exceeds a token budget
//! under a given tokenizer (the paper drops UltraFeedback rows whose prompt, chosen or
//! rejected content exceeds 512 tokens).

use super::{DataError, PreferencePair, PromptRecord, SftExample};
use crate::text::TextTokenizer;

/// The texts of a record that the length filter measures.
pub trait TextFields {
    /// Every text that must fit the budget.
    fn texts(&self) -> Vec<&str>;
}

impl TextFields for PreferencePair {
    fn texts(&self) -> Vec<&str> {
        vec![&self.prompt[..], &self.chosen[..], &self.rejected[..]]
    }
}

impl TextFields for SftExample {
    fn texts(&self) -> Vec<&str> {
        vec![&self.prompt[..], &self.response[..]]
    }
}

impl TextFields for PromptRecord {
    fn texts(&self) -> Vec<&str> {
        vec![self.prompt.as_str()]
    }
}

/// The outcome of a filter: what was kept, in order, and how many were dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct Filtered<T> {
    /// The records that fit.
    pub kept: Vec<T>,
    /// How many records were dropped.
    pub dropped: usize,
}

/// Keeps the records each of whose texts has at most `max_tokens` tokens (no special
/// tokens added, no chat template: the content alone).
pub fn filter_max_tokens<T: TextFields>(
    items: Vec<T>,
    tokenizer: &TextTokenizer,
    max_tokens: usize,
) -> Result<Filtered<T>, DataError> {
    let mut kept = Vec::with_capacity(items.len());
    let mut dropped = 0;
    'items: for item in items {
        for text in item.texts() {
            if tokenizer.count_tokens(text)? > max_tokens {
                dropped += 1;
                continue 'items;
            }
        }
        kept.push(item);
    }
    Ok(Filtered { kept, dropped })
}
