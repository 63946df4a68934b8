//! End-to-end runs of the `rmteach` binary on tiny inputs.

use std::path::PathBuf;
use std::process::{Command, Output};

fn rmteach(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rmteach"))
        .args(args)
        .output()
        .expect("runs")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rmteach-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_instance(dir: &std::path::Path, name: &str, json: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, json).unwrap();
    p.display().to_string()
}

const GOOD: &str = r#"{"num_prompts": 2, "lambda": 0.05, "gamma": 0.3,
  "logits": [0.5, -0.5, 1.0, -2.0, 0.0, 0.3],
  "r_rm": [0.2, 0.9, -0.3, 0.8, -1.0, 0.1],
  "r_g": [0.1, 0.6, -0.8, 1.0, -0.5, 0.4], "horizon": 500}"#;

#[test]
fn verify_quick_passes_and_writes_tables() {
    let dir = scratch("verify");
    let out = rmteach(&[
        "theory",
        "verify",
        "--quick",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("verify.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 9);
    assert!(rows.iter().all(|r| r["result"] == "PASS"));
    assert!(
        dir.join("verify.md").exists()
            && dir.join("verify.csv").exists()
            && dir.join("verify-details.json").exists()
    );
}

#[test]
fn verify_negative_controls_all_fail_and_exit_zero() {
    let dir = scratch("negative");
    let out = rmteach(&[
        "theory",
        "verify",
        "--quick",
        "--negative-controls",
        "--out",
        dir.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("negative controls: 9 of 9 checks fail as they must"),
        "{stdout}"
    );
    let controls: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("negative-controls.json")).unwrap())
            .unwrap();
    let controls = controls.as_array().unwrap();
    assert_eq!(controls.len(), 9);
    assert!(controls.iter().all(|c| c["failed_as_required"] == true));
    // The table carries the paper's constant beside the tightest one found.
    let table = std::fs::read_to_string(dir.join("verify.md")).unwrap();
    assert!(
        table.contains("Proposition 3: paper 2 -> tightest"),
        "{table}"
    );
}

#[test]
fn flow_reports_t_gamma_and_bounds() {
    let dir = scratch("flow");
    let inst = write_instance(&dir, "i.json", GOOD);
    let result = dir.join("r.json");
    let out = rmteach(&[
        "theory",
        "flow",
        "--instance",
        &inst,
        "--out",
        result.to_str().unwrap(),
        "--rtol",
        "1e-12",
        "--atol",
        "1e-14",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();
    let r = &v["result"];
    let (tg, trm) = (
        r["t_gamma_g"].as_f64().unwrap(),
        r["t_gamma_rm"].as_f64().unwrap(),
    );
    assert!(tg >= r["prop3_bound_g"].as_f64().unwrap());
    assert!(trm >= r["prop3_bound_rm"].as_f64().unwrap());
    for key in ["var_rm0", "v_g_end", "v_rm_end", "kl_end", "rhs_evals"] {
        assert!(r[key].is_number(), "missing {key}");
    }
}

#[test]
fn flow_marks_crossings_beyond_the_horizon() {
    let dir = scratch("horizon");
    let inst = write_instance(
        &dir,
        "i.json",
        &GOOD.replace("\"horizon\": 500", "\"horizon\": 0.01"),
    );
    let out = rmteach(&["theory", "flow", "--instance", &inst]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"]["t_gamma_g"], "> horizon 0.01");
}

#[test]
fn flow_rejects_bad_input_naming_the_field() {
    let dir = scratch("bad");
    let cases = [
        (GOOD.replace("\"r_rm\": [0.2, ", "\"r_rm\": ["), "r_rm"),
        (GOOD.replace("0.9, -0.3", "1.5, -0.3"), "r_rm[1]"),
        (GOOD.replace("\"gamma\": 0.3", "\"gamma\": 0"), "gamma"),
        (GOOD.replace("\"lambda\": 0.05", "\"lambda\": -1"), "lambda"),
        (
            GOOD.replace(
                "\"logits\": [0.5, -0.5, 1.0, -2.0, 0.0, 0.3]",
                "\"probs\": [0.5, 0.1, 0.1, 0.1, 0.1, 0.2]",
            ),
            "probs",
        ),
        (
            GOOD.replace(
                "\"logits\": [0.5, -0.5, 1.0, -2.0, 0.0, 0.3]",
                "\"probs\": [0.5, 0.1, 0.1, 0.1, 0.3, -0.1]",
            ),
            "probs[5]",
        ),
        (
            GOOD.replace("0.5, -0.5, 1.0", "NaN, -0.5, 1.0"),
            "not a valid instance",
        ),
        (GOOD.replace("\"horizon\"", "\"horizn\""), "horizn"),
    ];
    for (k, (json, field)) in cases.iter().enumerate() {
        let inst = write_instance(&dir, &format!("bad{k}.json"), json);
        let out = rmteach(&["theory", "flow", "--instance", &inst]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "case {k}: {err}");
        assert!(
            err.contains(field) && err.contains(&inst),
            "case {k}: expected `{field}` and the file in: {err}"
        );
    }
}

#[test]
fn figures_are_written() {
    let dir = scratch("figures");
    let out = rmteach(&["theory", "figures", "--out", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for stem in [
        "fig1_landscape",
        "t_gamma_vs_variance",
        "thm5_reward_curves",
        "thm6_reward_curves",
        "best_of_n",
    ] {
        for ext in ["png", "svg"] {
            let p = dir.join(format!("{stem}.{ext}"));
            assert!(
                std::fs::metadata(&p)
                    .map(|m| m.len() > 1000)
                    .unwrap_or(false),
                "{}",
                p.display()
            );
        }
    }
}

#[test]
fn flow_accepts_a_batch_and_names_the_bad_item() {
    let dir = scratch("batch");
    let inst = write_instance(&dir, "b.json", &format!("[{GOOD}, {GOOD}]"));
    let out = rmteach(&["theory", "flow", "--instance", &inst]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = v["result"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["t_gamma_g"], r[1]["t_gamma_g"]);
    let bad = GOOD.replace("\"gamma\": 0.3", "\"gamma\": -1");
    let inst = write_instance(&dir, "c.json", &format!("[{GOOD}, {bad}]"));
    let out = rmteach(&["theory", "flow", "--instance", &inst]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("[instance 1]") && err.contains("gamma"),
        "{err}"
    );
}
