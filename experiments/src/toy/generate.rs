//! Seeded generators of toy prompts, responses, SFT examples, preference pairs and
//! pretraining text.

use super::language::{ToyTask, COUNT_WORDS, FILLER_WORDS, MIN_COUNT, PROMPT_VARIANTS, TOPICS};
use super::reward::GroundTruth;
use super::tokenizer::toy_tokenizer;
use crate::data::{PreferencePair, SftExample};
use crate::text::TextError;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Longest response the generators write.
const MAX_RESPONSE_WORDS: usize = 12;

/// Which distribution a response is drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseStyle {
    /// Like the SFT data: topic words and words of other topics.
    Policy,
    /// Like a different model's outputs: off-topic words are often fillers
    /// (`and`, `the`, ...), which the SFT data never contains.
    OffPolicy,
}

/// How the SFT data varies in quality (Section 4.2: policies that differ on
/// non-overlapping axes of the ground truth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SftStyle {
    /// Quality uniform in [0.4, 0.9] on every axis at once ([`ToyGenerator::response`]).
    #[default]
    Mixed,
    /// Exactly `count` words, all distinct; each word on topic with probability `q`,
    /// `q` uniform in [0.4, 1]: only on-topic-ness varies.
    Topic,
    /// Always on topic, distinct words while the topic has unused ones; the length
    /// misses the count by `round(u * count)` words (either side, at least one word),
    /// `u` uniform in [0, 1]: only length varies.
    Length,
}

impl SftStyle {
    /// Parses `mixed`, `topic` or `length`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mixed" => Some(Self::Mixed),
            "topic" => Some(Self::Topic),
            "length" => Some(Self::Length),
            _ => None,
        }
    }
}

/// A generator of toy data, deterministic given its seed.
#[derive(Debug, Clone)]
pub struct ToyGenerator {
    rng: ChaCha8Rng,
}

impl ToyGenerator {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A uniform draw from [0, 1).
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniform draw from `0..n` (`n > 0`; 0 when `n == 0`).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        ((self.unit() * n as f64) as usize).min(n - 1)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    /// A random task: a topic and a count in two..eight.
    pub fn task(&mut self) -> ToyTask {
        ToyTask {
            topic: self.below(TOPICS.len()),
            count: MIN_COUNT + self.below(COUNT_WORDS.len()),
        }
    }

    /// A random task and its prompt text (a random phrasing).
    pub fn prompt(&mut self) -> (ToyTask, String) {
        let task = self.task();
        let variant = self.below(PROMPT_VARIANTS);
        // Every generated count has a count word, so the prompt always renders.
        let text = task.prompt(variant).unwrap_or_default();
        (task, text)
    }

    /// A response to `task` of quality `quality` in [0, 1]: each word is on topic with
    /// probability `quality` (and then, with probability `quality`, a word not used
    /// yet); the length misses the count by up to `(1 - quality) * count` words.
    pub fn response(&mut self, task: &ToyTask, quality: f64, style: ResponseStyle) -> String {
        let q = if quality.is_finite() {
            quality.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let spread = ((1.0 - q) * task.count as f64).round() as usize;
        let offset = self.below(2 * spread + 1);
        let len = (task.count + offset)
            .saturating_sub(spread)
            .clamp(1, MAX_RESPONSE_WORDS);
        let topic_words = task.topic_words();
        let mut unused: Vec<&str> = topic_words.to_vec();
        let mut words = Vec::with_capacity(len);
        for _ in 0..len {
            let word = if self.unit() < q {
                if !unused.is_empty() && self.unit() < q {
                    let i = self.below(unused.len());
                    unused.swap_remove(i)
                } else {
                    self.pick(topic_words)
                }
            } else if style == ResponseStyle::OffPolicy && self.unit() < 0.5 {
                self.pick(FILLER_WORDS)
            } else {
                let other = (task.topic + 1 + self.below(TOPICS.len() - 1)) % TOPICS.len();
                self.pick(TOPICS[other].1)
            };
            words.push(word);
        }
        words.join(" ")
    }

    /// An SFT example: a prompt and a response of quality uniform in [0.4, 0.9] (good
    /// but improvable, so reinforcement learning has room).
    pub fn sft_example(&mut self) -> SftExample {
        let (task, prompt) = self.prompt();
        let quality = 0.4 + 0.5 * self.unit();
        SftExample {
            response: self.response(&task, quality, ResponseStyle::Policy),
            prompt,
        }
    }

    /// An off-policy preference pair labelled like UltraFeedback: two
    /// [`ResponseStyle::OffPolicy`] responses of independent uniform quality, each
    /// scored `5.5 + 4.5 * gt + noise` (noise uniform in [-1.5, 1.5]) clamped to
    /// [1, 10] and rounded to halves; `chosen` has the higher score (so labels
    /// sometimes disagree with the ground truth, as annotator labels do).
    pub fn preference_pair(&mut self, reward: &impl GroundTruth) -> PreferencePair {
        self.preference_pair_with_gap(reward, 0.0)
    }

    /// [`Self::preference_pair`] whose response quality depends on the topic's family:
    /// uniform in `[0, 1 - gap]` for even topics (where the off-policy model is weak)
    /// and in `[gap, 1]` for odd topics (where it is strong); `gap = 0` is the plain
    /// pair (the same draws).
    pub fn preference_pair_with_gap(
        &mut self,
        reward: &impl GroundTruth,
        gap: f64,
    ) -> PreferencePair {
        let (task, prompt) = self.prompt();
        let gap = if gap.is_finite() {
            gap.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let lo = if task.topic % 2 == 1 { gap } else { 0.0 };
        let mut scored = [0, 1].map(|_| {
            let quality = lo + (1.0 - gap) * self.unit();
            let response = self.response(&task, quality, ResponseStyle::OffPolicy);
            let gt = reward.score(&prompt, &response);
            let noisy = 5.5 + 4.5 * gt + 3.0 * (self.unit() - 0.5);
            (response, (noisy.clamp(1.0, 10.0) * 2.0).round() / 2.0)
        });
        if scored[1].1 > scored[0].1 {
            scored.swap(0, 1);
        }
        let [(chosen, score_chosen), (rejected, score_rejected)] = scored;
        PreferencePair {
            prompt,
            chosen,
            rejected,
            score_chosen: Some(score_chosen),
            score_rejected: Some(score_rejected),
        }
    }

    /// An SFT example of `style` ([`SftStyle::Mixed`] is [`Self::sft_example`]).
    pub fn sft_example_styled(&mut self, style: SftStyle) -> SftExample {
        if style == SftStyle::Mixed {
            return self.sft_example();
        }
        let (task, prompt) = self.prompt();
        let (len, on_topic) = match style {
            SftStyle::Topic => (task.count, 0.4 + 0.6 * self.unit()),
            _ => {
                let miss = (self.unit() * task.count as f64).round() as usize;
                let len = if self.unit() < 0.5 {
                    task.count.saturating_sub(miss)
                } else {
                    task.count + miss
                };
                (len.clamp(1, MAX_RESPONSE_WORDS), 1.0)
            }
        };
        let mut unused: Vec<&str> = task.topic_words().to_vec();
        let mut others: Vec<&str> = TOPICS
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != task.topic)
            .flat_map(|(_, (_, words))| words.iter().copied())
            .collect();
        let mut words = Vec::with_capacity(len);
        for _ in 0..len {
            let word = if self.unit() < on_topic {
                if unused.is_empty() {
                    self.pick(task.topic_words())
                } else {
                    let i = self.below(unused.len());
                    unused.swap_remove(i)
                }
            } else {
                let i = self.below(others.len());
                others.swap_remove(i)
            };
            words.push(word);
        }
        SftExample {
            response: words.join(" "),
            prompt,
        }
    }

    /// A pretraining document: a prompt followed by a response of random quality.
    pub fn pretrain_text(&mut self) -> String {
        let (task, prompt) = self.prompt();
        let quality = self.unit();
        let response = self.response(&task, quality, ResponseStyle::Policy);
        format!("{prompt} {response}")
    }
}

/// Tokens of the toy world's longest chat-rendered exchange: any task's prompt in any
/// phrasing, and a response of the most words a toy response has (with the template's
/// closing EOS). A toy model's `max_position_embeddings` must be at least this.
pub fn longest_exchange_tokens() -> Result<usize, TextError> {
    let tokenizer = toy_tokenizer()?;
    let template = tokenizer.chat_template()?;
    let longest_word = TOPICS
        .iter()
        .flat_map(|(_, words)| words.iter())
        .max_by_key(|w| w.len())
        .copied()
        .unwrap_or_default();
    let response = [longest_word; MAX_RESPONSE_WORDS].join(" ");
    let mut longest = 0;
    for topic in 0..TOPICS.len() {
        for count in MIN_COUNT..MIN_COUNT + COUNT_WORDS.len() {
            for variant in 0..PROMPT_VARIANTS {
                let Some(prompt) = (ToyTask { topic, count }).prompt(variant) else {
                    continue;
                };
                let text = template.render_exchange(&prompt, &response)?;
                longest = longest.max(tokenizer.encode(&text)?.len());
            }
        }
    }
    Ok(longest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::toy::reward::ToyReward;

    #[test]
    fn no_gap_is_the_plain_pair_and_a_gap_splits_the_families() {
        let r = ToyReward::default();
        let (mut a, mut b) = (ToyGenerator::new(9), ToyGenerator::new(9));
        for _ in 0..20 {
            assert_eq!(a.preference_pair(&r), b.preference_pair_with_gap(&r, 0.0));
        }
        // With gap 0.8 the off-policy model is weak on even topics, strong on odd ones.
        let mut g = ToyGenerator::new(3);
        let (mut even, mut odd) = (Vec::new(), Vec::new());
        for _ in 0..400 {
            let p = g.preference_pair_with_gap(&r, 0.8);
            let task = ToyTask::parse(&p.prompt).unwrap();
            let s = r.score(&p.prompt, &p.chosen) + r.score(&p.prompt, &p.rejected);
            if task.topic % 2 == 0 {
                even.push(s / 2.0);
            } else {
                odd.push(s / 2.0);
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(
            mean(&odd) - mean(&even) > 0.8,
            "{} vs {}",
            mean(&odd),
            mean(&even)
        );
    }
}

#[cfg(test)]
mod style_tests {
    use super::*;
    use crate::toy::reward::{GroundTruth, ToyReward};
    use std::collections::HashSet;

    /// (mean ground truth, on-topic fractions, length misses) of `n` examples.
    fn stats(style: SftStyle, n: usize) -> (f64, Vec<f64>, Vec<usize>) {
        let (r, mut g) = (ToyReward::default(), ToyGenerator::new(5));
        let (mut gt, mut topic, mut miss) = (0.0, Vec::new(), Vec::new());
        for _ in 0..n {
            let e = g.sft_example_styled(style);
            let task = ToyTask::parse(&e.prompt).unwrap();
            let words: Vec<&str> = e.response.split_whitespace().collect();
            let on = words
                .iter()
                .filter(|w| task.topic_words().contains(w))
                .count();
            topic.push(on as f64 / words.len() as f64);
            miss.push(words.len().abs_diff(task.count));
            gt += r.score(&e.prompt, &e.response);
        }
        (gt / n as f64, topic, miss)
    }

    #[test]
    fn topic_and_length_styles_vary_on_disjoint_axes_with_matched_ground_truth() {
        let (gt_topic, topic_a, miss_a) = stats(SftStyle::Topic, 3000);
        let (gt_length, topic_b, miss_b) = stats(SftStyle::Length, 3000);
        // Policy A: always the exact length, on-topic-ness varies.
        assert!(miss_a.iter().all(|&m| m == 0));
        let distinct: HashSet<u64> = topic_a.iter().map(|t| (t * 1000.0) as u64).collect();
        assert!(distinct.len() > 10, "on-topic fraction should vary");
        // Policy B: always on topic, length varies.
        assert!(topic_b.iter().all(|&t| t == 1.0));
        assert!(miss_b.iter().filter(|&&m| m > 0).count() > 2000);
        // Matched initial expected ground truth.
        assert!(
            (gt_topic - gt_length).abs() < 0.03,
            "topic {gt_topic:.3} vs length {gt_length:.3}"
        );
        // Mixed is the plain SFT example.
        let (mut a, mut b) = (ToyGenerator::new(2), ToyGenerator::new(2));
        assert_eq!(a.sft_example(), b.sft_example_styled(SftStyle::Mixed));
        assert_eq!(SftStyle::parse("length"), Some(SftStyle::Length));
        assert_eq!(SftStyle::parse("len"), None);
    }
}
