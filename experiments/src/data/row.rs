//! [`RowView`]: typed access to a record's columns with errors that name the file,
//! the row, the column, and what the format expects.

use super::DataError;
use crate::text::Message;
use serde_json::{Map, Value};
use std::path::Path;

/// A borrowed row with typed column accessors.
#[derive(Debug, Clone, Copy)]
pub struct RowView<'a> {
    file: &'a Path,
    row: usize,
    fields: &'a Map<String, Value>,
    format: &'a str,
}

impl<'a> RowView<'a> {
    /// A view of `fields`, row `row` (1-based) of `file`.
    pub fn new(file: &'a Path, row: usize, fields: &'a Map<String, Value>) -> Self {
        Self {
            file,
            row,
            fields,
            format: "",
        }
    }

    /// The same view, with `format` (e.g. "UltraFeedback-binarized rows need columns
    /// prompt, chosen, rejected, ...") added to the hint of every error.
    pub fn with_format(mut self, format: &'a str) -> Self {
        self.format = format;
        self
    }

    /// An error about `column`.
    pub fn error(&self, column: &str, message: impl Into<String>, hint: &str) -> DataError {
        let hint = match (hint.is_empty(), self.format.is_empty()) {
            (true, true) => "fix or remove the row".to_string(),
            (false, true) => hint.to_string(),
            (true, false) => self.format.to_string(),
            (false, false) => format!("{hint}; {}", self.format),
        };
        DataError::Row {
            file: self.file.to_path_buf(),
            row: self.row,
            column: column.to_string(),
            message: message.into(),
            hint,
        }
    }

    /// The raw value of `column`, or a "missing column" error.
    pub fn value(&self, column: &str) -> Result<&'a Value, DataError> {
        self.fields.get(column).ok_or_else(|| {
            let mut present: Vec<&str> = self.fields.keys().map(String::as_str).collect();
            present.sort_unstable();
            self.error(
                column,
                "missing column",
                &format!("the row has columns [{}]", present.join(", ")),
            )
        })
    }

    /// A required string column.
    pub fn string(&self, column: &str) -> Result<&'a str, DataError> {
        let v = self.value(column)?;
        v.as_str()
            .ok_or_else(|| self.wrong_type(column, "a string", v))
    }

    /// An optional string column: absent or null gives `None`.
    pub fn opt_string(&self, column: &str) -> Result<Option<&'a str>, DataError> {
        match self.fields.get(column) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong_type(column, "a string or null", v)),
        }
    }

    /// A required numeric column.
    pub fn f64(&self, column: &str) -> Result<f64, DataError> {
        let v = self.value(column)?;
        v.as_f64()
            .ok_or_else(|| self.wrong_type(column, "a number", v))
    }

    /// An optional numeric column: absent or null gives `None`.
    pub fn opt_f64(&self, column: &str) -> Result<Option<f64>, DataError> {
        match self.fields.get(column) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(column, "a number or null", v)),
        }
    }

    /// A column holding a list of `{role, content}` messages.
    pub fn messages(&self, column: &str) -> Result<Vec<Message>, DataError> {
        let v = self.value(column)?;
        let items = v
            .as_array()
            .ok_or_else(|| self.wrong_type(column, "a list of {role, content} messages", v))?;
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let field = |key: &str| {
                    item.get(key).and_then(Value::as_str).ok_or_else(|| {
                        self.error(
                            &format!("{column}[{i}].{key}"),
                            format!("expected a string, found {}", describe(item.get(key))),
                            "each message is an object with string fields `role` and `content`",
                        )
                    })
                };
                Ok(Message::new(field("role")?, field("content")?))
            })
            .collect()
    }

    /// A response column: a string, or a message list whose last message is the
    /// assistant's reply (UltraFeedback's `[user, assistant]` lists).
    pub fn response(&self, column: &str) -> Result<String, DataError> {
        let v = self.value(column)?;
        if let Some(s) = v.as_str() {
            return Ok(s.to_string());
        }
        if !v.is_array() {
            return Err(self.wrong_type(column, "a string or a list of messages", v));
        }
        let messages = self.messages(column)?;
        match messages.last() {
            Some(m) if m.role == "assistant" => Ok(m.content.clone()),
            Some(m) => Err(self.error(
                column,
                format!("the last message has role `{}`", m.role),
                "the response must be the last message, with role `assistant`",
            )),
            None => Err(self.error(
                column,
                "the message list is empty",
                "expected [user, assistant] messages",
            )),
        }
    }

    fn wrong_type(&self, column: &str, expected: &str, found: &Value) -> DataError {
        self.error(
            column,
            format!("expected {expected}, found {}", type_name(found)),
            "",
        )
    }
}

/// A short name of a JSON value's type, for error messages.
pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn describe(v: Option<&Value>) -> &'static str {
    v.map_or("nothing (missing)", type_name)
}
