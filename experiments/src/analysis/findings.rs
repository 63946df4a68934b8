//! What a run shows, in sentences computed from its tables and set beside the paper's
//! findings: whether each appears here, does not, or is mixed. Nothing is asserted
//! that the numbers do not say; the numbers are quoted with each sentence.

use super::bootstrap::{percentile_interval, Interval};
use super::increase::{at_epoch, EpochSummary};
use super::interaction::{cells_interval, seed_gt_increases};
use super::load::RewardColumn;
use super::summary::SummarizedRun;
use super::table10::default_table10_epoch;
use super::table2::{Correlation, Table2, TABLE2_ROWS};
use super::uncertainty::increases;

pub use super::verdict::verdict;

/// A coefficient with its interval, e.g. `0.94 [0.80, 0.99]`.
fn coef(x: Option<f64>, ci: Option<Interval>) -> String {
    let v = x.map_or_else(|| "undefined".into(), |v| format!("{v:.2}"));
    match ci {
        Some(i) => format!("{v} [{:.2}, {:.2}]", i.lo, i.hi),
        None => v,
    }
}

/// Both coefficients of `c` with intervals and verdicts.
fn both(c: &Correlation, paper_positive: bool) -> String {
    format!(
        "Pearson {} ({}), Spearman {} ({})",
        coef(c.pearson, c.pearson_ci),
        verdict(c.pearson_ci, paper_positive),
        coef(c.spearman, c.spearman_ci),
        verdict(c.spearman_ci, paper_positive)
    )
}

/// Section 4.1 findings of one run from its Table 2 (increases after epoch
/// `t2`'s epoch) and its per-reward summaries.
pub fn single_run_findings(run: &SummarizedRun, t2: &Table2, epoch: u32) -> Vec<String> {
    let mut out = Vec::new();
    let n = t2.rewards.len();
    let row = |name: &str| {
        TABLE2_ROWS
            .iter()
            .position(|r| *r == name)
            .map(|i| &t2.correlations[i])
    };
    if let Some((proxy, _)) = row("Reward Variance") {
        out.push(format!(
            "Proxy-reward increase after epoch {epoch} vs reward variance across {n} reward \
             models (95% bootstrap intervals over prompts and seeds; the paper: higher \
             variance, faster proxy increase): {}.",
            both(proxy, true)
        ));
    }
    // Which property tracks the ground-truth increase best.
    let best = t2
        .correlations
        .iter()
        .zip(TABLE2_ROWS)
        .filter_map(|((_, gt), name)| gt.pearson.map(|p| (p, name)))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((p, name)) = best {
        let acc = row("On-Policy Acc.").map(|(_, gt)| coef(gt.pearson, gt.pearson_ci));
        let combined = row("Reward Variance & Acc.").map(|(_, gt)| coef(gt.pearson, gt.pearson_ci));
        let diff = t2.combined_minus_accuracy_ci;
        out.push(format!(
            "Ground-truth increase after epoch {epoch}: the property with the highest \
             Pearson correlation is \"{name}\" ({p:.2}); \"Reward Variance & Acc.\": {}; \
             on-policy accuracy alone: {}. The paper finds variance and accuracy together \
             predict it better than accuracy alone; the difference of the two Pearson \
             coefficients has 95% interval {} ({}).",
            combined.unwrap_or_else(|| "undefined".into()),
            acc.unwrap_or_else(|| "undefined".into()),
            diff.map_or_else(|| "unknown".into(), |i| i.text()),
            verdict(diff, true)
        ));
    }
    // The perfectly accurate, low-variance reward against the others.
    let last = default_table10_epoch(&run.data, &run.summaries);
    let rewards = &run.data.rewards;
    let low = rewards.iter().position(|r| r.name == "gt-low-variance");
    if let (Some(e), Some(low)) = (last, low) {
        let others: Vec<usize> = (0..rewards.len())
            .filter(|&i| i != low && !rewards[i].ground_truth)
            .filter(|&i| t2.rewards.contains(&rewards[i].name))
            .collect();
        let mut idx = vec![low];
        idx.extend(&others);
        let inc = increases(&run.data, &idx, e);
        let (mut better, mut worse, mut unclear) = (Vec::new(), Vec::new(), Vec::new());
        for (j, &i) in others.iter().enumerate() {
            let d = inc.ground_truth[j + 1] - inc.ground_truth[0];
            let ci = inc.replicates.as_ref().and_then(|reps| {
                percentile_interval(&reps.iter().map(|r| r[j + 1].1 - r[0].1).collect::<Vec<_>>())
            });
            let text = format!(
                "{} ({d:+.3}{})",
                rewards[i].name,
                ci.map_or_else(String::new, |c| format!(" {}", c.text()))
            );
            match ci {
                Some(c) if c.above_zero() => better.push(text),
                Some(c) if c.below_zero() => worse.push(text),
                _ => unclear.push(text),
            }
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        out.push(format!(
            "The perfectly accurate, low-variance reward raised the ground truth by {:.3} \
             after epoch {e} (seeds {:?}). Differences of each reward model's increase from \
             it, with 95% intervals: clearly larger for {} of {}: {}; clearly smaller: {}; \
             not resolved: {} ({}: a perfectly accurate but low-variance teacher can be \
             slower than less accurate ones).",
            inc.ground_truth[0],
            inc.seeds,
            better.len(),
            others.len(),
            list(&better),
            list(&worse),
            list(&unclear),
            if !better.is_empty() {
                "as in the paper"
            } else if inc.replicates.is_none() {
                "inconclusive: no intervals"
            } else {
                "inconclusive"
            }
        ));
    }
    out
}

/// ` ahead of <runner-up> by d [lo, hi]` (the bootstrap interval of the difference of
/// the seed means, each reward's seeds resampled on its own) and whether the interval
/// lies above 0; empty text and `false` without a runner-up or interval.
fn best_margin(
    run: &SummarizedRun,
    rms: &[(&RewardColumn, &Vec<EpochSummary>)],
    best: &str,
    e: u32,
) -> (String, bool) {
    let runner_up = rms
        .iter()
        .filter(|(r, _)| r.name != best)
        .filter_map(|(r, s)| at_epoch(s, e).map(|a| (a.ground_truth.mean, r.name.as_str())))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    let Some((_, second)) = runner_up else {
        return (String::new(), false);
    };
    let seeds = |name: &str| seed_gt_increases(&run.data, name, e).unwrap_or_default();
    let (a, b) = (seeds(best), seeds(second));
    let diff = |m: &[f64]| m[0] - m[1];
    match cells_interval(&[&a, &b], diff, 7) {
        Some(ci) => {
            let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
            (
                format!(
                    "; ahead of {second} by {:.3} {}",
                    mean(&a) - mean(&b),
                    ci.text()
                ),
                ci.above_zero(),
            )
        }
        None => (String::new(), false),
    }
}

/// Section 4.2 findings across policies: the best teacher (largest mean
/// ground-truth increase at each policy's Table 10 epoch, with its margin over the
/// runner-up and that margin's 95% interval) and the most accurate reward model
/// on-policy, per policy; "as in the paper" for different best teachers only when
/// every policy's best is ahead of its runner-up beyond the interval.
pub fn policies_findings(runs: &[SummarizedRun]) -> Vec<String> {
    let mut out = Vec::new();
    let mut bests = Vec::new();
    let mut unresolved = Vec::new();
    for run in runs {
        let Some(e) = default_table10_epoch(&run.data, &run.summaries) else {
            continue;
        };
        let rms: Vec<_> = run
            .data
            .rewards
            .iter()
            .zip(&run.summaries)
            .filter(|(r, _)| !r.ground_truth)
            .collect();
        let best = rms
            .iter()
            .filter_map(|(r, s)| at_epoch(s, e).map(|a| (a.ground_truth.mean, r.name.as_str())))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let accurate = rms
            .iter()
            .map(|(r, _)| (r.entry.on_policy_accuracy, r.name.as_str()))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let (Some((g, b)), Some((acc, a))) = (best, accurate) {
            let (margin, resolved) = best_margin(run, &rms, b, e);
            out.push(format!(
                "{}: best teacher {b} (ground-truth increase {g:.3} after epoch {e}{margin}); \
                 most accurate on-policy {a} ({acc:.3}){}.",
                run.data.policy,
                if a == b {
                    ", the same"
                } else {
                    ", a different one"
                }
            ));
            bests.push(b.to_string());
            if !resolved {
                unresolved.push(run.data.policy.clone());
            }
        }
    }
    if bests.len() > 1 {
        let mut distinct = bests.clone();
        distinct.sort();
        distinct.dedup();
        out.push(if distinct.len() > 1 && unresolved.is_empty() {
            format!(
                "The best reward model differs across policies ({}), as in the paper \
                 (each ahead of its runner-up with a 95% interval above 0).",
                distinct.join(", ")
            )
        } else if distinct.len() > 1 {
            format!(
                "The best reward model differs across policies ({}), but inconclusive: \
                 for {} the best is not ahead of the runner-up beyond its 95% interval.",
                distinct.join(", "),
                unresolved.join(", ")
            )
        } else {
            format!(
                "The same reward model ({}) is the best teacher for every policy: the \
                 paper's \"different language models, different best reward models\" \
                 does not appear here.",
                distinct[0]
            )
        });
    }
    out
}
