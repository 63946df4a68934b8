//! Generic JSONL files: prompts (`{"prompt": ...}`) and pairs (`{"prompt", "chosen",
//! "rejected"}`, responses as strings), and a JSONL writer.

use super::ultrafeedback::parse_pair;
use super::{read_records, DataError, PreferencePair, PromptRecord};
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

const PROMPTS_FORMAT: &str = "prompt files need a string column `prompt`";
const PAIRS_FORMAT: &str = "pair files need `prompt`, `chosen` and `rejected` (strings or \
                            message lists) and may have `score_chosen`, `score_rejected`";

/// Reads a prompts file (any format [`read_records`] reads).
pub fn load_prompts(path: &Path) -> Result<Vec<PromptRecord>, DataError> {
    read_records(path)?
        .map(|record| {
            let record = record?;
            let view = record.view().with_format(PROMPTS_FORMAT);
            Ok(PromptRecord {
                prompt: view.string("prompt")?.to_string(),
            })
        })
        .collect()
}

/// Reads a pairs file (any format [`read_records`] reads).
pub fn load_pairs(path: &Path) -> Result<Vec<PreferencePair>, DataError> {
    read_records(path)?
        .map(|record| parse_pair(record?.view().with_format(PAIRS_FORMAT)))
        .collect()
}

/// A prompts-file row.
pub fn prompt_row(prompt: &PromptRecord) -> Value {
    json!({"prompt": prompt.prompt})
}

/// A pairs-file row (scores written only when present).
pub fn pair_row(pair: &PreferencePair) -> Value {
    let mut row = json!({"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected});
    for (key, score) in [
        ("score_chosen", pair.score_chosen),
        ("score_rejected", pair.score_rejected),
    ] {
        if let Some(s) = score {
            row[key] = json!(s);
        }
    }
    row
}

/// Writes `rows` to `path` as JSONL, one object a line, atomically (a temporary file
/// renamed into place); creates the parent directory. Returns the number of rows.
pub fn write_jsonl<I>(path: &Path, rows: I) -> Result<usize, DataError>
where
    I: IntoIterator<Item = Value>,
{
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| DataError::io(parent, e))?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp_name);
    let file = std::fs::File::create(&tmp).map_err(|e| DataError::io(&tmp, e))?;
    let mut out = std::io::BufWriter::new(file);
    let mut n = 0;
    for row in rows {
        writeln!(out, "{row}").map_err(|e| DataError::io(&tmp, e))?;
        n += 1;
    }
    out.flush().map_err(|e| DataError::io(&tmp, e))?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))?;
    Ok(n)
}
