//! End-to-end runs of the `rmteach` binary on tiny inputs.

mod common;

use common::{ok, rmteach};
use std::path::PathBuf;
use std::process::Command;

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
    let stdout = ok(&out);
    assert!(!stdout.contains("FAIL"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("verify.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), rmteach_theory::checks::all_checks().len());
    assert!(rows.iter().all(|r| r["result"] == "PASS"));
    assert!(
        dir.join("verify.md").exists()
            && dir.join("verify.csv").exists()
            && dir.join("verify-details.json").exists()
    );
}

#[test]
fn an_output_path_that_is_a_file_fails_before_any_work() {
    let dir = scratch("out-is-file");
    let file = dir.join("taken");
    std::fs::write(&file, "not a directory").unwrap();
    let file = file.display().to_string();
    for args in [
        vec!["theory", "verify", "--quick", "--out", &file],
        vec!["theory", "levers", "--quick", "--out", &file],
        vec!["theory", "figures", "--out", &file],
    ] {
        let out = rmteach(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?} accepted");
        let e = String::from_utf8_lossy(&out.stderr);
        assert!(
            e.contains(&format!("--out {file}")) && e.contains("is a file, not a directory"),
            "{args:?}: {e}"
        );
        // Refused up front: verify printed no check, levers measured nothing.
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains("PASS") && !e.contains("levers:"),
            "{stdout}{e}"
        );
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "not a directory");
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
    let stdout = ok(&out);
    assert!(
        stdout.contains("negative controls: 12 of 12 checks fail as they must"),
        "{stdout}"
    );
    let controls: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("negative-controls.json")).unwrap())
            .unwrap();
    let controls = controls.as_array().unwrap();
    assert_eq!(controls.len(), 12);
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
    ok(&out);
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
        &GOOD
            .replace("\"horizon\": 500", "\"horizon\": 0.01")
            .replace("{", "{\"name\": \"short\", "),
    );
    let out = rmteach(&["theory", "flow", "--instance", &inst]);
    ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"]["t_gamma_g"], "> horizon 0.01");
    assert_eq!(v["result"]["name"], "short");
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
            "`logits[0]`: not valid JSON",
        ),
        (
            GOOD.replace("\"gamma\": 0.3", "\"gamma\": \"0.3\""),
            "`gamma`: expected a number, found a string \"0.3\"",
        ),
        (
            GOOD.replace("0.9, -0.3", "0.9, null"),
            "`r_rm[2]`: expected a number, found null",
        ),
        (
            GOOD.replace("\"lambda\": 0.05", "\"lambda\": 0.05, \"lambda\": 0.5"),
            "duplicate field `lambda`",
        ),
        ("[]".to_string(), "the batch is empty"),
        ("  [\n ]\n".to_string(), "the batch is empty"),
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
    ok(&out);
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
    ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = v["result"].as_array().unwrap();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["t_gamma_g"], r[1]["t_gamma_g"]);
    let bad = GOOD.replace("\"gamma\": 0.3", "\"gamma\": -1");
    let inst = write_instance(&dir, "c.json", &format!("[{GOOD}, {bad}]"));
    let out = rmteach(&["theory", "flow", "--instance", &inst]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("`[1].gamma`: must be"), "{err}");
    // A type error deep in a batch names the item and the field.
    let bad = GOOD.replace("\"horizon\": 500", "\"horizon\": \"500\"");
    let inst = write_instance(&dir, "d.json", &format!("[{GOOD}, {GOOD}, {GOOD}, {bad}]"));
    let out = rmteach(&["theory", "flow", "--instance", &inst]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains(&inst)
            && err.contains("`[3].horizon`: expected a number, found a string \"500\""),
        "{err}"
    );
}

/// The output's keys, as the README and `theory flow --help` list them.
const RESULT_KEYS: [&str; 15] = [
    "t_gamma_g",
    "t_gamma_rm",
    "var_g0",
    "var_rm0",
    "prop3_bound_g",
    "prop3_bound_rm",
    "v_g0",
    "v_rm0",
    "v_g_end",
    "v_rm_end",
    "kl_end",
    "t_end",
    "rhs_evals",
    "stiffness_warnings",
    "probs_end",
];

#[test]
fn flow_output_has_the_documented_keys() {
    let dir = scratch("keys");
    let inst = write_instance(&dir, "i.json", GOOD);
    let out = rmteach(&["theory", "flow", "--instance", &inst, "--trajectory"]);
    ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // serde_json's maps sort their keys: compare sorted.
    let top: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(top, ["atol", "instance", "method", "result", "rtol"]);
    let r = v["result"].as_object().unwrap();
    let mut want: Vec<&str> = RESULT_KEYS.to_vec();
    want.push("trajectory");
    let mut sorted = want.clone();
    sorted.sort_unstable();
    assert_eq!(r.keys().collect::<Vec<_>>(), sorted);
    let t = &r["trajectory"];
    assert_eq!(
        t["times"].as_array().unwrap().len(),
        t["observations"].as_array().unwrap().len()
    );
    assert_eq!(t["observations"][0].as_array().unwrap().len(), 3);
    // Every key is documented in --help and in the README's `theory flow` paragraph.
    let help = rmteach(&["theory", "flow", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout);
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    for key in want
        .iter()
        .chain(top.iter().map(|k| k.as_str()).collect::<Vec<_>>().iter())
    {
        assert!(help.contains(key), "--help lacks {key}");
        assert!(readme.contains(&format!("`{key}`")), "README lacks `{key}`");
    }
}

#[test]
fn flow_help_lists_the_input_keys_with_their_constraints() {
    let help = ok(&rmteach(&["theory", "flow", "--help"]));
    for line in [
        "num_prompts  whole number >= 1; default 1",
        "lambda       number >= 0; required",
        "gamma        number > 0; required",
        "logits       array of |Y| finite numbers",
        "probs        array of |Y| numbers > 0 summing to 1",
        "r_rm         array of |Y| numbers in [-1, 1]; required",
        "r_g          array of |Y| >= 2 numbers in [-1, 1]; required",
        "horizon      number > 0; required",
        "name         string; optional",
        "Exit status: 0",
    ] {
        assert!(help.contains(line), "--help lacks `{line}`:\n{help}");
    }
}

#[test]
fn an_infinite_bound_is_the_string_inf_and_the_horizon_is_short() {
    let dir = scratch("inf");
    // r_RM constant: Var[r_RM] = 0, Proposition 3's bound is infinite and the flow
    // stands still, so neither level is reached by the horizon.
    let json = GOOD
        .replace(
            "\"r_rm\": [0.2, 0.9, -0.3, 0.8, -1.0, 0.1]",
            "\"r_rm\": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]",
        )
        .replace("\"horizon\": 500", "\"horizon\": 100000");
    let inst = write_instance(&dir, "i.json", &json);
    let text = ok(&rmteach(&["theory", "flow", "--instance", &inst]));
    assert!(!text.contains("null"), "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let r = &v["result"];
    assert_eq!(r["prop3_bound_g"], "inf");
    assert_eq!(r["prop3_bound_rm"], "inf");
    assert_eq!(r["t_gamma_rm"], "> horizon 1e5");
    assert_eq!(r["t_gamma_g"], "> horizon 1e5");
    assert_eq!(r["t_end"], 1e5);
    // It stops early, certified at its fixed point (pi_0 itself, r_RM constant), and
    // says so.
    let settled = &r["settled"];
    assert!(settled["at"].as_f64().unwrap() < 1e5, "{text}");
    assert!(settled["bound"].as_f64().unwrap() <= 1e-10, "{text}");
}

#[test]
fn tolerance_errors_name_the_flag_and_accept_negative_values() {
    let dir = scratch("flags");
    let inst = write_instance(&dir, "i.json", GOOD);
    for (flag, value, says) in [
        ("--rtol", "-1", "must be in (0, 1), got -1"),
        ("--atol", "-1e-12", "must be in (0, 1), got -0.000000000001"),
        ("--rtol", "2", "must be in (0, 1), got 2"),
        ("--atol", "0", "must be in (0, 1), got 0"),
        ("--rtol", "tight", "not a number"),
        ("--rtol", "--atol", "not a number"),
        ("--max-steps", "0", "0 is not in 1.."),
        ("--max-steps", "-5", "-5 is not in 1.."),
    ] {
        let out = rmteach(&["theory", "flow", "--instance", &inst, flag, value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(
            err.contains(flag) && err.contains(says) && !err.contains(&inst),
            "{flag} {value}: {err}"
        );
        assert!(!err.contains("unexpected argument"), "{err}");
    }
}

#[test]
fn a_failing_instance_in_a_batch_leaves_the_others_written() {
    let dir = scratch("partial");
    // Within 3 steps the short flow reaches its horizon and the long one cannot.
    let short = GOOD.replace("\"horizon\": 500", "\"horizon\": 0.001");
    let named = GOOD.replace("{", "{\"name\": \"long\", ");
    let inst = write_instance(&dir, "b.json", &format!("[{short}, {named}, {short}]"));
    let result = dir.join("r.json");
    let out = rmteach(&[
        "theory",
        "flow",
        "--instance",
        &inst,
        "--max-steps",
        "3",
        "--out",
        result.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("{inst} [1] (\"long\")")) && err.contains("1 of 3"),
        "{err}"
    );
    for text in [
        String::from_utf8_lossy(&out.stdout).to_string(),
        std::fs::read_to_string(&result).unwrap(),
    ] {
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let r = v["result"].as_array().unwrap();
        assert_eq!(r.len(), 3);
        for i in [0, 2] {
            assert_eq!(r[i]["t_gamma_g"], "> horizon 1e-3", "{text}");
            assert_eq!(r[i]["t_end"], 0.001);
        }
        assert_eq!(r[1]["index"], 1);
        assert_eq!(r[1]["name"], "long");
        let msg = r[1]["error"].as_str().unwrap();
        assert!(msg.contains("steps"), "{msg}");
        assert_eq!(r[1].as_object().unwrap().len(), 3);
    }
    // The same failure alone is an error (exit 2) naming the file.
    let one = write_instance(&dir, "one.json", GOOD);
    let out = rmteach(&["theory", "flow", "--instance", &one, "--max-steps", "3"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&one) && err.contains("steps"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn the_readme_example_is_what_flow_prints() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("```json\n{\n  \"instance\": \"theory/examples/instance.json\"")
        .expect("README has the example output")
        + "```json\n".len();
    let end = start + readme[start..].find("```").unwrap();
    let shown: serde_json::Value = serde_json::from_str(&readme[start..end]).unwrap();
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(env!("CARGO_BIN_EXE_rmteach"))
        .current_dir(root)
        .args([
            "theory",
            "flow",
            "--instance",
            "theory/examples/instance.json",
        ])
        .output()
        .unwrap();
    let now: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    // The same keys and, to the solver's tolerance, the same figures (the last digits
    // and the evaluation count may move with the solver).
    let keys =
        |v: &serde_json::Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(keys(&shown), keys(&now));
    assert_eq!(keys(&shown["result"]), keys(&now["result"]));
    for key in [
        "t_gamma_g",
        "t_gamma_rm",
        "prop3_bound_g",
        "v_g_end",
        "kl_end",
    ] {
        let (a, b) = (
            shown["result"][key].as_f64().unwrap(),
            now["result"][key].as_f64().unwrap(),
        );
        assert!(
            (a - b).abs() <= 1e-6 * b.abs(),
            "{key}: README {a}, now {b}"
        );
    }
}

#[test]
fn flow_takes_the_update_and_the_entropy_bonus() {
    let dir = scratch("dynamics");
    let inst = write_instance(&dir, "i.json", GOOD);
    let run = |extra: &[&str]| {
        let mut args = vec!["theory", "flow", "--instance", &inst];
        args.extend_from_slice(extra);
        let out = rmteach(&args);
        assert!(
            out.status.success(),
            "{extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let pg = run(&[]);
    let npg = run(&["--update", "npg"]);
    let ent = run(&["--entropy", "0.2"]);
    assert!(pg.get("update").is_none() && pg.get("entropy").is_none());
    assert_eq!(npg["update"], "npg");
    assert_eq!(ent["entropy"], 0.2);
    let t = |v: &serde_json::Value| v["result"]["t_gamma_rm"].as_f64().unwrap();
    // Three different flows: three different crossing times.
    assert!((t(&pg) - t(&npg)).abs() > 1e-3 && (t(&pg) - t(&ent)).abs() > 1e-3);
    for (flag, value) in [
        ("--update", "adam"),
        ("--entropy", "-0.1"),
        ("--entropy", "x"),
    ] {
        let out = rmteach(&["theory", "flow", "--instance", &inst, flag, value]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag), "{flag} {value}: {err}");
    }
    let help = String::from_utf8_lossy(&rmteach(&["theory", "flow", "--help"]).stdout).into_owned();
    assert!(help.contains("no 1/|S|") && help.contains("Tabular policies only"));
}

#[test]
fn levers_quick_writes_the_report_json_and_figures() {
    let dir = scratch("levers");
    let out = rmteach(&[
        "theory",
        "levers",
        "--quick",
        "--out",
        dir.to_str().unwrap(),
    ]);
    ok(&out);
    for f in [
        "levers.md",
        "levers.json",
        "levers_flows.png",
        "levers_optimizers.png",
        "levers_scaling.png",
    ] {
        assert!(dir.join(f).exists(), "missing {f}");
    }
    let md = std::fs::read_to_string(dir.join("levers.md")).unwrap();
    assert!(
        md.contains("NPG flow") && md.contains("Adam, k = 4"),
        "{md}"
    );
}
