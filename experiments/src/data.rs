//! Datasets as downloaded: UltraFeedback-binarized preference pairs and AlpacaFarm SFT
//! examples (parquet, JSONL or a JSON array), generic prompt and pair JSONL files, the
//! token-length filter, and seeded splits and permutations.
//!
//! Every reader reports a missing column or a malformed row as a [`DataError::Row`]
//! naming the file, the 1-based row (the line, for JSONL) and the column.

mod alpaca;
mod error;
mod filter;
mod generic;
mod parquet_rows;
mod records;
mod row;
mod source;
mod split;
mod ultrafeedback;

pub use alpaca::{alpaca_row, alpaca_user_content, load_alpaca_sft};
pub use error::DataError;
pub use filter::{filter_max_tokens, Filtered, TextFields};
pub use generic::{load_pairs, load_prompts, pair_row, prompt_row, write_jsonl};
pub use records::{PreferencePair, PromptRecord, SftExample};
pub use row::RowView;
pub use source::{read_records, Record, Records};
pub use split::{permutation, split_by_fraction, split_count, PromptMix};
pub use ultrafeedback::{load_ultrafeedback, ultrafeedback_row};
