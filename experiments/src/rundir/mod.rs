//! The run directory `runs/<name>/` and its stages.
//!
//! A stage writes its outputs into `runs/<name>/<stage>/` and finishes by writing
//! `DONE.json` (atomically: temp file + rename) with a summary of what it produced. A
//! stage whose `DONE.json` exists is complete and is skipped on the next run; a stage
//! without it is (re)started, and may pick up its own partial state (checkpoints).
//! Append-only metrics logs live in [`metrics_log`].

pub mod metrics_log;

pub use metrics_log::{MetricsLog, Stepped};

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// The name of the completion marker inside a stage directory.
pub const DONE_FILE: &str = "DONE.json";

/// `runs/<name>/`.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Opens (creating if needed) the run directory `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        std::fs::create_dir_all(&root).map_err(|source| Error::Io {
            path: root.clone(),
            source,
        })?;
        Ok(Self { root })
    }

    /// The run directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of `stage` (a relative path such as `rms/rm-100` or
    /// `pg/gt/seed0`), created if needed.
    pub fn stage(&self, stage: &str) -> Result<StageDir> {
        let path = self.root.join(stage);
        std::fs::create_dir_all(&path).map_err(|source| Error::Io {
            path: path.clone(),
            source,
        })?;
        Ok(StageDir { path })
    }
}

/// One stage's directory.
#[derive(Debug, Clone)]
pub struct StageDir {
    path: PathBuf,
}

impl StageDir {
    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file inside it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Whether the stage finished (its `DONE.json` exists and parses).
    pub fn is_complete(&self) -> bool {
        std::fs::read_to_string(self.file(DONE_FILE))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some()
    }

    /// The summary the stage recorded when it finished, if it did.
    pub fn summary<T: DeserializeOwned>(&self) -> Result<Option<T>> {
        let path = self.file(DONE_FILE);
        if !path.exists() {
            return Ok(None);
        }
        read_json(&path).map(Some).map_err(|e| {
            Error::Input(format!(
                "{}; the stage's completion record is damaged: delete {} to run the \
                 stage again",
                e.detail(),
                path.display()
            ))
        })
    }

    /// Marks the stage complete with `summary` (atomically).
    pub fn complete<T: Serialize>(&self, summary: &T) -> Result<()> {
        write_json(&self.file(DONE_FILE), summary)
    }
}

/// Regenerates a stage that is rewritten on every call (the reports) in `dir`: its
/// `DONE.json` is removed first, temporaries a killed writer left behind
/// (`.<file>.<pid>.<n>.tmp`) are deleted, `write` runs, and `DONE.json` is written
/// last, so a directory without it holds an incomplete stage.
pub fn rewrite_stage(dir: &Path, write: impl FnOnce() -> Result<()>) -> Result<()> {
    let done = dir.join(DONE_FILE);
    match std::fs::remove_file(&done) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::Io {
                path: done,
                source: e,
            })
        }
        _ => {}
    }
    remove_stale_temporaries(dir)?;
    write()?;
    write_json(&done, &serde_json::json!({ "complete": true }))
}

/// Deletes, under `dir` (recursively), the hidden `.tmp` files of interrupted atomic
/// writes; returns how many. A missing `dir` holds none.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(io(dir))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().map_err(io(&path))?.is_dir() {
            removed += remove_stale_temporaries(&path)?;
        } else if name.starts_with('.') && name.ends_with(".tmp") {
            std::fs::remove_file(&path).map_err(io(&path))?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// Writes `value` as pretty JSON to `path` atomically (temp file in the same directory,
/// then rename), so a reader never sees half a file.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Input(format!("{}: cannot serialise: {e}", path.display())))?;
    write_atomic(path, text.as_bytes())
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    rmteach::report::write_atomic(path, bytes).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a JSON file, naming the file in the error.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_json(&text, &path.display().to_string())
}

/// Parses JSON `text` into `T`; a type error names the field path (`stages[2].seconds`)
/// and `label` (the file, or the file and line).
pub fn parse_json<T: DeserializeOwned>(text: &str, label: &str) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            Error::Input(format!("{label}: {inner}"))
        } else {
            Error::Input(format!("{label}: field `{path}`: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| Error::Input(format!("{label}: {e}")))?;
    Ok(value)
}

/// Writes one JSON value a line to `path`, atomically.
pub fn write_jsonl_atomic<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for row in rows {
        text.push_str(
            &serde_json::to_string(row)
                .map_err(|e| Error::Input(format!("{}: cannot serialise: {e}", path.display())))?,
        );
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

/// Reads a JSONL file written by [`write_jsonl_atomic`] (file and line named on error).
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    MetricsLog::read_all(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    struct Inner {
        #[allow(dead_code)]
        seconds: f64,
    }
    #[derive(Debug, serde::Deserialize)]
    struct Outer {
        #[allow(dead_code)]
        stages: Vec<Inner>,
    }

    #[test]
    fn a_damaged_completion_record_names_the_fix() {
        let dir = std::env::temp_dir().join(format!("rmteach-rundir-done-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let stage = RunDir::open(&dir).unwrap().stage("pg/gt/seed0").unwrap();
        std::fs::write(stage.file(DONE_FILE), "{\"Fini").unwrap();
        let e = stage
            .summary::<serde_json::Value>()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("DONE.json") && e.contains("delete") && e.contains("run the stage again"),
            "{e}"
        );
        assert_eq!(e.matches("invalid input").count(), 1, "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn json_type_errors_name_the_file_and_the_field_path() {
        let text = r#"{"stages": [{"seconds": 1.0}, {"seconds": "0.3"}]}"#;
        let e = parse_json::<Outer>(text, "summary.json")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("summary.json") && e.contains("stages[1].seconds") && e.contains("\"0.3\""),
            "{e}"
        );
        let e = parse_json::<Outer>("{\"stages\": []} x", "s.json")
            .unwrap_err()
            .to_string();
        assert!(e.contains("s.json") && e.contains("trailing"), "{e}");
    }
}
