//! End-to-end runs of `rmteach exp ...` on the toy world the program writes itself.
#![cfg(feature = "lm")]

mod common;

use common::{ok, rmteach};
use std::path::PathBuf;
use std::sync::OnceLock;

/// One toy world shared by the tests of this file.
fn world() -> &'static PathBuf {
    static WORLD: OnceLock<PathBuf> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rmteach-exp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = rmteach(&[
            "exp",
            "toy-world",
            "--out",
            dir.to_str().unwrap(),
            "--seed",
            "3",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn model(name: &str) -> String {
    world().join("models").join(name).display().to_string()
}

#[test]
fn inspect_reports_architecture_parameters_and_template() {
    let text = ok(&rmteach(&[
        "exp",
        "inspect",
        "--model",
        &model("gpt-neox-toy"),
    ]));
    assert!(
        text.contains("GptNeox") && text.contains("parameters:") && text.contains("<|assistant|>"),
        "{text}"
    );
}

#[test]
fn logits_from_ids_and_text_agree() {
    let out_ids = world().join("ids.json");
    let out_text = world().join("text.json");
    ok(&rmteach(&[
        "exp",
        "logits",
        "--model",
        &model("llama-toy"),
        "--text",
        "write two words about food",
        "--out",
        out_text.to_str().unwrap(),
    ]));
    let from_text: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_text).unwrap()).unwrap();
    let ids: Vec<String> = from_text["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    ok(&rmteach(&[
        "exp",
        "logits",
        "--model",
        &model("llama-toy"),
        "--ids",
        &ids.join(","),
        "--out",
        out_ids.to_str().unwrap(),
    ]));
    let from_ids: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_ids).unwrap()).unwrap();
    assert_eq!(from_text["logits"], from_ids["logits"]);
    assert_eq!(from_ids["logits"].as_array().unwrap().len(), ids.len());
}

#[test]
fn logits_reject_ids_outside_the_vocabulary() {
    let out = rmteach(&[
        "exp",
        "logits",
        "--model",
        &model("llama-toy"),
        "--ids",
        "1,99999",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("outside the vocabulary"));
}

#[test]
fn generation_is_reproducible_by_seed() {
    let args = [
        "exp",
        "generate",
        "--model",
        &model("llama-toy"),
        "--prompt",
        "write three words about animals",
        "--n",
        "2",
        "--max-new-tokens",
        "8",
        "--seed",
        "5",
    ];
    let a = ok(&rmteach(&args));
    let b = ok(&rmteach(&args));
    assert_eq!(a, b);
    assert_eq!(a.matches("--- sample").count(), 2);
}

#[test]
fn score_prints_one_finite_number() {
    let text = ok(&rmteach(&[
        "exp",
        "score",
        "--rm",
        &model("llama-toy-rm"),
        "--prompt",
        "write three words about animals",
        "--response",
        "cat dog cow",
    ]));
    let v: f64 = text.trim().parse().unwrap();
    assert!(v.is_finite());
}

#[test]
fn silent_accepts_are_refused_with_the_file_and_the_fix() {
    let err = |args: &[&str]| {
        let out = rmteach(args);
        assert_eq!(out.status.code(), Some(2), "{args:?} accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let rm = model("llama-toy-rm");
    let e = err(&["exp", "generate", "--model", &rm, "--prompt", "hi"]);
    assert!(e.contains("reward model") && e.contains("exp score"), "{e}");
    let e = err(&["exp", "logits", "--model", &rm, "--ids", "1,2"]);
    assert!(e.contains("reward model"), "{e}");
    let llama = model("llama-toy");
    let e = err(&[
        "exp", "generate", "--model", &llama, "--prompt", "hi", "--n", "0",
    ]);
    assert!(e.contains("--n") && e.contains("at least 1"), "{e}");
    // Past max_position_embeddings (the toy models': 256).
    let long = vec!["1"; 300].join(",");
    let e = err(&["exp", "logits", "--model", &llama, "--ids", &long]);
    assert!(e.contains("max_position_embeddings"), "{e}");
    // An existing toy world is not overwritten without --force.
    let dir = world().display().to_string();
    let e = err(&["exp", "toy-world", "--out", &dir]);
    assert!(e.contains("--force") && e.contains(&dir), "{e}");
}

#[test]
fn help_lists_every_subcommand_and_explains_resume() {
    let help = ok(&rmteach(&["--help"]));
    for c in ["toy-world", "run", "bench"] {
        assert!(help.contains(c), "rmteach --help lacks {c}: {help}");
    }
    let exp = ok(&rmteach(&["exp", "--help"]));
    for c in [
        "toy-world",
        "inspect",
        "logits",
        "generate",
        "score",
        "run",
        "bench",
    ] {
        assert!(exp.contains(c), "exp --help lacks {c}: {exp}");
    }
    let run = ok(&rmteach(&["exp", "run", "--help"]));
    assert!(
        run.contains("DONE.json") && run.contains("config.json") && run.contains("another `name`"),
        "{run}"
    );
}

#[test]
fn missing_model_directory_is_a_clear_error() {
    let out = rmteach(&["exp", "inspect", "--model", "/nonexistent/model"]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("/nonexistent/model"), "{e}");
    // The cause is printed once, not once in the message and again as its source.
    assert_eq!(e.matches("No such file or directory").count(), 1, "{e}");
}

#[test]
fn reproduce_writes_one_report_linking_the_theory_tables() {
    let dir = std::env::temp_dir().join(format!("rmteach-repro-{}", std::process::id()));
    let out = rmteach(&[
        "reproduce",
        "--theory-only",
        "--quick",
        "--quiet",
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        report.contains("## Theory") && report.contains("| Proposition 3 |"),
        "{report}"
    );
    assert!(report.contains("every check passed") && report.contains("| total |"));
    assert!(dir.join("theory/verify.csv").is_file());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_model_without_weights_names_both_layouts() {
    let dir = std::env::temp_dir().join(format!("rmteach-noweights-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let llama = world().join("models/llama-toy");
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(llama.join(f), dir.join(f)).unwrap();
    }
    let out = rmteach(&[
        "exp",
        "logits",
        "--model",
        dir.to_str().unwrap(),
        "--ids",
        "1,2",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let e = String::from_utf8_lossy(&out.stderr);
    // It used to report only the missing model.safetensors.index.json.
    assert!(
        e.contains("model.safetensors nor") && e.contains(dir.to_str().unwrap()),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn reproduce_checks_jobs_and_devices_before_the_theory() {
    let dir = std::env::temp_dir().join(format!("rmteach-repro-dev-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.to_str().unwrap();
    for flags in [["--devices", "cuda:99"], ["--jobs", "0"]] {
        let mut args = vec!["reproduce", "--quick", "--quiet", "--out", d];
        args.extend(flags);
        let out = rmteach(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?} accepted");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(e.contains(flags[0]), "{e}");
        // Nothing ran: the theory verification writes theory/ first.
        assert!(
            !dir.join("theory").exists(),
            "{args:?} ran the theory first"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn check_kernels_compares_the_cpu_kernels_with_the_composite() {
    let out = world().join("check-kernels");
    let text = ok(&rmteach(&[
        "exp",
        "check-kernels",
        "--device",
        "cpu",
        "--sizes",
        "small",
        "--dtypes",
        "f32,bf16",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]));
    assert!(text.contains("| rms_norm 6x64 | f32 | grad x |"), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("check-kernels.json")).unwrap())
            .unwrap();
    let rows = json["rows"].as_array().unwrap();
    for kernel in [
        "adamw",
        "rms_norm",
        "layer_norm",
        "picked_logprob",
        "swiglu",
        "gelu",
        "rotary",
    ] {
        assert!(
            rows.iter().any(|r| r["kernel"] == kernel),
            "no {kernel} rows"
        );
    }
    assert!(rows.iter().all(|r| r["verdict"] != "fail"), "{text}");
    assert!(std::fs::read_to_string(out.join("check-kernels.md"))
        .unwrap()
        .contains("Reference: CPU f32"));
    // A kernel name that does not exist is refused, naming the ones that do.
    let bad = rmteach(&[
        "exp",
        "check-kernels",
        "--kernels",
        "softmax",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("layer_norm"));
    // A dtype given twice is checked once.
    let rms_rows = |dtypes: &str| {
        let text = ok(&rmteach(&[
            "exp",
            "check-kernels",
            "--sizes",
            "small",
            "--kernels",
            "rms_norm",
            "--dtypes",
            dtypes,
            "--out",
            out.to_str().unwrap(),
            "--quiet",
        ]));
        text.lines().filter(|l| l.starts_with("| rms_norm")).count()
    };
    assert_eq!(rms_rows("f32,f32"), rms_rows("f32"));
}
