//! Parquet rows (the record API, no arrow) as JSON objects, so that parquet and JSONL
//! files share one column reader.

use parquet::record::{Field, Row};
use serde_json::{Map, Number, Value};

/// The columns of `row` as a JSON object.
pub fn row_to_map(row: Row) -> Map<String, Value> {
    row.into_columns()
        .into_iter()
        .map(|(name, field)| (name, field_to_json(field)))
        .collect()
}

/// One parquet value as JSON: strings, numbers, booleans and nulls map directly,
/// lists to arrays, structs and maps to objects, UTF-8 byte arrays to strings.
fn field_to_json(field: Field) -> Value {
    match field {
        Field::Null => Value::Null,
        Field::Bool(b) => Value::Bool(b),
        Field::Byte(n) => n.into(),
        Field::Short(n) => n.into(),
        Field::Int(n) => n.into(),
        Field::Long(n) => n.into(),
        Field::UByte(n) => n.into(),
        Field::UShort(n) => n.into(),
        Field::UInt(n) => n.into(),
        Field::ULong(n) => n.into(),
        Field::Float(x) => float(f64::from(x)),
        Field::Double(x) => float(x),
        Field::Str(s) => Value::String(s),
        Field::Bytes(b) => match std::str::from_utf8(b.data()) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => Value::Array(b.data().iter().map(|&x| x.into()).collect()),
        },
        Field::Group(row) => Value::Object(row_to_map(row)),
        Field::ListInternal(list) => {
            Value::Array(list.elements().iter().cloned().map(field_to_json).collect())
        }
        Field::MapInternal(map) => Value::Object(
            map.entries()
                .iter()
                .map(|(k, v)| {
                    let key = match k {
                        Field::Str(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (key, field_to_json(v.clone()))
                })
                .collect(),
        ),
        other => Value::String(other.to_string()),
    }
}

/// A finite float as a JSON number; NaN and infinities become null.
fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}
