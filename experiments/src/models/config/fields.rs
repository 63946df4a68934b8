//! Typed access to the fields of a `config.json` object, with errors that name the
//! file and the (dotted) field.

use crate::{Error, Result};
use serde_json::{Map, Value};

/// A JSON object read from `file`, with typed getters.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// Label of the file, used in error messages.
    pub file: &'a str,
    /// Dotted path of this object inside the file (`""` at the top).
    pub prefix: &'a str,
    obj: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    /// Wraps the top-level object of `file`.
    pub fn new(file: &'a str, obj: &'a Map<String, Value>) -> Self {
        Self {
            file,
            prefix: "",
            obj,
        }
    }

    /// Dotted name of `key` inside this object.
    pub fn path(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.prefix)
        }
    }

    /// An error about `key`.
    pub fn err(&self, key: &str, message: impl Into<String>) -> Error {
        Error::config(self.file, &self.path(key), message)
    }

    /// The raw value of `key`; JSON `null` counts as absent.
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.obj.get(key).filter(|v| !v.is_null())
    }

    /// The nested object at `key` (absent or `null`: `None`), whose errors use `prefix`.
    pub fn object(&self, key: &str, prefix: &'a str) -> Result<Option<Fields<'a>>> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Object(obj)) => Ok(Some(Fields {
                file: self.file,
                prefix,
                obj,
            })),
            Some(other) => Err(self.err(key, format!("expected an object, found {other}"))),
        }
    }

    /// An optional non-negative integer.
    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    self.err(key, format!("expected a non-negative integer, found {v}"))
                }),
        }
    }

    /// A required positive integer.
    pub fn positive(&self, key: &str) -> Result<usize> {
        match self.opt_usize(key)? {
            None => Err(self.err(key, "missing")),
            Some(0) => Err(self.err(key, "must be positive, found 0")),
            Some(n) => Ok(n),
        }
    }

    /// An optional number.
    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected a number, found {v}"))),
        }
    }

    /// A number where JSON `null` means "off": `default` when the key is absent,
    /// `None` when it is `null` (Gemma-2's soft-capping and sliding window).
    pub fn nullable_f64(&self, key: &str, default: Option<f64>) -> Result<Option<f64>> {
        match self.obj.get(key) {
            None => Ok(default),
            Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.err(key, format!("expected a number or null, found {v}"))),
        }
    }

    /// A required number.
    pub fn f64(&self, key: &str) -> Result<f64> {
        self.opt_f64(key)?.ok_or_else(|| self.err(key, "missing"))
    }

    /// A boolean, `default` when absent.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.raw(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.err(key, format!("expected true or false, found {other}"))),
        }
    }

    /// An optional string.
    pub fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.err(key, format!("expected a string, found {other}"))),
        }
    }

    /// Rejects a dropout probability other than zero: this crate trains without dropout.
    pub fn zero_dropout(&self, key: &str) -> Result<()> {
        match self.opt_f64(key)? {
            Some(p) if p != 0.0 => Err(self.err(
                key,
                format!("dropout {p} is not supported (only 0.0: training here uses no dropout)"),
            )),
            _ => Ok(()),
        }
    }
}

/// The single value given under several spellings of one setting: `None` when none is
/// present, an error naming both fields when two disagree.
pub fn agree(file: &str, found: &[(String, Option<f64>)]) -> Result<Option<f64>> {
    let mut first: Option<(&str, f64)> = None;
    for (name, value) in found {
        let Some(v) = *value else { continue };
        match first {
            None => first = Some((name, v)),
            Some((first_name, w)) if (v - w).abs() > 1e-9 * w.abs().max(1.0) => {
                return Err(Error::config(
                    file,
                    name,
                    format!("{v} disagrees with `{first_name}` = {w}"),
                ))
            }
            Some(_) => {}
        }
    }
    Ok(first.map(|(_, v)| v))
}
