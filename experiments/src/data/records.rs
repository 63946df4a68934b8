//! The in-memory records every loader produces.

use serde::{Deserialize, Serialize};

/// A preference pair: one prompt and two responses, `chosen` preferred by its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreferencePair {
    /// The user prompt.
    pub prompt: String,
    /// The preferred response.
    pub chosen: String,
    /// The other response.
    pub rejected: String,
    /// The source's score of `chosen` (UltraFeedback: 1-10), when given.
    pub score_chosen: Option<f64>,
    /// The source's score of `rejected`, when given.
    pub score_rejected: Option<f64>,
}

/// A supervised fine-tuning example: one user turn and the assistant's reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SftExample {
    /// The user turn.
    pub prompt: String,
    /// The assistant reply (the only tokens trained on).
    pub response: String,
}

/// A prompt without responses (policy-gradient and evaluation prompt sets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptRecord {
    /// The user prompt.
    pub prompt: String,
}
