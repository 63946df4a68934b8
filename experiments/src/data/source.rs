//! Reading a dataset file as a stream of JSON-object records, whatever its format:
//! JSONL (`.jsonl`), a JSON array or JSONL (`.json`), or parquet (`.parquet`).

use super::parquet_rows::row_to_map;
use super::{DataError, RowView};
use parquet::file::reader::SerializedFileReader;
use serde_json::{Map, Value};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::Arc;

/// One row of a dataset file.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The file it came from.
    pub file: Arc<Path>,
    /// 1-based row number (for JSONL, the line number).
    pub row: usize,
    /// The row's columns.
    pub fields: Map<String, Value>,
}

impl Record {
    /// A typed view for reading columns with errors that name file, row and column.
    pub fn view(&self) -> RowView<'_> {
        RowView::new(&self.file, self.row, &self.fields)
    }
}

/// A stream of records; each item is a record or the error that stopped the stream.
pub type Records = Box<dyn Iterator<Item = Result<Record, DataError>>>;

/// Opens `path` and streams its rows. The format follows the extension: `.parquet`,
/// `.jsonl`, or `.json` (a JSON array of objects, or JSONL).
pub fn read_records(path: &Path) -> Result<Records, DataError> {
    let file: Arc<Path> = Arc::from(path);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("parquet") => read_parquet(file),
        Some("jsonl") => read_jsonl(file),
        Some("json") => read_json(file),
        _ => Err(DataError::File {
            file: path.to_path_buf(),
            message: "unknown dataset format; use a .parquet, .jsonl or .json file".into(),
        }),
    }
}

fn read_parquet(file: Arc<Path>) -> Result<Records, DataError> {
    let handle = File::open(&file).map_err(|e| DataError::io(file.to_path_buf(), e))?;
    let reader = SerializedFileReader::new(handle).map_err(|e| DataError::File {
        file: file.to_path_buf(),
        message: format!("cannot read as parquet: {e}"),
    })?;
    let rows = reader.into_iter().enumerate().map(move |(i, row)| {
        let row_no = i + 1;
        match row {
            Ok(row) => Ok(Record {
                file: file.clone(),
                row: row_no,
                fields: row_to_map(row),
            }),
            Err(e) => Err(DataError::Row {
                file: file.to_path_buf(),
                row: row_no,
                column: "<row>".into(),
                message: format!("cannot decode the row: {e}"),
                hint: "the parquet file may be truncated or use an unsupported codec \
                       (supported: uncompressed, snappy, zstd)"
                    .into(),
            }),
        }
    });
    Ok(Box::new(rows))
}

fn read_jsonl(file: Arc<Path>) -> Result<Records, DataError> {
    let handle = File::open(&file).map_err(|e| DataError::io(file.to_path_buf(), e))?;
    let lines = BufReader::new(handle).lines().enumerate();
    let rows = lines.filter_map(move |(i, line)| {
        let row = i + 1;
        let line = match line {
            Ok(l) => l,
            Err(e) => return Some(Err(DataError::io(file.to_path_buf(), e))),
        };
        if line.trim().is_empty() {
            return None;
        }
        Some(parse_object(&file, row, &line))
    });
    Ok(Box::new(rows))
}

fn read_json(file: Arc<Path>) -> Result<Records, DataError> {
    let text = std::fs::read_to_string(&file).map_err(|e| DataError::io(file.to_path_buf(), e))?;
    if !text.trim_start().starts_with('[') {
        return read_jsonl(file);
    }
    let value: Value = serde_json::from_str(&text).map_err(|e| DataError::File {
        file: file.to_path_buf(),
        message: format!("invalid JSON array: {e}"),
    })?;
    let Value::Array(items) = value else {
        return Err(DataError::File {
            file: file.to_path_buf(),
            message: "expected a JSON array of objects".into(),
        });
    };
    let rows = items
        .into_iter()
        .enumerate()
        .map(move |(i, item)| match item {
            Value::Object(fields) => Ok(Record {
                file: file.clone(),
                row: i + 1,
                fields,
            }),
            other => Err(not_an_object(&file, i + 1, &other)),
        });
    Ok(Box::new(rows))
}

fn parse_object(file: &Arc<Path>, row: usize, line: &str) -> Result<Record, DataError> {
    match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(fields)) => Ok(Record {
            file: file.clone(),
            row,
            fields,
        }),
        Ok(other) => Err(not_an_object(file, row, &other)),
        Err(e) => Err(DataError::Row {
            file: file.to_path_buf(),
            row,
            column: "<row>".into(),
            message: format!("invalid JSON: {e}"),
            hint: "each line must hold one JSON object".into(),
        }),
    }
}

fn not_an_object(file: &Path, row: usize, value: &Value) -> DataError {
    DataError::Row {
        file: file.to_path_buf(),
        row,
        column: "<row>".into(),
        message: format!(
            "expected a JSON object, found {}",
            super::row::type_name(value)
        ),
        hint: "each row must be an object mapping column names to values".into(),
    }
}
