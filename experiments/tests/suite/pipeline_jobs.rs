//! `--jobs N`: a run whose independent units (the reward models' training, the
//! (reward, seed) policy-gradient runs) run side by side writes the same records as
//! one that runs them one after another, byte for byte apart from wall times.

use crate::pipeline_run::TINY;
use rmteach_experiments::pipeline::run::run_with;
use rmteach_experiments::pipeline::units::Parallelism;
use rmteach_experiments::pipeline::{RunConfig, RunOptions};
use rmteach_experiments::runtime::DeviceSpec;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Every file under `dir` by relative path: text with `dir` itself written `<run>` (the
/// two runs live in different directories), JSON and JSON lines also with every
/// wall-time field (`seconds`, `total_seconds`, ...) removed, other files as they are.
fn records(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.retain(|k, _| !k.contains("seconds"));
                m.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
                continue;
            }
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let bytes = std::fs::read(&path).unwrap();
            let text = std::str::from_utf8(&bytes)
                .ok()
                .map(|t| t.replace(&root.display().to_string(), "<run>"));
            let text = text.as_deref();
            let json = |t: &str| {
                let mut v: Value = serde_json::from_str(t).unwrap();
                strip(&mut v);
                v.to_string()
            };
            let kept = match (path.extension().and_then(|e| e.to_str()), text) {
                (Some("json"), Some(t)) => json(t).into_bytes(),
                (Some("jsonl"), Some(t)) => t
                    .lines()
                    .map(json)
                    .collect::<Vec<_>>()
                    .join("\n")
                    .into_bytes(),
                (_, Some(t)) => t.as_bytes().to_vec(),
                (_, None) => bytes,
            };
            out.insert(name, kept);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

#[test]
fn two_jobs_write_the_same_records_as_one() {
    let config = RunConfig::from_toml_str(TINY, "tiny.toml").unwrap();
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let sequential = run_with(&config, one.path(), &RunOptions::default()).unwrap();
    let parallel = RunOptions {
        parallel: Parallelism {
            jobs: 2,
            devices: vec![DeviceSpec::Cpu, DeviceSpec::Cpu],
        },
        ..RunOptions::default()
    };
    let side_by_side = run_with(&config, two.path(), &parallel).unwrap();
    assert!(sequential.finished && side_by_side.finished);
    let names = |s: &rmteach_experiments::pipeline::RunSummary| -> Vec<String> {
        s.stages.iter().map(|t| t.stage.clone()).collect()
    };
    assert_eq!(names(&sequential), names(&side_by_side), "stage order");
    let (a, b) = (
        records(&one.path().join("tiny")),
        records(&two.path().join("tiny")),
    );
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    // The units wrote weights and logs: the comparison covers them.
    assert!(a
        .keys()
        .any(|k| k.starts_with("pg/rm-0/seed0/") && k.ends_with(".safetensors")));
    assert!(a
        .keys()
        .any(|k| k.starts_with("rms/rm-100/") && k.ends_with(".safetensors")));
    let differing: Vec<&String> = a.keys().filter(|k| a[*k] != b[*k]).collect();
    assert!(differing.is_empty(), "files that differ: {differing:?}");
}
