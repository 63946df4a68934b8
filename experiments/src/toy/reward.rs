//! The ground-truth reward of the toy language.

use super::language::ToyTask;
use std::collections::HashSet;

/// A programmatic ground-truth reward.
pub trait GroundTruth {
    /// The reward of `response` to `prompt`, in [-1, 1].
    fn score(&self, prompt: &str, response: &str) -> f64;
}

/// The toy reward: `2 * (w_topic * on_topic + w_length * length + w_distinct *
/// distinct) - 1`, where `on_topic` is the fraction of response words in the prompt's
/// topic, `length = max(0, 1 - |len - count| / count)`, and `distinct` the fraction of
/// distinct words. An empty response scores -1; a prompt that names no task scores 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ToyReward {
    /// Weight of the on-topic fraction.
    pub w_topic: f64,
    /// Weight of the length match.
    pub w_length: f64,
    /// Weight of the distinct-word fraction.
    pub w_distinct: f64,
}

impl Default for ToyReward {
    /// Weights 0.5, 0.3, 0.2.
    fn default() -> Self {
        Self {
            w_topic: 0.5,
            w_length: 0.3,
            w_distinct: 0.2,
        }
    }
}

impl GroundTruth for ToyReward {
    fn score(&self, prompt: &str, response: &str) -> f64 {
        let Some(task) = ToyTask::parse(prompt) else {
            return 0.0;
        };
        let words: Vec<&str> = response.split_whitespace().collect();
        if words.is_empty() {
            return -1.0;
        }
        let len = words.len() as f64;
        let topic_words = task.topic_words();
        let on_topic = words.iter().filter(|w| topic_words.contains(w)).count() as f64 / len;
        let count = task.count as f64;
        let length = (1.0 - (len - count).abs() / count).max(0.0);
        let distinct = words.iter().collect::<HashSet<_>>().len() as f64 / len;
        let total = self.w_topic + self.w_length + self.w_distinct;
        let raw = if total > 0.0 {
            (self.w_topic * on_topic + self.w_length * length + self.w_distinct * distinct) / total
        } else {
            0.5
        };
        (2.0 * raw - 1.0).clamp(-1.0, 1.0)
    }
}
