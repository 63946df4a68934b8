//! `samples.jsonl`: one [`SampleLine`] per sampled response, with every score it has
//! received so far. Sampling appends whole prompts at a time, so a killed run loses at
//! most the chunk in flight (a torn last line is dropped on reading); scores are added
//! one reward at a time by rewriting the file atomically, so adding an RM later reuses
//! the samples. `settings.json` next to it records what the samples depend on; a run
//! with other settings is refused rather than mixing samples.

use crate::rundir::{read_json, write_atomic, write_json};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One sampled response and its raw scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleLine {
    /// The policy (its directory as given).
    pub policy: String,
    /// Index of the prompt in the prompt file (after `--max-prompts`).
    pub prompt_index: usize,
    /// The response text.
    pub response: String,
    /// Raw score by reward name (`gt`: the ground truth).
    pub scores: BTreeMap<String, f64>,
}

/// What the samples depend on (`settings.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleSettings {
    /// Samples per prompt.
    pub samples_per_prompt: usize,
    /// Longest response in tokens.
    pub max_new_tokens: usize,
    /// Sampling seed.
    pub seed: u64,
    /// Sampling temperature.
    pub temperature: f64,
    /// Top-k filter.
    pub top_k: Option<usize>,
    /// Rows per generation pass (fixes the chunking, hence the random streams).
    pub batch_size: usize,
    /// Number of prompts.
    pub prompts: usize,
    /// FNV-1a digest of the prompts (hex).
    pub prompts_digest: String,
}

/// The fields of `new` that differ from `old`, as `field: old -> new`, comma-separated.
fn changed_settings(old: &SampleSettings, new: &SampleSettings) -> String {
    let as_map = |s: &SampleSettings| match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let (old, new) = (as_map(old), as_map(new));
    new.iter()
        .filter(|(k, v)| old.get(*k) != Some(v))
        .map(|(k, v)| {
            let was = old.get(k).map_or("(none)".to_string(), |o| o.to_string());
            format!("{k}: {was} -> {v}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// FNV-1a 64 of the prompts, each followed by a zero byte.
pub fn prompts_digest(prompts: &[String]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in prompts {
        for b in p.bytes().chain([0u8]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The sample file of an output directory, in memory.
#[derive(Debug, Clone)]
pub struct SampleCache {
    path: PathBuf,
    lines: Vec<SampleLine>,
}

impl SampleCache {
    /// Opens `out/samples.jsonl` (empty when absent) after checking (or writing)
    /// `out/settings.json` against `settings`.
    pub fn open(out: &Path, settings: &SampleSettings) -> Result<Self> {
        std::fs::create_dir_all(out).map_err(|source| Error::Io {
            path: out.to_path_buf(),
            source,
        })?;
        let settings_file = out.join("settings.json");
        let path = out.join("samples.jsonl");
        let lines = if path.exists() {
            read_lines(&path)?
        } else {
            Vec::new()
        };
        // Settings bind only samples drawn with them: with none cached (a run that
        // stopped before its first sample) they are simply replaced.
        if settings_file.exists() && !lines.is_empty() {
            let old: SampleSettings = read_json(&settings_file)?;
            if &old != settings {
                return Err(Error::Input(format!(
                    "{}: the {} cached samples in {} were drawn with other settings \
                     (changed: {}); use the same --samples/--max-new-tokens/--seed/\
                     --batch-size/--prompts/--max-prompts, another --out, or delete \
                     samples.jsonl to resample",
                    settings_file.display(),
                    lines.len(),
                    path.display(),
                    changed_settings(&old, settings)
                )));
            }
        } else {
            write_json(&settings_file, settings)?;
        }
        Ok(Self { path, lines })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every line, in file order.
    pub fn lines(&self) -> &[SampleLine] {
        &self.lines
    }

    /// Mutable lines (to add scores; call [`save`](Self::save) after).
    pub fn lines_mut(&mut self) -> &mut [SampleLine] {
        &mut self.lines
    }

    /// The lines of `policy`, in order.
    pub fn policy_lines(&self, policy: &str) -> Vec<&SampleLine> {
        self.lines.iter().filter(|l| l.policy == policy).collect()
    }

    /// How many whole prompts of `policy` are cached, checking that its lines run
    /// through prompts `0, 1, ...` with `s` lines each.
    pub fn prompts_done(&self, policy: &str, s: usize) -> Result<usize> {
        let lines = self.policy_lines(policy);
        for (i, l) in lines.iter().enumerate() {
            if l.prompt_index != i / s {
                return Err(Error::Input(format!(
                    "{}: policy `{policy}`'s sample {i} answers prompt {}, expected {}; \
                     the file was edited or mixes runs: delete it to resample",
                    self.path.display(),
                    l.prompt_index,
                    i / s
                )));
            }
        }
        Ok(lines.len() / s)
    }

    /// Appends `lines` to the file (one write) and to memory.
    pub fn append(&mut self, lines: Vec<SampleLine>) -> Result<()> {
        let mut text = String::new();
        for l in &lines {
            text.push_str(&to_line(&self.path, l)?);
        }
        let io = |source| Error::Io {
            path: self.path.clone(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_data().map_err(io)?;
        self.lines.extend(lines);
        Ok(())
    }

    /// Rewrites the whole file atomically.
    pub fn save(&self) -> Result<()> {
        let mut text = String::new();
        for l in &self.lines {
            text.push_str(&to_line(&self.path, l)?);
        }
        write_atomic(&self.path, text.as_bytes())
    }
}

fn to_line(path: &Path, line: &SampleLine) -> Result<String> {
    let mut s = serde_json::to_string(line)
        .map_err(|e| Error::Input(format!("{}: cannot serialise: {e}", path.display())))?;
    s.push('\n');
    Ok(s)
}

/// Reads the lines; a last line without its newline (a write cut short) is dropped
/// and the file rewritten without it.
fn read_lines(path: &Path) -> Result<Vec<SampleLine>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let torn = !text.is_empty() && !text.ends_with('\n');
    let mut parts: Vec<&str> = text.lines().collect();
    if torn {
        parts.pop();
    }
    let lines = parts
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let label = format!(
                "{} line {} (a sample line; delete the file to resample)",
                path.display(),
                i + 1
            );
            crate::rundir::parse_json(l, &label)
        })
        .collect::<Result<Vec<SampleLine>>>()?;
    if torn {
        let cache = SampleCache {
            path: path.to_path_buf(),
            lines: lines.clone(),
        };
        cache.save()?;
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_new_tokens: usize) -> SampleSettings {
        SampleSettings {
            samples_per_prompt: 2,
            max_new_tokens,
            seed: 0,
            temperature: 1.0,
            top_k: Some(50),
            batch_size: 64,
            prompts: 1,
            prompts_digest: prompts_digest(&["p".into()]),
        }
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rmteach-cache-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn settings_without_samples_are_replaced_and_a_change_names_the_field() {
        let dir = scratch("settings");
        // A run that stopped before its first sample leaves settings.json only.
        SampleCache::open(&dir, &settings(0)).unwrap();
        let mut cache = SampleCache::open(&dir, &settings(8)).unwrap();
        let written: SampleSettings = read_json(&dir.join("settings.json")).unwrap();
        assert_eq!(written, settings(8));
        cache
            .append(vec![SampleLine {
                policy: "p".into(),
                prompt_index: 0,
                response: "r".into(),
                scores: BTreeMap::new(),
            }])
            .unwrap();
        // With a sample cached, other settings are refused, naming what changed.
        let e = SampleCache::open(&dir, &settings(16))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("settings.json") && e.contains("max_new_tokens: 8 -> 16"),
            "{e}"
        );
        assert!(!e.contains("seed:"), "only changed fields are listed: {e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
