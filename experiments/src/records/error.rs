//! Errors of reading a record: each names the file and, for JSON lines, the line.

use std::path::{Path, PathBuf};

/// A record file is missing, unreadable or not in its documented format.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file does not exist.
    #[error("{path}: missing input ({what})")]
    Missing {
        /// The file that was expected.
        path: PathBuf,
        /// What it should hold and which stage writes it.
        what: String,
    },
    /// Reading the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The JSON does not parse into the record type.
    #[error("{path}{}{}: {source}", line_suffix(*line), field_suffix(field))]
    Json {
        /// The file.
        path: PathBuf,
        /// The 1-based line of a JSON-lines file.
        line: Option<usize>,
        /// The path of the offending field (`rewards.gt.intervals`; `.` for the whole
        /// value).
        field: String,
        /// The parser's error (what was expected, and the column).
        source: serde_json::Error,
    },
    /// The JSON parses but breaks a rule of the format.
    #[error("{path}{}: {message}", line_suffix(*line))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The 1-based line of a JSON-lines file.
        line: Option<usize>,
        /// Which rule, and the value that breaks it.
        message: String,
    },
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(" line {l}")).unwrap_or_default()
}

fn field_suffix(field: &str) -> String {
    if field == "." {
        String::new()
    } else {
        format!(": field `{field}`")
    }
}

/// Parses `text` (the file `path`, or its 1-based `line`) into `T`; an error names the
/// field path as well as the file.
pub(crate) fn parse_record<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
    line: Option<usize>,
) -> Result<T, RecordError> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let json = |field: String, source: serde_json::Error| RecordError::Json {
        path: path.to_path_buf(),
        line,
        field,
        source,
    };
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let field = e.path().to_string();
        json(field, e.into_inner())
    })?;
    de.end().map_err(|e| json(".".into(), e))?;
    Ok(value)
}

/// The file's text; a missing file is [`RecordError::Missing`] saying `what` it holds.
pub(crate) fn read_text(path: &Path, what: &str) -> Result<String, RecordError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(RecordError::Missing {
            path: path.to_path_buf(),
            what: what.to_string(),
        }),
        Err(source) => Err(RecordError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Outer {
        #[allow(dead_code)]
        rows: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    struct Inner {
        #[allow(dead_code)]
        value: f64,
    }

    #[test]
    fn a_type_error_names_file_line_and_field_path() {
        let path = Path::new("run/pg/gt/seed0/eval.jsonl");
        let text = r#"{"rows": [{"value": 1.0}, {"value": "0.3"}]}"#;
        let e = parse_record::<Outer>(text, path, Some(4)).unwrap_err();
        let message = e.to_string();
        assert!(
            message.starts_with("run/pg/gt/seed0/eval.jsonl line 4: field `rows[1].value`: "),
            "{message}"
        );
        assert!(message.contains("expected f64"), "{message}");
        let e = parse_record::<Outer>("{\"rows\": []} x", path, None).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("run/pg/gt/seed0/eval.jsonl: trailing"),
            "{e}"
        );
        assert!(parse_record::<Outer>(r#"{"rows": [{"value": 2}]}"#, path, None).is_ok());
    }
}
