//! Writing a dry run's datasets as parquet in the Hugging Face layouts the real loaders
//! read ([`crate::data::load_ultrafeedback`], [`crate::data::load_alpaca_sft`]):
//! UltraFeedback-binarized `train_prefs` (`prompt`, `prompt_id`, `chosen`, `rejected`,
//! `messages` as lists of `{content, role}`, `score_chosen`, `score_rejected`) and
//! AlpacaFarm `sft` (`instruction`, `input`, `output`), snappy-compressed.

use crate::data::{PreferencePair, SftExample};
use crate::{Error, Result};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;
use std::path::Path;
use std::sync::Arc;

/// One leaf column: strings with (definition, repetition) levels for list columns, or
/// doubles.
enum Leaf {
    Str(Vec<ByteArray>, Option<(Vec<i16>, Vec<i16>)>),
    F64(Vec<f64>),
}

/// Writes `pairs` as an UltraFeedback-binarized parquet file.
pub fn write_ultrafeedback(path: &Path, pairs: &[PreferencePair]) -> Result<()> {
    let schema = format!(
        "message schema {{ required binary prompt (STRING); required binary prompt_id (STRING); \
         {} {} {} required double score_chosen; required double score_rejected; }}",
        messages_group("chosen"),
        messages_group("rejected"),
        messages_group("messages"),
    );
    let strings = |f: &dyn Fn(&PreferencePair) -> String| {
        Leaf::Str(pairs.iter().map(|p| f(p).as_str().into()).collect(), None)
    };
    let mut leaves = vec![
        strings(&|p| p.prompt.clone()),
        strings(&|p| format!("{:016x}", fnv(&p.prompt))),
    ];
    for response in [
        &(|p: &PreferencePair| p.chosen.clone()) as &dyn Fn(&PreferencePair) -> String,
        &|p| p.rejected.clone(),
        &|p| p.chosen.clone(),
    ] {
        leaves.extend(conversation_leaves(pairs, response));
    }
    leaves.push(Leaf::F64(
        pairs
            .iter()
            .map(|p| p.score_chosen.unwrap_or(0.0))
            .collect(),
    ));
    leaves.push(Leaf::F64(
        pairs
            .iter()
            .map(|p| p.score_rejected.unwrap_or(0.0))
            .collect(),
    ));
    write(path, &schema, leaves)
}

/// Writes `examples` as an AlpacaFarm `sft` parquet file (empty `input`).
pub fn write_alpaca(path: &Path, examples: &[SftExample]) -> Result<()> {
    let schema = "message schema { required binary instruction (STRING); \
                  required binary input (STRING); required binary output (STRING); }";
    let col = |f: &dyn Fn(&SftExample) -> &str| {
        Leaf::Str(examples.iter().map(|e| f(e).into()).collect(), None)
    };
    let leaves = vec![
        col(&|e| e.prompt.as_str()),
        col(&|_| ""),
        col(&|e| e.response.as_str()),
    ];
    write(path, schema, leaves)
}

/// The schema text of a `[user, assistant]` message-list column.
fn messages_group(name: &str) -> String {
    format!(
        "required group {name} (LIST) {{ repeated group list {{ required group element {{ \
         required binary content (STRING); required binary role (STRING); }} }} }}"
    )
}

/// The `content` and `role` leaves of a `[user, assistant]` column: two entries a row.
fn conversation_leaves(
    pairs: &[PreferencePair],
    response: &dyn Fn(&PreferencePair) -> String,
) -> [Leaf; 2] {
    let levels = || {
        let def = vec![1; 2 * pairs.len()];
        let rep = (0..2 * pairs.len()).map(|i| (i % 2) as i16).collect();
        Some((def, rep))
    };
    let content = pairs
        .iter()
        .flat_map(|p| [p.prompt.as_str().into(), response(p).as_str().into()])
        .collect();
    let role = pairs
        .iter()
        .flat_map(|_| ["user".into(), "assistant".into()])
        .collect();
    [Leaf::Str(content, levels()), Leaf::Str(role, levels())]
}

/// Writes one row group of `leaves` (in schema order) under `schema` to `path`.
fn write(path: &Path, schema: &str, leaves: Vec<Leaf>) -> Result<()> {
    let err = |e: parquet::errors::ParquetError| Error::Input(format!("{}: {e}", path.display()));
    let schema = Arc::new(parse_message_type(schema).map_err(err)?);
    let props = Arc::new(
        WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .build(),
    );
    let file = std::fs::File::create(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut writer = SerializedFileWriter::new(file, schema, props).map_err(err)?;
    let mut rows = writer.next_row_group().map_err(err)?;
    for leaf in leaves {
        let mut col = rows.next_column().map_err(err)?.ok_or_else(|| {
            Error::Input(format!("{}: more columns than the schema", path.display()))
        })?;
        match &leaf {
            Leaf::Str(values, levels) => {
                let (def, rep) = match levels {
                    Some((d, r)) => (Some(d.as_slice()), Some(r.as_slice())),
                    None => (None, None),
                };
                col.typed::<ByteArrayType>()
                    .write_batch(values, def, rep)
                    .map_err(err)?;
            }
            Leaf::F64(values) => {
                col.typed::<DoubleType>()
                    .write_batch(values, None, None)
                    .map_err(err)?;
            }
        }
        col.close().map_err(err)?;
    }
    rows.close().map_err(err)?;
    writer.close().map_err(err)?;
    Ok(())
}

/// FNV-1a of a prompt (its stand-in `prompt_id`).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
