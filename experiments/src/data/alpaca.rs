//! AlpacaFarm `sft` split: `instruction`, `input` (may be empty), `output`.

use super::{read_records, DataError, SftExample};
use serde_json::{json, Value};
use std::path::Path;

const FORMAT: &str = "AlpacaFarm rows need `instruction` and `output` (strings) and may have \
                      `input` (string, empty or absent when there is none)";

/// The user turn of an AlpacaFarm example: the instruction, plus `"\n" + input` when
/// the input is non-empty.
pub fn alpaca_user_content(instruction: &str, input: &str) -> String {
    if input.is_empty() {
        instruction.to_string()
    } else {
        format!("{instruction}\n{input}")
    }
}

/// Reads AlpacaFarm SFT examples (parquet, JSONL or JSON array).
pub fn load_alpaca_sft(path: &Path) -> Result<Vec<SftExample>, DataError> {
    read_records(path)?
        .map(|record| {
            let record = record?;
            let view = record.view().with_format(FORMAT);
            let instruction = view.string("instruction")?;
            let input = view.opt_string("input")?.unwrap_or("");
            Ok(SftExample {
                prompt: alpaca_user_content(instruction, input),
                response: view.string("output")?.to_string(),
            })
        })
        .collect()
}

/// An AlpacaFarm row whose user turn is `example.prompt` (empty `input`).
pub fn alpaca_row(example: &SftExample) -> Value {
    json!({"instruction": example.prompt, "input": "", "output": example.response})
}
