//! Reading the input of `rmteach theory flow`: one instance (a JSON object) or a batch
//! (a non-empty array of them), deserialised straight from the text (no intermediate
//! `serde_json::Value`, which costs more than the parse itself for large vectors) with
//! the path of the value being read tracked, so that every error names its field.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use super::de::{mismatch, Seed};
use super::TabularInstance;
use crate::{Result, TheoryError};

/// The instances of an instance file, each with its optional `name`.
#[derive(Debug, Clone)]
pub struct InstanceFile {
    batch: bool,
    instances: Vec<TabularInstance>,
    names: Vec<Option<String>>,
}

impl InstanceFile {
    /// Reads the instances of an instance file's text and validates each
    /// ([`TabularInstance::validate`]). An error names the field as a path (`gamma`,
    /// `r_rm[2]`; in a batch `[3].gamma`) and says what is wrong; a JSON error also
    /// gives the line and column. Duplicate keys and unknown keys are errors; so is an
    /// empty batch. Besides the instance's keys an object may have a `name` (a string)
    /// that labels its result.
    pub fn parse(text: &str) -> Result<Self> {
        // Without tracking the path first (tracking costs time on every number of a
        // large instance); when that fails, again with it, for the field's name.
        let file: InstanceFile = match serde_json::from_str(text) {
            Ok(file) => file,
            Err(e) => return Err(path_error(text).unwrap_or_else(|| json_error(".", &e))),
        };
        if file.instances.is_empty() {
            return Err(TheoryError::invalid(
                "[]",
                "the batch is empty: give one instance (an object) or an array of at least one",
            ));
        }
        for (i, inst) in file.instances.iter().enumerate() {
            inst.validate().map_err(|e| match file.batch {
                true => in_batch(i, e),
                false => e,
            })?;
        }
        Ok(file)
    }

    /// Whether the file holds a batch (an array), even of one instance.
    pub fn is_batch(&self) -> bool {
        self.batch
    }

    /// The instances, in file order.
    pub fn instances(&self) -> &[TabularInstance] {
        &self.instances
    }

    /// The `name` of instance `i`, if it has one.
    pub fn name(&self, i: usize) -> Option<&str> {
        self.names.get(i)?.as_deref()
    }
}

/// The error of a text that does not deserialise, with the path to the value it is
/// in; `None` if the text deserialises after all.
fn path_error(text: &str) -> Option<TheoryError> {
    let mut de = serde_json::Deserializer::from_str(text);
    match serde_path_to_error::deserialize::<_, InstanceFile>(&mut de) {
        Err(e) => Some(json_error(&e.path().to_string(), e.inner())),
        Ok(_) => de.end().err().map(|e| json_error(".", &e)),
    }
}

/// The error of instance `i` of a batch: its field becomes `[i].field`.
fn in_batch(i: usize, e: TheoryError) -> TheoryError {
    match e {
        TheoryError::InvalidInput { field, reason } => TheoryError::InvalidInput {
            field: format!("[{i}].{field}"),
            reason,
        },
        other => other,
    }
}

/// A JSON error at `path` (`.` for the top level) as an invalid-input error naming
/// the path, what is wrong, and the line and column.
fn json_error(path: &str, e: &serde_json::Error) -> TheoryError {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&position).unwrap_or(&text);
    let kind = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
            "not valid JSON: "
        }
        _ => "",
    };
    let field = if path == "." { "(top level)" } else { path };
    TheoryError::invalid(
        field,
        format!("{kind}{message} (line {}, column {})", e.line(), e.column()),
    )
}

impl<'de> Deserialize<'de> for InstanceFile {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(FileVisitor)
    }
}

/// What the top level of an instance file may be.
const EXPECTED: &str = "an instance (a JSON object) or a batch (an array of them)";

/// The visitor of [`InstanceFile`]: an object or an array of objects.
struct FileVisitor;

impl<'de> Visitor<'de> for FileVisitor {
    type Value = InstanceFile;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(EXPECTED)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Self::Value, A::Error> {
        let Named(name, inst) = NamedVisitor.visit_map(map)?;
        Ok(InstanceFile {
            batch: false,
            instances: vec![inst],
            names: vec![name],
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let (mut instances, mut names) = (Vec::new(), Vec::new());
        while let Some(Named(name, inst)) = seq.next_element()? {
            instances.push(inst);
            names.push(name);
        }
        Ok(InstanceFile {
            batch: true,
            instances,
            names,
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> std::result::Result<Self::Value, E> {
        Err(mismatch(EXPECTED, v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> std::result::Result<Self::Value, E> {
        Err(mismatch(EXPECTED, v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> std::result::Result<Self::Value, E> {
        Err(mismatch(EXPECTED, v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Err(mismatch(EXPECTED, format_args!("a string {v:?}")))
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> std::result::Result<Self::Value, E> {
        Err(mismatch(EXPECTED, v))
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<Self::Value, E> {
        Err(mismatch(EXPECTED, "null"))
    }
}

/// An instance object with its optional `name`.
struct Named(Option<String>, TabularInstance);

impl<'de> Deserialize<'de> for Named {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(NamedVisitor)
    }
}

/// The visitor of [`Named`]: `name` is taken out, the other keys make the instance
/// (with its derived checks: unknown, repeated and missing keys).
struct NamedVisitor;

impl<'de> Visitor<'de> for NamedVisitor {
    type Value = Named;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an instance (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> std::result::Result<Named, A::Error> {
        let mut name = None;
        let inst =
            TabularInstance::deserialize(de::value::MapAccessDeserializer::new(WithoutName {
                map,
                name: &mut name,
            }))?;
        Ok(Named(name, inst))
    }
}

/// The entries of an instance object but `name`, which goes to `name`.
struct WithoutName<'n, A> {
    map: A,
    name: &'n mut Option<String>,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for WithoutName<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, A::Error> {
        loop {
            let Some(key) = self.map.next_key::<std::borrow::Cow<'de, str>>()? else {
                return Ok(None);
            };
            if key != "name" {
                return seed
                    .deserialize(de::value::CowStrDeserializer::new(key))
                    .map(Some);
            }
            if self.name.is_some() {
                return Err(de::Error::duplicate_field("name"));
            }
            *self.name = Some(self.map.next_value_seed(Seed::<String>(PhantomData))?);
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"num_prompts": 2, "lambda": 0.05, "gamma": 0.3,
  "logits": [0.5, -0.5, 1.0],
  "r_rm": [0.2, 0.9, -0.3],
  "r_g": [0.1, 0.6, -0.8], "horizon": 500}"#;

    fn error(text: &str) -> String {
        InstanceFile::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn one_instance_or_a_batch() {
        let one = InstanceFile::parse(GOOD).unwrap();
        assert!(!one.is_batch());
        assert_eq!(one.instances().len(), 1);
        assert_eq!(one.instances()[0].r_rm, vec![0.2, 0.9, -0.3]);
        assert_eq!(one.instances()[0].num_prompts, 2);
        let batch = InstanceFile::parse(&format!("[{GOOD}, {GOOD}]")).unwrap();
        assert!(batch.is_batch());
        assert_eq!(batch.instances().len(), 2);
        let single = InstanceFile::parse(&format!(" [{GOOD}]")).unwrap();
        assert!(single.is_batch());
        assert_eq!(batch.name(0), None);
        let named = InstanceFile::parse(&format!(
            "[{GOOD}, {}]",
            GOOD.replace("{", "{\"name\": \"second\", ")
        ))
        .unwrap();
        assert_eq!((named.name(0), named.name(1)), (None, Some("second")));
        let default = GOOD.replace("\"num_prompts\": 2, ", "");
        assert_eq!(
            InstanceFile::parse(&default).unwrap().instances()[0].num_prompts,
            1
        );
    }

    #[test]
    fn type_errors_name_the_field_and_the_position() {
        let err = error(&GOOD.replace("\"gamma\": 0.3", "\"gamma\": \"0.3\""));
        assert!(
            err.contains("`gamma`: expected a number, found a string \"0.3\" (line 1, column"),
            "{err}"
        );
        let err = error(&GOOD.replace("0.9, -0.3", "0.9, true"));
        assert!(
            err.contains("`r_rm[2]`: expected a number, found true (line 3"),
            "{err}"
        );
        let err = error(&GOOD.replace("\"num_prompts\": 2", "\"num_prompts\": 2.5"));
        assert!(
            err.contains("`num_prompts`: expected a whole number, found 2.5"),
            "{err}"
        );
        let bad = GOOD.replace("\"horizon\": 500", "\"horizon\": [500]");
        let err = error(&format!("[{GOOD},\n{GOOD},\n{GOOD},\n{bad}]"));
        assert!(
            err.contains("`[3].horizon`: expected a number, found an array"),
            "{err}"
        );
    }

    #[test]
    fn keys_must_be_known_given_once_and_complete() {
        let err = error(&GOOD.replace("\"horizon\"", "\"horizn\""));
        assert!(err.contains("unknown field `horizn`"), "{err}");
        let err = error(&GOOD.replace("\"lambda\": 0.05", "\"lambda\": 0.05, \"lambda\": 1"));
        assert!(err.contains("duplicate field `lambda`"), "{err}");
        let err = error(&GOOD.replace("{", "{\"name\": \"a\", \"name\": \"b\", "));
        assert!(err.contains("duplicate field `name`"), "{err}");
        let err = error(&GOOD.replace("{", "{\"name\": 7, "));
        assert!(err.contains("`name`: expected a string, found 7"), "{err}");
        let err = error(&format!(
            "[{GOOD}, {}]",
            GOOD.replace("\"gamma\": 0.3,", "")
        ));
        assert!(err.contains("`[1]`: missing field `gamma`"), "{err}");
    }

    #[test]
    fn syntax_errors_and_odd_files_are_explained() {
        let err = error(&GOOD.replace("0.5, -0.5", "NaN, -0.5"));
        assert!(
            err.contains("`logits[0]`: not valid JSON: expected value (line 2"),
            "{err}"
        );
        let err = error(&format!("{GOOD} x"));
        assert!(err.contains("trailing characters"), "{err}");
        let err = error("");
        assert!(err.contains("not valid JSON: EOF"), "{err}");
        let err = error("42");
        assert!(
            err.contains(
                "expected an instance (a JSON object) or a batch (an array of them), found 42"
            ),
            "{err}"
        );
        let err = error(" [ ] ");
        assert!(err.contains("the batch is empty"), "{err}");
        let err = error("[1]");
        assert!(err.contains("`[0]`"), "{err}");
    }

    #[test]
    fn validation_errors_name_the_item_of_a_batch() {
        let bad = GOOD.replace("\"gamma\": 0.3", "\"gamma\": -1");
        let err = error(&bad);
        assert!(err.contains("`gamma`: must be"), "{err}");
        let err = error(&format!("[{GOOD}, {bad}]"));
        assert!(err.contains("`[1].gamma`: must be"), "{err}");
        let bad = GOOD.replace("0.9, -0.3", "1.5, -0.3");
        let err = error(&format!("[{GOOD}, {GOOD}, {bad}]"));
        assert!(err.contains("`[2].r_rm[1]`"), "{err}");
    }
}
