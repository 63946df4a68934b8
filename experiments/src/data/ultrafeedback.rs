//! UltraFeedback-binarized (`train_prefs` / `test_prefs`, one file per split):
//! `prompt` (string), `chosen` and `rejected` (`[user, assistant]` message lists),
//! `score_chosen`, `score_rejected`.

use super::{read_records, DataError, PreferencePair, RowView};
use serde_json::{json, Value};
use std::path::Path;

const FORMAT: &str = "UltraFeedback-binarized rows need `prompt` (string), `chosen` and \
                      `rejected` ([user, assistant] message lists, or strings), and may have \
                      `score_chosen`, `score_rejected` (numbers)";

/// Reads one UltraFeedback-binarized split (parquet, JSONL or JSON). The response of
/// `chosen`/`rejected` is the last (assistant) message; a plain string is accepted too.
/// Scores are optional (absent or null gives `None`).
pub fn load_ultrafeedback(path: &Path) -> Result<Vec<PreferencePair>, DataError> {
    read_records(path)?
        .map(|record| parse_pair(record?.view().with_format(FORMAT)))
        .collect()
}

/// Parses a pair row (`prompt`, `chosen`, `rejected`, optional scores).
pub(crate) fn parse_pair(view: RowView<'_>) -> Result<PreferencePair, DataError> {
    Ok(PreferencePair {
        prompt: view.string("prompt")?.to_string(),
        chosen: view.response("chosen")?,
        rejected: view.response("rejected")?,
        score_chosen: view.opt_f64("score_chosen")?,
        score_rejected: view.opt_f64("score_rejected")?,
    })
}

/// `pair` as an UltraFeedback-binarized row (with the `messages` column, a copy of
/// `chosen`, as the published files have).
pub fn ultrafeedback_row(pair: &PreferencePair) -> Value {
    let conversation = |response: &str| {
        json!([
            {"role": "user", "content": pair.prompt},
            {"role": "assistant", "content": response},
        ])
    };
    json!({
        "prompt": pair.prompt,
        "chosen": conversation(&pair.chosen),
        "rejected": conversation(&pair.rejected),
        "messages": conversation(&pair.chosen),
        "score_chosen": pair.score_chosen,
        "score_rejected": pair.score_rejected,
    })
}
