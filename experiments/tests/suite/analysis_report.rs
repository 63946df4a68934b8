//! The analysis stage on a fake run directory with known numbers:
//! 3 reward models + the ground truth, 3 seeds, epochs 0..=2.

use std::path::Path;

use rmteach::metrics::{pearson, spearman};
use rmteach::report::Cell;
use rmteach_experiments::analysis::{
    summarize_run, table1, table2, write_policies_report, write_report, AnalysisError,
    RewardColumn, Table2Options,
};
use rmteach_experiments::records::{
    read_eval_log, read_rm_eval, EvalRecord, PerPrompt, RecordError, RewardStats, RmEvalEntry,
    RmEvalRow, RmEvalTable,
};

const RMS: [&str; 4] = ["rm_100p", "rm_50p", "rm_0p", "gt"];
const VARIANCE: [f64; 4] = [0.6, 0.3, 0.45, 0.5];
const ON_ACC: [f64; 4] = [0.7, 0.65, 0.55, 1.0];
const OFF_ACC: [f64; 4] = [0.6, 0.7, 0.8, 1.0];
const SEEDS: [u64; 3] = [0, 1, 2];

/// Proxy reward of reward `i`, seed `s`, epoch `e` (epoch 0 differs per seed).
fn proxy(i: usize, s: u64, e: u32) -> f64 {
    0.1 * s as f64 - 0.05 + f64::from(e) * (0.2 * (i as f64 + 1.0) + 0.03 * s as f64 * s as f64)
}

/// Ground-truth reward of reward `i`, seed `s`, epoch `e`.
fn gt(i: usize, s: u64, e: u32) -> f64 {
    -0.2 * s as f64
        + f64::from(e) * (0.5 - 0.1 * i as f64 + 0.02 * s as f64)
        + 0.01 * f64::from(e * e)
}

fn kl(i: usize, s: u64, e: u32) -> f64 {
    f64::from(e) * (1.0 + i as f64) + 0.1 * s as f64 * f64::from(e)
}

/// The rm_eval stage's table of the fake run (columns in `RMS` order).
fn rm_eval(on_acc: [f64; 4]) -> RmEvalTable {
    let row = |metric: &str, values: [f64; 4]| RmEvalRow {
        metric: metric.into(),
        values: values.to_vec(),
    };
    RmEvalTable {
        columns: RMS.map(String::from).to_vec(),
        rows: vec![
            row("Reward Variance", VARIANCE),
            row("On-Policy Acc.", on_acc),
            row("Off-Policy Acc.", OFF_ACC),
        ],
        rewards: (0..4)
            .map(|i| {
                let entry = RmEvalEntry {
                    reward_variance: VARIANCE[i],
                    on_policy_accuracy: on_acc[i],
                    off_policy_accuracy: OFF_ACC[i],
                    intervals: None,
                    per_prompt: None,
                };
                (RMS[i].to_string(), entry)
            })
            .collect(),
        prompts: 4,
        samples_per_prompt: 10,
        low_variance: None,
    }
}

/// Writes `table` where the rm_eval stage writes it.
fn write_rm_eval(dir: &Path, table: &RmEvalTable) {
    let path = RmEvalTable::path(dir);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, serde_json::to_string_pretty(table).unwrap()).unwrap();
}

/// An `eval.jsonl` record with these means (no per-prompt values).
fn record(epoch: u32, proxy: f64, ground_truth: f64, kl: f64) -> EvalRecord {
    let stats = |mean| RewardStats {
        mean,
        variance: 1.0,
        on_policy_accuracy: 0.5,
    };
    EvalRecord {
        epoch,
        update: u64::from(epoch) * 4,
        proxy: stats(proxy),
        ground_truth: stats(ground_truth),
        kl,
        train_kl: (epoch > 0).then_some(kl),
        kl_eval_topk: None,
        proxy_per_prompt: Vec::new(),
        gt_per_prompt: Vec::new(),
        seconds: 0.5,
    }
}

/// One `eval.jsonl` line.
fn eval_line(record: &EvalRecord) -> String {
    serde_json::to_string(record).unwrap()
}

fn fake_run(dir: &Path, on_acc: [f64; 4]) {
    write_rm_eval(dir, &rm_eval(on_acc));
    for (i, rm) in RMS.iter().enumerate() {
        for s in SEEDS {
            let seed_dir = dir.join("pg").join(rm).join(format!("seed{s}"));
            std::fs::create_dir_all(&seed_dir).unwrap();
            // Written out of order, to check sorting.
            let lines: Vec<String> = [2u32, 0, 1]
                .iter()
                .map(|&e| eval_line(&record(e, proxy(i, s, e), gt(i, s, e), kl(i, s, e))))
                .collect();
            std::fs::write(seed_dir.join("eval.jsonl"), lines.join("\n") + "\n").unwrap();
        }
    }
}

fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    let m = xs.iter().sum::<f64>() / n;
    let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, v.sqrt())
}

fn float(c: &Cell) -> f64 {
    match c {
        Cell::Float(x) => *x,
        other => panic!("expected a float, got {other:?}"),
    }
}

#[test]
fn table1_has_paper_rows_and_reward_columns() {
    let table = rm_eval(ON_ACC);
    let columns: Vec<RewardColumn> = table
        .entries()
        .map(|(name, entry)| RewardColumn {
            name: name.into(),
            ground_truth: name == "gt",
            entry: entry.clone(),
        })
        .collect();
    let t = table1(&columns).unwrap();
    assert_eq!(t.columns, ["Quantity", "rm_100p", "rm_50p", "rm_0p", "gt"]);
    let labels: Vec<_> = t.rows.iter().map(|r| r[0].clone()).collect();
    assert_eq!(
        labels,
        ["Reward Variance", "On-Policy Acc.", "Off-Policy Acc."].map(Cell::from)
    );
    for i in 0..4 {
        assert_eq!(float(&t.rows[0][i + 1]), VARIANCE[i]);
        assert_eq!(float(&t.rows[1][i + 1]), ON_ACC[i]);
        assert_eq!(float(&t.rows[2][i + 1]), OFF_ACC[i]);
    }
}

#[test]
fn increase_mean_and_std_over_seeds() {
    let dir = tempfile::tempdir().unwrap();
    fake_run(dir.path(), ON_ACC);
    let run = summarize_run(dir.path()).unwrap();
    let name = dir.path().file_name().unwrap().to_string_lossy();
    assert_eq!(run.data.policy, name);
    for (i, summary) in run.summaries.iter().enumerate() {
        assert_eq!(
            summary.iter().map(|e| e.epoch).collect::<Vec<_>>(),
            [0, 1, 2]
        );
        for e in summary {
            assert_eq!(e.n_seeds, 3);
            let p: Vec<f64> = SEEDS
                .iter()
                .map(|&s| proxy(i, s, e.epoch) - proxy(i, s, 0))
                .collect();
            let g: Vec<f64> = SEEDS
                .iter()
                .map(|&s| gt(i, s, e.epoch) - gt(i, s, 0))
                .collect();
            let k: Vec<f64> = SEEDS.iter().map(|&s| kl(i, s, e.epoch)).collect();
            for (got, want) in [
                (e.proxy, mean_std(&p)),
                (e.ground_truth, mean_std(&g)),
                (e.kl, mean_std(&k)),
            ] {
                assert!((got.mean - want.0).abs() < 1e-12, "{got:?} vs {want:?}");
                assert!(
                    (got.std.unwrap() - want.1).abs() < 1e-12,
                    "{got:?} vs {want:?}"
                );
            }
        }
        assert_eq!(summary[0].proxy.mean, 0.0);
    }
}

#[test]
fn table2_matches_shared_pearson_and_spearman_without_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    fake_run(dir.path(), ON_ACC);
    let run = summarize_run(dir.path()).unwrap();
    let t2 = table2(&run.data, &run.summaries, Table2Options::default()).unwrap();
    assert_eq!(t2.rewards, ["rm_100p", "rm_50p", "rm_0p"]);
    assert!(t2.excluded[0].starts_with("gt"), "{:?}", t2.excluded);
    let inc = |f: fn(usize, u64, u32) -> f64| -> Vec<f64> {
        (0..3)
            .map(|i| SEEDS.iter().map(|&s| f(i, s, 1) - f(i, s, 0)).sum::<f64>() / 3.0)
            .collect()
    };
    let (p_inc, g_inc) = (inc(proxy), inc(gt));
    let var = VARIANCE[..3].to_vec();
    let on_off: Vec<f64> = (0..3).map(|i| 0.5 * (ON_ACC[i] + OFF_ACC[i])).collect();
    let combined: Vec<f64> = (0..3).map(|i| 0.5 * (VARIANCE[i] + ON_ACC[i])).collect();
    let rows = [
        var,
        ON_ACC[..3].to_vec(),
        OFF_ACC[..3].to_vec(),
        on_off,
        combined,
    ];
    for (r, x) in rows.iter().enumerate() {
        let row = &t2.table.rows[r];
        let want = [
            pearson(x, &p_inc).unwrap(),
            spearman(x, &p_inc).unwrap(),
            pearson(x, &g_inc).unwrap(),
            spearman(x, &g_inc).unwrap(),
        ];
        for (c, w) in want.iter().enumerate() {
            assert!((float(&row[c + 1]) - w).abs() < 1e-12, "row {r} col {c}");
        }
        assert_eq!(row[13], Cell::Text(String::new()));
    }
}

#[test]
fn undefined_correlation_is_missing_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    fake_run(dir.path(), [0.7, 0.7, 0.7, 1.0]);
    let run = summarize_run(dir.path()).unwrap();
    let t2 = table2(&run.data, &run.summaries, Table2Options::default()).unwrap();
    let row = &t2.table.rows[1];
    assert_eq!(row[0], Cell::from("On-Policy Acc."));
    assert!(row[1..13].iter().all(|c| *c == Cell::Missing), "{row:?}");
    match &row[13] {
        Cell::Text(note) => assert!(note.contains("constant"), "{note}"),
        other => panic!("{other:?}"),
    }
    assert!(!t2.table.to_markdown().contains("NaN"));
    assert!(!t2.table.to_csv().contains("NaN"));
    // Other rows are still defined.
    assert!(t2.table.rows[0][1].is_numeric());
}

#[test]
fn write_report_writes_tables_figures_and_report_md() {
    let dir = tempfile::tempdir().unwrap();
    fake_run(dir.path(), ON_ACC);
    let out = dir.path().join("report");
    let files = write_report(dir.path(), &out).unwrap();
    for stem in ["table1", "table2", "table10", "reward_increase"] {
        for ext in ["md", "csv", "json"] {
            let p = out.join(format!("{stem}.{ext}"));
            assert!(files.tables.contains(&p) && p.is_file(), "{}", p.display());
        }
    }
    for stem in [
        "reward_increase_vs_epoch",
        "reward_increase_vs_kl",
        "gt_increase_bars",
    ] {
        for ext in ["png", "svg"] {
            let p = out.join(format!("{stem}.{ext}"));
            assert!(files.figures.contains(&p) && p.is_file(), "{}", p.display());
        }
    }
    let md = std::fs::read_to_string(&files.report_md).unwrap();
    assert!(md.contains("Table 1") && md.contains("Table 2") && md.contains("Table 10"));
    assert!(md.contains("3 seed(s)"), "{md}");
    assert!(md.contains("reward_increase_vs_epoch.png"));
    let t10 = std::fs::read_to_string(out.join("table10.md")).unwrap();
    assert!(t10.contains('±') && !t10.contains("| gt |"), "{t10}");
    assert!(files.notes.is_empty(), "{:?}", files.notes);
}

#[test]
fn table1_only_when_no_policy_gradient_runs() {
    let dir = tempfile::tempdir().unwrap();
    write_rm_eval(dir.path(), &rm_eval(ON_ACC));
    let files = write_report(dir.path(), &dir.path().join("report")).unwrap();
    assert_eq!(files.tables.len(), 3);
    assert!(files.figures.is_empty());
    assert!(!files.notes.is_empty());
}

#[test]
fn missing_inputs_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = write_report(dir.path(), &dir.path().join("report")).unwrap_err();
    assert!(matches!(
        err,
        AnalysisError::Record(RecordError::Missing { .. })
    ));
    assert!(err.to_string().contains("rm_eval.json"), "{err}");

    fake_run(dir.path(), ON_ACC);
    std::fs::remove_file(dir.path().join("pg/rm_50p/seed1/eval.jsonl")).unwrap();
    let err = summarize_run(dir.path()).unwrap_err();
    assert!(err.to_string().contains("rm_50p/seed1/eval.jsonl"), "{err}");

    std::fs::write(
        dir.path().join("pg/rm_50p/seed1/eval.jsonl"),
        eval_line(&record(1, 0.0, 0.0, 0.0)),
    )
    .unwrap();
    let err = summarize_run(dir.path()).unwrap_err();
    assert!(err.to_string().contains("epoch-0"), "{err}");
    assert!(err.to_string().contains("rm_50p/seed1"), "{err}");

    std::fs::write(
        dir.path().join("pg/rm_50p/seed1/eval.jsonl"),
        "{\"epoch\": 0}\n",
    )
    .unwrap();
    let err = summarize_run(dir.path()).unwrap_err();
    assert!(err.to_string().contains("eval.jsonl line 1"), "{err}");
}

#[test]
fn records_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    write_rm_eval(dir.path(), &rm_eval(ON_ACC));
    assert_eq!(read_rm_eval(dir.path()).unwrap(), rm_eval(ON_ACC));
    // A column without an entry, or listed twice, is refused by name.
    let mut table = rm_eval(ON_ACC);
    table.columns.push("rm_x".into());
    write_rm_eval(dir.path(), &table);
    let err = read_rm_eval(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("rm_eval.json") && err.contains("\"rm_x\""),
        "{err}"
    );
    let mut table = rm_eval(ON_ACC);
    table.columns.push("rm_0p".into());
    write_rm_eval(dir.path(), &table);
    let err = read_rm_eval(dir.path()).unwrap_err().to_string();
    assert!(err.contains("listed twice"), "{err}");
    let log = dir.path().join("eval.jsonl");
    let rec = |epoch, proxy| record(epoch, proxy, 0.5, 0.25);
    let text = [
        eval_line(&rec(1, 0.1)),
        String::new(),
        eval_line(&rec(0, 0.0)),
        eval_line(&rec(1, 0.2)),
    ]
    .join("\n");
    std::fs::write(&log, text).unwrap();
    assert_eq!(read_eval_log(&log).unwrap(), [rec(0, 0.0), rec(1, 0.2)]);
}

#[test]
fn policies_report_stitches_table10_and_bars() {
    let root = tempfile::tempdir().unwrap();
    let (a, b) = (root.path().join("pythia"), root.path().join("llama"));
    fake_run(&a, ON_ACC);
    fake_run(&b, [0.6, 0.8, 0.7, 1.0]);
    let out = root.path().join("sec42");
    let files = write_policies_report(&[a, b], Some(2), &[], &out).unwrap();
    assert!(out.join("table10_0.csv").is_file() && out.join("table10_1.json").is_file());
    assert!(out.join("gt_increase_bars_policies.png").is_file());
    assert!(files.report_md.is_file());
}

#[test]
fn table2_uses_only_the_seeds_every_reward_model_has() {
    let dir = tempfile::tempdir().unwrap();
    fake_run(dir.path(), ON_ACC);
    // rm_50p's seed 2 stopped before epoch 1.
    let only0 = eval_line(&record(0, proxy(1, 2, 0), gt(1, 2, 0), 0.0));
    std::fs::write(dir.path().join("pg/rm_50p/seed2/eval.jsonl"), only0 + "\n").unwrap();
    let run = summarize_run(dir.path()).unwrap();
    let t2 = table2(&run.data, &run.summaries, Table2Options::default()).unwrap();
    assert_eq!(t2.seeds, [0, 1]);
    assert!(
        t2.excluded.iter().any(|e| e.contains("[2]")),
        "{:?}",
        t2.excluded
    );
    // The increases average seeds 0 and 1 for every reward model.
    let want: Vec<f64> = (0..3)
        .map(|i| {
            [0u64, 1]
                .iter()
                .map(|&s| gt(i, s, 1) - gt(i, s, 0))
                .sum::<f64>()
                / 2.0
        })
        .collect();
    for (g, w) in t2.gt_increase.iter().zip(&want) {
        assert!((g - w).abs() < 1e-12, "{g} vs {w}");
    }
    // No per-prompt values in these logs: no intervals, and the verdicts say so.
    assert!(t2
        .correlations
        .iter()
        .all(|(p, g)| p.pearson_ci.is_none() && g.pearson_ci.is_none()));
}

#[test]
fn verdicts_follow_the_interval_not_the_sign() {
    use rmteach_experiments::analysis::bootstrap::Interval;
    use rmteach_experiments::analysis::findings::verdict;
    let i = |lo, hi| Some(Interval { lo, hi });
    assert_eq!(verdict(i(0.1, 0.9), true), "as in the paper");
    assert_eq!(verdict(i(-0.9, -0.1), true), "opposite to the paper");
    assert!(verdict(i(-0.2, 0.9), true).starts_with("inconclusive"));
    assert!(verdict(None, true).starts_with("inconclusive"));
    assert_eq!(verdict(i(-0.9, -0.1), false), "as in the paper");
}

#[test]
fn per_prompt_logs_give_intervals_around_the_point_estimates() {
    let dir = tempfile::tempdir().unwrap();
    fake_run(dir.path(), ON_ACC);
    // Rewrite every log with per-prompt means (4 prompts) whose average is the mean,
    // and give every reward per-prompt Table 1 values averaging its numbers.
    let spread = [-0.03, 0.01, 0.04, -0.02];
    let mut file = rm_eval(ON_ACC);
    for (i, name) in RMS.iter().enumerate() {
        let around = |v: f64| spread.iter().map(|d| v + d * (1.0 + i as f64)).collect();
        let r = file.rewards.get_mut(*name).unwrap();
        r.per_prompt = Some(PerPrompt {
            reward_variance: around(VARIANCE[i]),
            on_policy_accuracy: around(ON_ACC[i]),
            off_policy_accuracy: around(OFF_ACC[i]),
        });
    }
    write_rm_eval(dir.path(), &file);
    for (i, rm) in RMS.iter().enumerate() {
        for s in SEEDS {
            let lines: Vec<String> = [0u32, 1, 2]
                .iter()
                .map(|&e| {
                    let (p, g) = (proxy(i, s, e), gt(i, s, e));
                    let pp: Vec<f64> = spread.iter().map(|d| p + d * f64::from(e)).collect();
                    let gp: Vec<f64> = spread.iter().map(|d| g - d * f64::from(e)).collect();
                    eval_line(&EvalRecord {
                        proxy_per_prompt: pp,
                        gt_per_prompt: gp,
                        ..record(e, p, g, 0.0)
                    })
                })
                .collect();
            let seed_dir = dir.path().join("pg").join(rm).join(format!("seed{s}"));
            std::fs::write(seed_dir.join("eval.jsonl"), lines.join("\n") + "\n").unwrap();
        }
    }
    let run = summarize_run(dir.path()).unwrap();
    let t2 = table2(&run.data, &run.summaries, Table2Options::default()).unwrap();
    for (p, g) in &t2.correlations {
        for ci in [p.pearson_ci, p.spearman_ci, g.pearson_ci, g.spearman_ci] {
            let ci = ci.expect("an interval from per-prompt logs");
            assert!(
                ci.lo <= ci.hi && ci.lo >= -1.0 - 1e-12 && ci.hi <= 1.0 + 1e-12,
                "{ci:?}"
            );
        }
    }
    assert!(t2.combined_minus_accuracy_ci.is_some());
    // The interval columns of the table hold the same numbers.
    let row = &t2.table.rows[0];
    assert_eq!(float(&row[5]), t2.correlations[0].0.pearson_ci.unwrap().lo);
    assert_eq!(float(&row[10]), t2.correlations[0].1.pearson_ci.unwrap().hi);
}
