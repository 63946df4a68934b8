//! Append-only JSONL logs of metrics, written as they are produced and safe to resume.
//!
//! Every record carries a monotone `step`. When a stage resumes from a checkpoint taken
//! at step `s`, [`MetricsLog::resume`] drops any record after `s` (work the checkpoint
//! does not contain) and any torn last line left by a kill, then appends.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Error, Result};

/// An open JSONL log.
#[derive(Debug)]
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
}

/// Records must say where in a stage they were produced.
pub trait Stepped {
    /// The step (or epoch) counter, increasing along a stage.
    fn step(&self) -> u64;
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl MetricsLog {
    /// Opens `path` for appending, first keeping only the complete records with
    /// `step <= keep_through` (all complete records when `None`). Returns the log and
    /// the records kept.
    pub fn resume<T: Serialize + DeserializeOwned + Stepped>(
        path: &Path,
        keep_through: Option<u64>,
    ) -> Result<(Self, Vec<T>)> {
        let old = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(path)(e)),
        };
        // Kept lines are copied byte for byte (a reserialised float may change in
        // its last digit).
        let mut kept = Vec::new();
        let mut text = String::new();
        let parsed = old
            .lines()
            .map_while(|l| serde_json::from_str::<T>(l).ok().map(|r| (l, r)));
        for (line, r) in parsed {
            if keep_through.is_none_or(|s| r.step() <= s) {
                text.push_str(line);
                text.push('\n');
                kept.push(r);
            }
        }
        super::write_atomic(path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io(path))?;
        Ok((
            Self {
                path: path.to_path_buf(),
                file,
            },
            kept,
        ))
    }

    /// Appends one record and flushes it to the OS.
    pub fn append<T: Serialize>(&mut self, record: &T) -> Result<()> {
        let mut line = serde_json::to_string(record)
            .map_err(|e| Error::Input(format!("{}: {e}", self.path.display())))?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(io(&self.path))?;
        self.file.flush().map_err(io(&self.path))
    }

    /// Reads every complete record of a log.
    pub fn read_all<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| super::parse_json(l, &format!("{}: line {}", path.display(), i + 1)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Serialize, Deserialize)]
    struct R {
        step: u64,
        x: f64,
    }
    impl Stepped for R {
        fn step(&self) -> u64 {
            self.step
        }
    }

    #[test]
    fn resume_keeps_kept_lines_byte_for_byte_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        // Spellings serde_json would not write back as they are.
        let kept = "{\"step\":1,\"x\":1.00000000000000001}\n{\"x\":2e0,  \"step\":2}\n";
        let text = format!("{kept}{{\"step\":3,\"x\":3.0}}\n{{\"step\":4,\"x\":");
        std::fs::write(&path, text).unwrap();
        let (mut log, records) = MetricsLog::resume::<R>(&path, Some(2)).unwrap();
        assert_eq!(records.len(), 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), kept);
        log.append(&R { step: 3, x: 0.5 }).unwrap();
        let after = std::fs::read_to_string(&path).unwrap();
        assert_eq!(after, format!("{kept}{{\"step\":3,\"x\":0.5}}\n"));
    }
}
