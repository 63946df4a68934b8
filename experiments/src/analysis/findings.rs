//! What a run shows, in sentences computed from its tables and set beside the paper's
//! findings: whether each appears here, does not, or is mixed. Nothing is asserted
//! that the numbers do not say; the numbers are quoted with each sentence.

use super::increase::at_epoch;
use super::report::RunSummary;
use super::table10::default_table10_epoch;
use super::table2::{Correlation, Table2, TABLE2_ROWS};

/// "as in the paper" when both coefficients have the expected sign, "unlike the
/// paper" when neither has, "mixed" otherwise.
fn verdict(c: &Correlation, expect_positive: bool) -> &'static str {
    let agrees = |x: Option<f64>| x.map(|v| (v > 0.0) == expect_positive);
    match (agrees(c.pearson), agrees(c.spearman)) {
        (Some(true), Some(true)) => "as in the paper",
        (Some(false), Some(false)) => "unlike the paper",
        _ => "mixed",
    }
}

fn coef(x: Option<f64>) -> String {
    x.map_or_else(|| "undefined".into(), |v| format!("{v:.2}"))
}

/// Section 4.1 findings of one run from its Table 2 (increases after epoch
/// `t2`'s epoch) and its per-reward summaries.
pub fn single_run_findings(run: &RunSummary, t2: &Table2, epoch: u32) -> Vec<String> {
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
             models: Pearson {}, Spearman {} ({}: higher variance, faster proxy increase).",
            coef(proxy.pearson),
            coef(proxy.spearman),
            verdict(proxy, true)
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
        let acc = row("On-Policy Acc.").map(|(_, gt)| coef(gt.pearson));
        out.push(format!(
            "Ground-truth increase after epoch {epoch}: the property with the highest \
             Pearson correlation is \"{name}\" ({p:.2}); on-policy accuracy alone: {}. \
             The paper finds variance and accuracy together predict it better than \
             accuracy alone; here that {}.",
            acc.unwrap_or_else(|| "undefined".into()),
            if name == "Reward Variance & Acc." {
                "appears"
            } else {
                "does not appear"
            }
        ));
    }
    // The perfectly accurate, low-variance reward against the others.
    let increase_at = |name: &str, e: u32| {
        let i = run
            .data
            .rm_eval
            .rewards
            .iter()
            .position(|r| r.name == name)?;
        at_epoch(&run.summaries[i], e).map(|s| s.ground_truth.mean)
    };
    let last = default_table10_epoch(&run.data, &run.summaries);
    if let (Some(e), Some(low)) = (last, last.and_then(|e| increase_at("gt-low-variance", e))) {
        let better: Vec<&str> = t2
            .rewards
            .iter()
            .filter(|r| r.as_str() != "gt-low-variance")
            .filter(|r| increase_at(r, e).is_some_and(|g| g > low))
            .map(String::as_str)
            .collect();
        out.push(format!(
            "The perfectly accurate, low-variance reward raised the ground truth by {low:.3} \
             after epoch {e}; {} of {} reward models did better{} ({} the paper: a \
             perfectly accurate but low-variance teacher can be slower than less accurate ones).",
            better.len(),
            t2.rewards.len().saturating_sub(1),
            if better.is_empty() {
                String::new()
            } else {
                format!(": {}", better.join(", "))
            },
            if better.is_empty() { "unlike" } else { "as in" }
        ));
    }
    out
}

/// Section 4.2 findings across policies: the best teacher (largest mean
/// ground-truth increase at each policy's Table 10 epoch) and the most accurate
/// reward model on-policy, per policy.
pub fn policies_findings(runs: &[RunSummary]) -> Vec<String> {
    let mut out = Vec::new();
    let mut bests = Vec::new();
    for run in runs {
        let Some(e) = default_table10_epoch(&run.data, &run.summaries) else {
            continue;
        };
        let rms: Vec<_> = run
            .data
            .rm_eval
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
            .map(|(r, _)| (r.on_policy_accuracy, r.name.as_str()))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let (Some((g, b)), Some((acc, a))) = (best, accurate) {
            out.push(format!(
                "{}: best teacher {b} (ground-truth increase {g:.3} after epoch {e}); most \
                 accurate on-policy {a} ({acc:.3}){}.",
                run.data.policy,
                if a == b {
                    ", the same"
                } else {
                    ", a different one"
                }
            ));
            bests.push(b.to_string());
        }
    }
    if bests.len() > 1 {
        let mut distinct = bests.clone();
        distinct.sort();
        distinct.dedup();
        out.push(if distinct.len() > 1 {
            format!(
                "The best reward model differs across policies ({}), as in the paper.",
                distinct.join(", ")
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
