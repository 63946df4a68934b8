//! Result tables, written as markdown, CSV (RFC 4180) and JSON.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Number, Value};

use super::atomic::write_atomic;
use super::cell::{Cell, DEFAULT_PRECISION};
use super::error::ReportError;

/// What markdown shows for a [`Cell::Missing`].
const MARKDOWN_MISSING: &str = "—";

/// A titled table of results.
///
/// Build it with [`Table::new`] and [`Table::push_row`] (which checks row
/// lengths and column names); the fields are public for inspection, and
/// [`Table::validate`] re-checks a table whose fields were edited directly.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Title, written as a heading in markdown and as `"title"` in JSON.
    pub title: String,
    /// Column names; unique, since JSON rows are keyed by them.
    pub columns: Vec<String>,
    /// Rows, each with one cell per column.
    pub rows: Vec<Vec<Cell>>,
    /// Significant digits of floats in markdown and CSV (JSON keeps full precision).
    pub precision: usize,
}

impl Table {
    /// An empty table with floats written to [`DEFAULT_PRECISION`] significant digits.
    pub fn new<S: Into<String>>(
        title: impl Into<String>,
        columns: impl IntoIterator<Item = S>,
    ) -> Self {
        Self {
            title: title.into(),
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
            precision: DEFAULT_PRECISION,
        }
    }

    /// The same table with floats written to `significant_digits` (clamped to 1..=17).
    pub fn with_precision(mut self, significant_digits: usize) -> Self {
        self.precision = significant_digits.clamp(1, 17);
        self
    }

    /// Appends a row.
    ///
    /// # Errors
    /// [`ReportError::RowLength`] if the row does not have one cell per
    /// column; [`ReportError::DuplicateColumn`] if two columns share a name.
    pub fn push_row(&mut self, row: Vec<Cell>) -> Result<(), ReportError> {
        self.check_columns()?;
        check_row_length(&row, self.columns.len())?;
        self.rows.push(row);
        Ok(())
    }

    /// Checks that column names are unique and every row has one cell per column.
    ///
    /// # Errors
    /// [`ReportError::DuplicateColumn`] or [`ReportError::RowLength`].
    pub fn validate(&self) -> Result<(), ReportError> {
        self.check_columns()?;
        self.rows
            .iter()
            .try_for_each(|row| check_row_length(row, self.columns.len()))
    }

    /// Fails on the first repeated column name.
    fn check_columns(&self) -> Result<(), ReportError> {
        let mut seen = HashSet::new();
        match self.columns.iter().find(|c| !seen.insert(c.as_str())) {
            Some(name) => Err(ReportError::DuplicateColumn { name: name.clone() }),
            None => Ok(()),
        }
    }

    /// Whether every present cell of column `j` is a number (and one is present).
    fn is_numeric_column(&self, j: usize) -> bool {
        let mut present = self
            .rows
            .iter()
            .filter_map(|row| row.get(j))
            .filter(|c| **c != Cell::Missing)
            .peekable();
        present.peek().is_some() && present.all(Cell::is_numeric)
    }

    /// A GitHub-flavoured markdown table, preceded by `### title` when the
    /// title is non-empty. Numeric columns are right-aligned; missing cells
    /// show as `—`; `|`, `\` and line breaks in text are escaped.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        if let Some(title) = self.markdown_title() {
            out.push_str(&format!("### {title}\n\n"));
        }
        out.push_str(&self.markdown_rows());
        out
    }

    /// The title escaped for markdown (the text of [`Table::to_markdown`]'s heading),
    /// or `None` for an untitled table.
    pub fn markdown_title(&self) -> Option<String> {
        (!self.title.is_empty()).then(|| escape_markdown(&self.title))
    }

    /// [`Table::to_markdown`] without the title: header, rule and rows, one line each.
    pub fn markdown_rows(&self) -> String {
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| escape_markdown(c)).collect();
        out.push_str(&markdown_line(&header));
        let rule: Vec<String> = (0..self.columns.len())
            .map(|j| {
                if self.is_numeric_column(j) {
                    "---:"
                } else {
                    "---"
                }
                .to_owned()
            })
            .collect();
        out.push_str(&markdown_line(&rule));
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .map(|cell| match cell {
                    Cell::Missing => MARKDOWN_MISSING.to_owned(),
                    other => escape_markdown(&other.to_text(self.precision)),
                })
                .collect();
            out.push_str(&markdown_line(&cells));
        }
        out
    }

    /// CSV per RFC 4180: a header line of column names, then one line per
    /// row, CRLF line endings, fields quoted when they contain a comma, a
    /// double quote or a line break (quotes doubled). Missing cells are empty
    /// fields. The title is not part of the CSV.
    pub fn to_csv(&self) -> String {
        let mut out = csv_line(self.columns.iter().map(|c| csv_field(c)));
        for row in &self.rows {
            out.push_str(&csv_line(
                row.iter()
                    .map(|cell| csv_field(&cell.to_text(self.precision))),
            ));
        }
        out
    }

    /// JSON `{"title": ..., "columns": [...], "rows": [{column: value}, ...]}`.
    ///
    /// Floats keep full precision; missing cells and non-finite floats are
    /// `null`. Column order is given by `"columns"` (objects are unordered).
    pub fn to_json(&self) -> Value {
        let rows = self
            .rows
            .iter()
            .map(|row| {
                let object: Map<String, Value> = self
                    .columns
                    .iter()
                    .cloned()
                    .zip(row.iter().map(cell_to_json))
                    .collect();
                Value::Object(object)
            })
            .collect();
        serde_json::json!({
            "title": self.title,
            "columns": self.columns,
            "rows": Value::Array(rows),
        })
    }

    /// Parses the JSON written by [`Table::to_json`] (precision is reset to
    /// the default, since JSON does not record it). A key absent from a row
    /// is a missing cell; integers become [`Cell::Int`], other numbers
    /// [`Cell::Float`].
    ///
    /// # Errors
    /// [`ReportError::InvalidJson`] for anything else, including a row key
    /// that is not a column; [`ReportError::DuplicateColumn`].
    pub fn from_json(value: &Value) -> Result<Self, ReportError> {
        let title = value
            .get("title")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_json("missing string \"title\""))?;
        let columns: Vec<String> = value
            .get("columns")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid_json("missing array \"columns\""))?
            .iter()
            .map(|c| {
                c.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| invalid_json("column names must be strings"))
            })
            .collect::<Result<_, _>>()?;
        let mut table = Self::new(title, columns);
        table.check_columns()?;
        let rows = value
            .get("rows")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid_json("missing array \"rows\""))?;
        for (i, row) in rows.iter().enumerate() {
            let row = table.row_from_json(i, row)?;
            table.rows.push(row);
        }
        Ok(table)
    }

    /// Parses row `i` of a JSON table.
    fn row_from_json(&self, i: usize, row: &Value) -> Result<Vec<Cell>, ReportError> {
        let object = row
            .as_object()
            .ok_or_else(|| invalid_json(format!("row {i} is not an object")))?;
        if let Some(key) = object.keys().find(|k| !self.columns.contains(k)) {
            return Err(invalid_json(format!("row {i} has unknown column {key:?}")));
        }
        self.columns
            .iter()
            .map(|c| match object.get(c) {
                None => Ok(Cell::Missing),
                Some(v) => cell_from_json(v).ok_or_else(|| {
                    invalid_json(format!("row {i}, column {c:?}: unsupported value {v}"))
                }),
            })
            .collect()
    }

    /// Writes `stem.md`, `stem.csv` and `stem.json` into `dir` (created if
    /// needed), each atomically with [`write_atomic`], and returns their paths
    /// in that order.
    ///
    /// # Errors
    /// [`ReportError::InvalidStem`] unless `stem` is a plain file name;
    /// [`ReportError::DuplicateColumn`] or [`ReportError::RowLength`] from
    /// [`Table::validate`]; [`ReportError::Io`] naming the path that failed.
    pub fn write_all(&self, dir: &Path, stem: &str) -> Result<Vec<PathBuf>, ReportError> {
        check_stem(stem)?;
        self.validate()?;
        std::fs::create_dir_all(dir).map_err(|source| ReportError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut json = serde_json::to_string_pretty(&self.to_json())
            .map_err(|e| invalid_json(e.to_string()))?;
        json.push('\n');
        let outputs = [
            ("md", self.to_markdown()),
            ("csv", self.to_csv()),
            ("json", json),
        ];
        outputs
            .into_iter()
            .map(|(extension, text)| {
                let path = dir.join(format!("{stem}.{extension}"));
                write_atomic(&path, text.as_bytes())
                    .map(|()| path.clone())
                    .map_err(|source| ReportError::Io { path, source })
            })
            .collect()
    }
}

/// Fails unless `row` has `columns` cells.
fn check_row_length(row: &[Cell], columns: usize) -> Result<(), ReportError> {
    if row.len() == columns {
        Ok(())
    } else {
        Err(ReportError::RowLength {
            expected: columns,
            got: row.len(),
        })
    }
}

/// Fails unless `stem` is a non-empty file name that stays in its directory.
fn check_stem(stem: &str) -> Result<(), ReportError> {
    let bad = stem.is_empty() || stem == "." || stem == ".." || stem.contains(['/', '\\', '\0']);
    if bad {
        Err(ReportError::InvalidStem {
            stem: stem.to_owned(),
        })
    } else {
        Ok(())
    }
}

/// A [`ReportError::InvalidJson`] with the given reason.
fn invalid_json(reason: impl Into<String>) -> ReportError {
    ReportError::InvalidJson {
        reason: reason.into(),
    }
}

/// One cell as a JSON value (non-finite floats and missing cells are `null`).
fn cell_to_json(cell: &Cell) -> Value {
    match cell {
        Cell::Text(s) => Value::String(s.clone()),
        Cell::Int(i) => Value::from(*i),
        Cell::Float(x) => Number::from_f64(*x).map_or(Value::Null, Value::Number),
        Cell::Missing => Value::Null,
    }
}

/// One JSON value as a cell, or `None` for booleans, arrays and objects.
fn cell_from_json(value: &Value) -> Option<Cell> {
    match value {
        Value::Null => Some(Cell::Missing),
        Value::String(s) => Some(Cell::Text(s.clone())),
        Value::Number(n) => n
            .as_i64()
            .map(Cell::Int)
            .or_else(|| n.as_f64().map(Cell::Float)),
        Value::Bool(_) | Value::Array(_) | Value::Object(_) => None,
    }
}

/// Escapes text for a markdown table cell.
fn escape_markdown(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace(['\n', '\r'], "<br>")
}

/// `| a | b |` followed by a newline.
fn markdown_line(cells: &[String]) -> String {
    format!("| {} |\n", cells.join(" | "))
}

/// Quotes a CSV field if it contains a comma, a double quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// Fields joined by commas, ended by CRLF.
fn csv_line(fields: impl Iterator<Item = String>) -> String {
    let mut line = fields.collect::<Vec<_>>().join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(
            "Accuracy vs variance",
            ["reward model", "accuracy", "n", "t_gamma"],
        );
        t.push_row(vec![
            "RM \"a\", v1".into(),
            0.8125.into(),
            10i64.into(),
            Some(1.5).into(),
        ])
        .unwrap();
        t.push_row(vec![
            "line\nbreak | pipe".into(),
            1.0e-7.into(),
            (-3i64).into(),
            None::<f64>.into(),
        ])
        .unwrap();
        t
    }

    #[test]
    fn markdown() {
        let expected = "### Accuracy vs variance\n\n\
            | reward model | accuracy | n | t_gamma |\n\
            | --- | ---: | ---: | ---: |\n\
            | RM \"a\", v1 | 0.8125 | 10 | 1.500 |\n\
            | line<br>break \\| pipe | 1.000e-7 | -3 | — |\n";
        assert_eq!(sample().to_markdown(), expected);
        let two = sample().with_precision(2).to_markdown();
        assert!(two.contains("| 0.81 |") && two.contains("| 1.5 |"));
    }

    #[test]
    fn csv_quotes_per_rfc_4180() {
        let expected = "reward model,accuracy,n,t_gamma\r\n\
            \"RM \"\"a\"\", v1\",0.8125,10,1.500\r\n\
            \"line\nbreak | pipe\",1.000e-7,-3,\r\n";
        assert_eq!(sample().to_csv(), expected);
    }

    #[test]
    fn json_shape_and_round_trip() {
        let t = sample();
        let json = t.to_json();
        assert_eq!(json["title"], "Accuracy vs variance");
        assert_eq!(json["rows"][0]["accuracy"], 0.8125);
        assert_eq!(json["rows"][0]["n"], 10);
        assert!(json["rows"][1]["t_gamma"].is_null());
        let text = serde_json::to_string(&json).unwrap();
        let back = Table::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
        assert_eq!(back, t);
        // Non-finite floats become null, hence missing.
        let mut inf = Table::new("", ["kl"]);
        inf.push_row(vec![f64::INFINITY.into()]).unwrap();
        assert!(inf.to_json()["rows"][0]["kl"].is_null());
        assert_eq!(inf.to_markdown(), "| kl |\n| ---: |\n| inf |\n");
    }

    #[test]
    fn bad_rows_and_json_are_errors() {
        let mut t = Table::new("t", ["a", "b"]);
        assert!(matches!(
            t.push_row(vec![Cell::Int(1)]),
            Err(ReportError::RowLength {
                expected: 2,
                got: 1
            })
        ));
        let mut dup = Table::new("t", ["a", "a"]);
        assert!(matches!(
            dup.push_row(vec![Cell::Missing; 2]),
            Err(ReportError::DuplicateColumn { .. })
        ));
        for bad in [
            serde_json::json!({"columns": [], "rows": []}),
            serde_json::json!({"title": "t", "columns": ["a"], "rows": [{"b": 1}]}),
            serde_json::json!({"title": "t", "columns": ["a"], "rows": [{"a": true}]}),
            serde_json::json!({"title": "t", "columns": ["a"], "rows": [[1]]}),
        ] {
            assert!(
                matches!(Table::from_json(&bad), Err(ReportError::InvalidJson { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn write_all_writes_three_files() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("tables");
        let paths = sample().write_all(&out, "accuracy").unwrap();
        let names: Vec<_> = paths
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap())
            .collect();
        assert_eq!(names, ["accuracy.md", "accuracy.csv", "accuracy.json"]);
        assert_eq!(
            std::fs::read_to_string(&paths[1]).unwrap(),
            sample().to_csv()
        );
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(&paths[2]).unwrap()).unwrap();
        assert_eq!(Table::from_json(&json).unwrap(), sample());
        for stem in ["", "..", "a/b"] {
            assert!(matches!(
                sample().write_all(&out, stem),
                Err(ReportError::InvalidStem { .. })
            ));
        }
        let mut broken = sample();
        broken.rows[0].pop();
        assert!(matches!(
            broken.write_all(&out, "x"),
            Err(ReportError::RowLength { .. })
        ));
    }
}
