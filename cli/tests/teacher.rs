//! End-to-end runs of `rmteach teacher` on a toy world the program writes itself.
#![cfg(feature = "lm")]

mod common;

use common::{ok, rmteach};
use std::path::{Path, PathBuf};
use std::process::Output;

use candle_core::{Device, Tensor};
use rmteach::metrics::{on_policy_accuracy, Normalizer};
use serde_json::Value;

/// A fresh toy world in a directory of its own, with a copy of its reward model whose
/// head is zero (it scores every response 0).
fn world(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rmteach-teacher-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    ok(&rmteach(&[
        "exp",
        "toy-world",
        "--out",
        dir.to_str().unwrap(),
        "--seed",
        "5",
    ]));
    let rm = dir.join("models/llama-toy-rm");
    let flat = dir.join("models/flat-rm");
    std::fs::create_dir_all(&flat).unwrap();
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(rm.join(f), flat.join(f)).unwrap();
    }
    let mut weights =
        candle_core::safetensors::load(rm.join("model.safetensors"), &Device::Cpu).unwrap();
    let head = weights["score.weight"].zeros_like().unwrap();
    weights.insert("score.weight".into(), head);
    let weights: std::collections::HashMap<String, Tensor> = weights;
    candle_core::safetensors::save(&weights, flat.join("model.safetensors")).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `rmteach teacher` on the world's Llama policy with the given `--rm`s.
fn teacher(w: &Path, out: &Path, rms: &[&str]) -> Output {
    let policy = w.join("models/llama-toy");
    let prompts = w.join("data/prompts.jsonl");
    let prefs = w.join("data/test_prefs.jsonl");
    let gt = format!("toy:{}", s(w));
    let mut args = vec![
        "teacher",
        "--policy",
        s(&policy),
        "--prompts",
        s(&prompts),
        "--prefs",
        s(&prefs),
        "--gt",
        &gt,
        "--max-prompts",
        "6",
        "--samples",
        "4",
        "--max-new-tokens",
        "10",
        "--batch-size",
        "8",
        "--quiet",
        "--out",
        s(out),
    ];
    for rm in rms {
        args.extend(["--rm", rm]);
    }
    rmteach(&args)
}

fn lines(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("samples.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn rm_entry<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["policies"][0]["rms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap()
}

#[test]
fn teacher_outputs_parse_and_match_the_metrics_core() {
    let w = world("outputs");
    let out = w.join("t");
    let rm = format!("rm={}", s(&w.join("models/llama-toy-rm")));
    let flat = format!("flat={}", s(&w.join("models/flat-rm")));
    ok(&teacher(&w, &out, &[&rm, &flat]));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("teacher.json")).unwrap()).unwrap();
    assert_eq!(report["policies"].as_array().unwrap().len(), 1);
    assert_eq!(report["policies"][0]["rms"].as_array().unwrap().len(), 2);
    // A reward model that scores everything alike cannot tell any prompt's samples apart.
    let flat = rm_entry(&report, "flat");
    assert_eq!(flat["zero_variance_prompts"], 1.0);
    assert_eq!(flat["reward_variance"], 0.0);
    assert_eq!(flat["teacher_score"], 0.0);
    // The on-policy accuracy is the core's, recomputed from samples.jsonl.
    let rows = lines(&out);
    assert_eq!(rows.len(), 6 * 4);
    let col = |name: &str| -> Vec<f64> {
        rows.iter()
            .map(|r| r["scores"][name].as_f64().unwrap())
            .collect()
    };
    let (raw, gt) = (col("rm"), col("gt"));
    let z = Normalizer::fit(&raw).unwrap().apply_slice(&raw);
    let acc = on_policy_accuracy(z.chunks(4).zip(gt.chunks(4))).unwrap();
    let got = rm_entry(&report, "rm")["on_policy_accuracy"]
        .as_f64()
        .unwrap();
    assert!((got - acc).abs() < 1e-12, "{got} vs {acc}");
    // The other outputs exist and hold a row per RM.
    let csv = std::fs::read_to_string(out.join("teacher.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.lines().nth(1).unwrap().contains(",1,"), "{csv}");
    let md = std::fs::read_to_string(out.join("teacher.md")).unwrap();
    assert!(md.contains("| 2 | flat |"), "{md}");
    assert!(out.join("teacher.png").is_file());
    let _ = std::fs::remove_dir_all(&w);
}

#[test]
fn samples_are_reused_by_a_new_rm_and_a_killed_run_resumes() {
    let w = world("cache");
    let out = w.join("t");
    let rm = format!("rm={}", s(&w.join("models/llama-toy-rm")));
    ok(&teacher(&w, &out, &[&rm]));
    let first = lines(&out);
    // Adding an RM keeps every sample and every score already there.
    let flat = format!("flat={}", s(&w.join("models/flat-rm")));
    ok(&teacher(&w, &out, &[&rm, &flat]));
    let second = lines(&out);
    assert_eq!(first.len(), second.len());
    for (a, b) in first.iter().zip(&second) {
        assert_eq!(a["response"], b["response"]);
        assert_eq!(a["scores"]["rm"], b["scores"]["rm"]);
        assert_eq!(b["scores"]["flat"], 0.0);
    }
    // A run killed during sampling (the first chunk of 2 prompts written, the next
    // torn) resumes and draws what the uninterrupted run drew.
    let text = std::fs::read_to_string(out.join("samples.jsonl")).unwrap();
    let kept: Vec<&str> = text.lines().take(8).collect();
    let torn = format!(
        "{}\n{}",
        kept.join("\n"),
        &text.lines().nth(8).unwrap()[..20]
    );
    std::fs::write(out.join("samples.jsonl"), torn).unwrap();
    ok(&teacher(&w, &out, &[&rm, &flat]));
    let third = lines(&out);
    assert_eq!(third.len(), second.len());
    for (a, b) in second.iter().zip(&third) {
        assert_eq!(a["response"], b["response"]);
        assert_eq!(a["prompt_index"], b["prompt_index"]);
    }
    // Other sampling settings are refused, not mixed into the cache.
    let policy = w.join("models/llama-toy");
    let bad = rmteach(&[
        "teacher",
        "--policy",
        s(&policy),
        "--rm",
        &rm,
        "--prompts",
        s(&w.join("data/prompts.jsonl")),
        "--max-prompts",
        "6",
        "--samples",
        "3",
        "--quiet",
        "--out",
        s(&out),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("settings.json"));
    let _ = std::fs::remove_dir_all(&w);
}

#[test]
fn bad_rm_flag_names_the_fix() {
    let out = rmteach(&[
        "teacher",
        "--policy",
        "p",
        "--rm",
        "nodir",
        "--prompts",
        "x.jsonl",
        "--out",
        "o",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NAME=DIR"));
}

#[test]
fn bad_inputs_are_refused_before_sampling_and_leave_the_output_usable() {
    let w = world("refused");
    let out = w.join("t");
    let policy = w.join("models/llama-toy");
    let rm = w.join("models/llama-toy-rm");
    let prompts = w.join("data/prompts.jsonl");
    let run = |policy: &Path, extra: &[&str]| {
        let rm_flag = format!("a={}", s(&rm));
        let mut args = vec![
            "teacher",
            "--policy",
            s(policy),
            "--rm",
            &rm_flag,
            "--prompts",
            s(&prompts),
            "--max-prompts",
            "2",
            "--samples",
            "2",
            "--max-new-tokens",
            "4",
            "--quiet",
            "--out",
            s(&out),
        ];
        args.extend(extra);
        rmteach(&args)
    };
    let refused = |o: Output, wants: &[&str]| {
        assert_eq!(o.status.code(), Some(2), "accepted");
        let e = String::from_utf8_lossy(&o.stderr).into_owned();
        for w in wants {
            assert!(e.contains(w), "lacks {w}: {e}");
        }
        assert!(
            !out.join("samples.jsonl").exists(),
            "sampled before refusing: {e}"
        );
    };
    refused(run(&policy, &["--batch-size", "0"]), &["--batch-size"]);
    refused(
        run(&policy, &["--max-new-tokens", "0"]),
        &["--max-new-tokens"],
    );
    // A reward model is not a policy.
    refused(
        run(&rm, &[]),
        &["--policy", "architectures", "not a causal LM"],
    );
    // A missing reward model or ground truth is found before the sampling pass.
    let missing = format!("b={}", s(&w.join("nope")));
    refused(
        run(&policy, &["--rm", &missing]),
        &["--rm b", "config.json"],
    );
    let no_world = format!("toy:{}", s(&w.join("nope")));
    refused(
        run(&policy, &["--gt", &no_world]),
        &["--gt toy:", "world.json"],
    );
    // None of the refusals above left settings that block the corrected run.
    ok(&run(&policy, &[]));
    assert_eq!(lines(&out).len(), 4);
    let _ = std::fs::remove_dir_all(&w);
}
