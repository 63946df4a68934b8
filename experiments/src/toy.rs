//! A synthetic toy world for CPU presets: a word-level tokenizer built here, tiny
//! GPT-NeoX and Llama `config.json`s, a small instruction language whose ground-truth
//! reward is a cheap function, seeded generators of prompts, SFT responses and
//! off-policy preference pairs, and a writer that lays the whole world out on disk in
//! the same formats as real data, so every downstream loader is exercised.
//!
//! # The language
//! A prompt asks for a number of words on a topic, e.g. `write five words about
//! animals` or `give me three weather words`. A response is a space-separated list of
//! words. [`ToyReward`] scores it in [-1, 1] from three parts: the fraction of words on
//! the topic, how close the length is to the requested count, and the fraction of
//! distinct words.

mod configs;
mod generate;
mod language;
mod reward;
mod tokenizer;
mod world;

pub use configs::{gpt_neox_config, llama_config, ToyModelSize, ToyTokenIds};
pub use generate::{longest_exchange_tokens, ResponseStyle, SftStyle, ToyGenerator};
pub use language::{ToyTask, COUNT_WORDS, FILLER_WORDS, PROMPT_VARIANTS, PROMPT_WORDS, TOPICS};
pub use reward::{GroundTruth, ToyReward};
pub use tokenizer::{toy_tokenizer, toy_vocabulary, EOS_TOKEN, PAD_TOKEN, UNK_TOKEN};
pub use world::{write_toy_world, ToyWorldPaths, ToyWorldSpec};
