//! What [`generate`](super::generate) returns.

use crate::logprobs::SequenceBatch;
use crate::Result;
use candle_core::Device;

/// Why a row stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// It produced an end-of-sequence token (the last token of its response).
    Eos,
    /// It reached `max_new_tokens` without one.
    Length,
}

/// Prompts and generated responses, one entry per batch row, unpadded.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The prompts as given.
    pub prompts: Vec<Vec<u32>>,
    /// The generated tokens of each row, up to and including its end-of-sequence
    /// token when it produced one.
    pub responses: Vec<Vec<u32>>,
    /// Why each row stopped.
    pub finish_reasons: Vec<FinishReason>,
}

impl Generation {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.responses.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.responses.is_empty()
    }

    /// Length of the longest response.
    pub fn width(&self) -> usize {
        self.responses.iter().map(Vec::len).max().unwrap_or(0)
    }

    /// Responses right-padded with `pad` to [`width`](Self::width).
    pub fn padded_responses(&self, pad: u32) -> Vec<Vec<u32>> {
        let w = self.width();
        self.responses
            .iter()
            .map(|r| {
                let mut row = r.clone();
                row.resize(w, pad);
                row
            })
            .collect()
    }

    /// The response mask matching [`padded_responses`](Self::padded_responses): 1 for
    /// generated tokens (end-of-sequence included), 0 for padding.
    pub fn response_mask(&self) -> Vec<Vec<u32>> {
        let w = self.width();
        self.responses
            .iter()
            .map(|r| (0..w).map(|i| u32::from(i < r.len())).collect())
            .collect()
    }

    /// Prompt followed by response, per row, unpadded.
    pub fn sequences(&self) -> Vec<Vec<u32>> {
        self.prompts
            .iter()
            .zip(&self.responses)
            .map(|(p, r)| p.iter().chain(r).copied().collect())
            .collect()
    }

    /// The rows as a [`SequenceBatch`] (left-padded prompts, right-padded responses)
    /// for scoring with [`crate::logprobs`].
    pub fn to_batch(&self, pad: u32, device: &Device) -> Result<SequenceBatch> {
        SequenceBatch::new(&self.prompts, &self.responses, pad, device)
    }
}
