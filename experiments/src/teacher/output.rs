//! The outputs of `rmteach teacher`: `teacher.json` ([`TeacherReport`]),
//! `teacher.md`, `teacher.csv` and `teacher.png`/`.svg` (reward variance against
//! accuracy, one point per RM, one panel per policy).

use super::stats::RmStats;
use super::{PROPOSITION3_READING, TEACHER_SCORE_DEFINITION};
use crate::rundir::{write_atomic, write_json};
use crate::{Error, Result};
use rmteach::plot::{GridPlot, LinePlot, Series, SeriesStyle};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

/// One policy's RMs, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyReport {
    /// The policy directory as given.
    pub policy: String,
    /// Prompts sampled.
    pub prompts: usize,
    /// Samples per prompt.
    pub samples_per_prompt: usize,
    /// Mean response length in characters.
    pub mean_response_chars: f64,
    /// The ground truth's own reward variance under the policy (with `--gt`).
    pub gt_reward_variance: Option<f64>,
    /// The RMs, ranked.
    pub rms: Vec<RmStats>,
}

/// `teacher.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherReport {
    /// [`TEACHER_SCORE_DEFINITION`].
    pub teacher_score: String,
    /// [`PROPOSITION3_READING`].
    pub proposition3: String,
    /// Preference pairs used for off-policy accuracy.
    pub preference_pairs: usize,
    /// Whether a ground truth was given (on-policy accuracy).
    pub ground_truth: bool,
    /// One entry per policy.
    pub policies: Vec<PolicyReport>,
}

impl TeacherReport {
    /// A report of `policies`.
    pub fn new(policies: Vec<PolicyReport>, preference_pairs: usize, ground_truth: bool) -> Self {
        Self {
            teacher_score: TEACHER_SCORE_DEFINITION.into(),
            proposition3: PROPOSITION3_READING.into(),
            preference_pairs,
            ground_truth,
            policies,
        }
    }

    /// `teacher.md`.
    pub fn markdown(&self) -> String {
        let mut md = String::from("# Which reward model teaches this policy best?\n\n");
        let _ = writeln!(
            md,
            "{}.\n\n{}.\n",
            TEACHER_SCORE_DEFINITION, PROPOSITION3_READING
        );
        for p in &self.policies {
            let _ = writeln!(
                md,
                "## Policy `{}`\n\n{} prompts x {} samples (mean response {:.0} characters){}.\n",
                p.policy,
                p.prompts,
                p.samples_per_prompt,
                p.mean_response_chars,
                p.gt_reward_variance
                    .map(|v| format!("; the ground truth's own reward variance: {v:.4}"))
                    .unwrap_or_default()
            );
            md.push_str(
                "| Rank | RM | Teacher score | Reward variance [95% CI] | On-policy acc. | \
                 Off-policy acc. | Zero-variance prompts | Relative time (Prop. 3) |\n\
                 |---|---|---|---|---|---|---|---|\n",
            );
            for r in &p.rms {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {:.4} {} | {} | {} | {:.3} | {} |",
                    r.rank,
                    r.name,
                    opt(r.teacher_score),
                    r.reward_variance,
                    r.reward_variance_ci.map(|i| i.text()).unwrap_or_default(),
                    opt(r.on_policy_accuracy),
                    opt(r.off_policy_accuracy),
                    r.zero_variance_prompts,
                    r.relative_time
                        .map(|t| format!("{t:.2}"))
                        .unwrap_or_else(|| "inf".into()),
                );
            }
            md.push('\n');
        }
        if self.policies.len() > 1 {
            md.push_str(&self.matrix());
        }
        md.push_str("Figure: [teacher.png](teacher.png). Samples and raw scores: samples.jsonl.\n");
        md
    }

    /// The policy x RM matrix of teacher scores (reward variance without a score).
    fn matrix(&self) -> String {
        let names: Vec<&str> = self.policies[0]
            .rms
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        let mut names = names;
        names.sort_unstable();
        let mut md =
            String::from("## Policy x RM (teacher score; best per policy in bold)\n\n| Policy |");
        for n in &names {
            let _ = write!(md, " {n} |");
        }
        md.push_str("\n|---|");
        md.push_str(&"---|".repeat(names.len()));
        md.push('\n');
        for p in &self.policies {
            let _ = write!(md, "| {} |", p.policy);
            for n in &names {
                let cell = p.rms.iter().find(|r| r.name == *n).map(|r| {
                    let v = opt(r.teacher_score.or(Some(r.reward_variance)));
                    if r.rank == 1 {
                        format!("**{v}**")
                    } else {
                        v
                    }
                });
                let _ = write!(md, " {} |", cell.unwrap_or_default());
            }
            md.push('\n');
        }
        md.push('\n');
        md
    }

    /// `teacher.csv`: one row per (policy, RM).
    pub fn csv(&self) -> String {
        let mut csv = String::from(
            "policy,rank,rm,teacher_score,reward_variance,on_policy_accuracy,\
             off_policy_accuracy,zero_variance_prompts,relative_time\n",
        );
        let f = |x: Option<f64>| x.map(|v| v.to_string()).unwrap_or_default();
        for p in &self.policies {
            for r in &p.rms {
                let _ = writeln!(
                    csv,
                    "{},{},{},{},{},{},{},{},{}",
                    quote(&p.policy),
                    r.rank,
                    quote(&r.name),
                    f(r.teacher_score),
                    r.reward_variance,
                    f(r.on_policy_accuracy),
                    f(r.off_policy_accuracy),
                    r.zero_variance_prompts,
                    f(r.relative_time)
                );
            }
        }
        csv
    }

    /// The figure: per policy, each RM's reward variance against its accuracy
    /// (on-policy with a ground truth, else off-policy; none: skipped).
    pub fn figure(&self, stem: &Path) -> Result<bool> {
        let accuracy = |r: &RmStats| r.on_policy_accuracy.or(r.off_policy_accuracy);
        let label = if self.ground_truth {
            "on-policy accuracy"
        } else {
            "off-policy accuracy"
        };
        let mut grid = GridPlot::new(
            "Reward variance against accuracy under each policy (one point per RM, best first in the legend; 95% intervals in teacher.md)",
            self.policies.len().min(3),
        );
        for p in &self.policies {
            let mut panel = LinePlot::new(p.policy.clone())
                .x_label("reward variance")
                .y_label(label);
            for r in &p.rms {
                let Some(a) = accuracy(r) else {
                    return Ok(false);
                };
                panel.push(
                    Series::new(r.name.clone(), vec![r.reward_variance], vec![a])
                        .style(SeriesStyle::Points),
                );
            }
            grid = grid.with_panel(panel);
        }
        grid.render(stem)
            .map_err(|e| Error::Input(format!("figure {}: {e}", stem.display())))?;
        Ok(true)
    }
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.4}")).unwrap_or_else(|| "-".into())
}

fn quote(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Writes `teacher.json`, `teacher.md`, `teacher.csv` and the figure into `out`.
pub fn write_outputs(out: &Path, report: &TeacherReport) -> Result<()> {
    write_json(&out.join("teacher.json"), report)?;
    write_atomic(&out.join("teacher.md"), report.markdown().as_bytes())?;
    write_atomic(&out.join("teacher.csv"), report.csv().as_bytes())?;
    report.figure(&out.join("teacher"))?;
    Ok(())
}
