//! Does the teacher score predict the RLHF outcome? Given a finished Section 4.1 run
//! (its `rm_eval/rm_eval.json` and `pg/<reward>/seed<k>/eval.jsonl`) and a teacher run on the
//! run's initial policy with RMs named as in the run, the Spearman correlation across
//! RMs between a predictor (teacher score; for comparison on-policy accuracy and
//! reward variance alone) and the measured ground-truth increase after an epoch, with
//! a 95% percentile bootstrap interval that resamples the teacher's prompts and the
//! run's seeds together.

use super::cache::SampleLine;
use super::stats::teacher_score;
use super::GROUND_TRUTH;
use crate::analysis::bootstrap::{
    mean_interval, percentile_interval, Interval, Resampler, BOOTSTRAP_REPLICATES,
};
use crate::analysis::{seed_increases, RunData};
use crate::{Error, Result};
use rmteach::metrics::{
    prompt_on_policy_accuracies, prompt_variances, spearman, Normalizer, VarianceEstimator,
};
use std::fmt::Write as _;

/// Seed of the bootstrap.
const EVIDENCE_SEED: u64 = 0x07EA_CE1D;

/// Interval ends within this of zero are zero (Spearman of ranks carries rounding).
const ROUNDING: f64 = 1e-9;

/// The predictors correlated, in report order.
pub const PREDICTORS: [&str; 3] = ["teacher score", "on-policy accuracy", "reward variance"];

/// One RM's per-prompt statistics under the policy.
struct PerPrompt {
    variance: Vec<f64>,
    accuracy: Vec<f64>,
}

/// The correlations at one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    /// The epoch whose increase is predicted.
    pub epoch: u32,
    /// The RMs correlated over.
    pub rms: Vec<String>,
    /// Seeds averaged (those every RM reached the epoch with).
    pub seeds: Vec<u64>,
    /// Per predictor: its value per RM.
    pub predictors: Vec<Vec<f64>>,
    /// Mean ground-truth increase per RM.
    pub gt_increase: Vec<f64>,
    /// Per predictor: Spearman with the increase (`None` when undefined) and interval.
    pub spearman: Vec<(Option<f64>, Option<Interval>)>,
    /// Per RM, per seed (in `seeds` order): the ground-truth increase.
    pub gt_by_seed: Vec<Vec<f64>>,
}

/// The teacher score's pick against the RM that raised the ground truth most.
#[derive(Debug, Clone, PartialEq)]
pub struct PickVsBest {
    /// Index (into [`Evidence::rms`]) of the RM with the highest teacher score.
    pub pick: usize,
    /// Index of the RM with the largest mean ground-truth increase.
    pub best: usize,
    /// The RM the gap is taken against: the pick when it is not the best, else the RM
    /// with the second-largest increase (`None` with a single RM).
    pub other: Option<usize>,
    /// Mean over seeds of increase(best) - increase(other) (0 without `other`).
    pub gap: f64,
    /// 95% percentile bootstrap interval of the gap, resampling seeds (paired: both
    /// RMs trained from the same seeds); `None` without `other` or with < 2 seeds.
    pub interval: Option<Interval>,
}

impl PickVsBest {
    /// One phrase: whether the pick is the best (and resolved from the runner-up), not
    /// distinguishable from the best, or worse.
    pub fn reading(&self) -> &'static str {
        let resolved = self.interval.map(|i| i.lo > ROUNDING);
        match (self.pick == self.best, resolved) {
            (true, Some(true)) => "the pick is the best, ahead of the runner-up (interval above 0)",
            (true, Some(false)) => {
                "the pick has the largest mean, not resolved from the runner-up (interval includes 0)"
            }
            (true, None) => "the pick has the largest mean (no interval)",
            (false, Some(true)) => "the pick is worse than the best (interval above 0)",
            (false, Some(false)) => {
                "the pick is not the best but not distinguishable from it (interval includes 0)"
            }
            (false, None) => "the pick is not the best (no interval: too few seeds)",
        }
    }
}

/// Per RM, per seed (in `seeds` order): the ground-truth increase at `epoch`.
fn increases(data: &RunData, rms: &[String], epoch: u32) -> Result<(Vec<u64>, Vec<Vec<f64>>)> {
    let mut per_rm = Vec::new();
    for name in rms {
        let i = data
            .rewards
            .iter()
            .position(|r| &r.name == name)
            .ok_or_else(|| {
                Error::Input(format!(
                    "run has no reward `{name}` in rm_eval/rm_eval.json"
                ))
            })?;
        let mut by_seed = Vec::new();
        for s in &data.seeds[i] {
            let inc = seed_increases(&s.records).ok_or_else(|| {
                Error::Input(format!(
                    "pg/{name}/seed{}/eval.jsonl: no epoch-0 (initial policy) record",
                    s.seed
                ))
            })?;
            if let Some(x) = inc.iter().find(|x| x.epoch == epoch) {
                by_seed.push((s.seed, x.ground_truth));
            }
        }
        per_rm.push(by_seed);
    }
    let seeds: Vec<u64> = per_rm
        .first()
        .map(|v| v.iter().map(|x| x.0).collect())
        .unwrap_or_default();
    let seeds: Vec<u64> = seeds
        .into_iter()
        .filter(|s| per_rm.iter().all(|v| v.iter().any(|x| x.0 == *s)))
        .collect();
    let table = per_rm
        .iter()
        .map(|v| {
            seeds
                .iter()
                .map(|s| v.iter().find(|x| x.0 == *s).map_or(f64::NAN, |x| x.1))
                .collect()
        })
        .collect();
    Ok((seeds, table))
}

/// Per-prompt reward variance and on-policy accuracy of `rm` from the policy's lines.
fn per_prompt(lines: &[&SampleLine], rm: &str, s: usize) -> Result<PerPrompt> {
    let col = |name: &str| -> Result<Vec<f64>> {
        lines
            .iter()
            .map(|l| {
                l.scores
                    .get(name)
                    .copied()
                    .ok_or_else(|| Error::Input(format!("a sample has no `{name}` score")))
            })
            .collect()
    };
    let (raw, gt) = (col(rm)?, col(GROUND_TRUTH)?);
    let fail = |e: rmteach::metrics::MetricsError| Error::Input(format!("RM `{rm}`: {e}"));
    let z = Normalizer::fit(&raw).map_err(fail)?.apply_slice(&raw);
    Ok(PerPrompt {
        variance: prompt_variances(z.chunks(s), VarianceEstimator::Unbiased).map_err(fail)?,
        accuracy: prompt_on_policy_accuracies(z.chunks(s).zip(gt.chunks(s))).map_err(fail)?,
    })
}

/// The three predictors of every RM over the prompts `idx`.
fn predictors(stats: &[PerPrompt], idx: &[usize]) -> Vec<Vec<f64>> {
    let mean = |v: &[f64]| idx.iter().map(|&i| v[i]).sum::<f64>() / idx.len() as f64;
    let (mut t, mut a, mut v) = (Vec::new(), Vec::new(), Vec::new());
    for st in stats {
        let (acc, var) = (mean(&st.accuracy), mean(&st.variance));
        t.push(teacher_score(acc, var));
        a.push(acc);
        v.push(var);
    }
    vec![t, a, v]
}

/// The evidence at `epoch` for the RMs `rms` (teacher names = run reward names) from
/// the teacher's sample `lines` of the run's initial policy (`s` per prompt).
pub fn teacher_vs_increase(
    data: &RunData,
    lines: &[&SampleLine],
    rms: &[String],
    s: usize,
    epoch: u32,
) -> Result<Evidence> {
    let (seeds, inc) = increases(data, rms, epoch)?;
    if seeds.is_empty() {
        return Err(Error::Input(format!(
            "no seed reached epoch {epoch} with every RM"
        )));
    }
    let stats = rms
        .iter()
        .map(|r| per_prompt(lines, r, s))
        .collect::<Result<Vec<_>>>()?;
    let prompts = lines.len() / s;
    let all: Vec<usize> = (0..prompts).collect();
    let all_seeds: Vec<usize> = (0..seeds.len()).collect();
    let gt_at = |idx: &[usize]| -> Vec<f64> {
        inc.iter()
            .map(|v| idx.iter().map(|&i| v[i]).sum::<f64>() / idx.len() as f64)
            .collect()
    };
    let point = predictors(&stats, &all);
    let gt_increase = gt_at(&all_seeds);
    let mut rs = Resampler::new(EVIDENCE_SEED);
    let mut reps = vec![Vec::new(); PREDICTORS.len()];
    for _ in 0..BOOTSTRAP_REPLICATES {
        let (pi, si) = (rs.indices(prompts), rs.indices(seeds.len()));
        let y = gt_at(&si);
        for (k, x) in predictors(&stats, &pi).iter().enumerate() {
            reps[k].push(spearman(x, &y).unwrap_or(f64::NAN));
        }
    }
    Ok(Evidence {
        epoch,
        rms: rms.to_vec(),
        seeds,
        spearman: point
            .iter()
            .zip(&reps)
            .map(|(x, r)| (spearman(x, &gt_increase).ok(), percentile_interval(r)))
            .collect(),
        predictors: point,
        gt_increase,
        gt_by_seed: inc,
    })
}

/// Index of the largest finite value (the first of ties).
fn argmax(v: &[f64]) -> Option<usize> {
    v.iter()
        .enumerate()
        .filter(|x| x.1.is_finite())
        .fold(None, |best: Option<(usize, f64)>, (i, &x)| match best {
            Some((_, b)) if b >= x => best,
            _ => Some((i, x)),
        })
        .map(|x| x.0)
}

impl Evidence {
    /// A markdown table (one row per RM) and the correlations.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "Ground-truth increase after epoch {} (mean over seeds {:?}):\n\n\
             | RM | teacher score | on-policy acc. | reward variance | GT increase |\n\
             |---|---|---|---|---|\n",
            self.epoch, self.seeds
        );
        for (i, rm) in self.rms.iter().enumerate() {
            let _ = writeln!(
                md,
                "| {rm} | {:.4} | {:.4} | {:.4} | {:+.4} |",
                self.predictors[0][i],
                self.predictors[1][i],
                self.predictors[2][i],
                self.gt_increase[i]
            );
        }
        md.push_str(
            "\n| predictor | Spearman with the GT increase | 95% bootstrap interval | reading |\n\
             |---|---|---|---|\n",
        );
        for (name, (rho, ci)) in PREDICTORS.iter().zip(&self.spearman) {
            // A rank correlation of a few points that is 0 up to rounding counts as 0.
            let reading = match ci {
                Some(i) if i.lo > ROUNDING => "predicts the order (interval above 0)",
                Some(i) if i.hi < -ROUNDING => "predicts the reverse order (interval below 0)",
                Some(_) => "inconclusive (interval includes 0)",
                None => "no interval",
            };
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {reading} |",
                rho.map_or_else(|| "undefined".into(), |r| format!("{r:+.3}")),
                ci.map_or_else(|| "-".into(), |i| i.text())
            );
        }
        md.push('\n');
        md
    }

    /// Whether the RM ranked first by the teacher score has the largest increase.
    pub fn top_pick_is_best(&self) -> bool {
        argmax(&self.predictors[0]) == argmax(&self.gt_increase)
    }

    /// The teacher score's pick against the measured best RM, with the seed-paired
    /// bootstrap interval of the gap in ground-truth increase between the best and the
    /// pick (or, when the pick is the best, the runner-up); `None` when no RM has a
    /// finite score or increase.
    pub fn pick_vs_best(&self) -> Option<PickVsBest> {
        let (pick, best) = (argmax(&self.predictors[0])?, argmax(&self.gt_increase)?);
        let other = if pick != best {
            Some(pick)
        } else {
            let rest: Vec<f64> = (0..self.gt_increase.len())
                .map(|i| {
                    if i == best {
                        f64::NAN
                    } else {
                        self.gt_increase[i]
                    }
                })
                .collect();
            argmax(&rest)
        };
        let (gap, interval) = match other {
            Some(o) => {
                let diff: Vec<f64> = self.gt_by_seed[best]
                    .iter()
                    .zip(&self.gt_by_seed[o])
                    .map(|(b, p)| b - p)
                    .collect();
                let interval = if diff.len() < 2 {
                    None
                } else {
                    mean_interval(&diff, EVIDENCE_SEED)
                };
                (self.gt_increase[best] - self.gt_increase[o], interval)
            }
            None => (0.0, None),
        };
        Some(PickVsBest {
            pick,
            best,
            other,
            gap,
            interval,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::{RewardColumn, SeedRun};
    use crate::records::{EvalRecord, RewardStats, RmEvalEntry};
    use std::collections::BTreeMap;

    fn line(prompt_index: usize, rm: &[(&str, f64)]) -> SampleLine {
        SampleLine {
            policy: "p".into(),
            prompt_index,
            response: String::new(),
            scores: rm
                .iter()
                .map(|(n, v)| (n.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    fn seed(seed: u64, gain: f64) -> SeedRun {
        let stats = |mean| RewardStats {
            mean,
            variance: 1.0,
            on_policy_accuracy: 0.5,
        };
        let rec = |epoch, g| EvalRecord {
            epoch,
            update: 0,
            proxy: stats(0.0),
            ground_truth: stats(g),
            kl: 0.0,
            train_kl: None,
            kl_eval_topk: None,
            proxy_per_prompt: Vec::new(),
            gt_per_prompt: Vec::new(),
            seconds: 0.0,
        };
        SeedRun {
            seed,
            records: vec![rec(0, 0.1), rec(1, 0.1 + gain)],
        }
    }

    #[test]
    fn an_accurate_rm_that_trained_better_gives_a_positive_rank_correlation() {
        // Three prompts of three samples: `good` orders them as the ground truth,
        // `half` gets some pairs wrong, `bad` reverses them.
        let gt = [0.0, 1.0, 2.0, 0.0, 2.0, 1.0, 2.0, 0.0, 1.0];
        let half = [0.0, 2.0, 1.0, 1.0, 2.0, 0.0, 2.0, 0.0, 1.0];
        let lines: Vec<SampleLine> = (0..9)
            .map(|i| {
                line(
                    i / 3,
                    &[
                        ("gt", gt[i]),
                        ("good", gt[i]),
                        ("half", half[i]),
                        ("bad", -gt[i]),
                    ],
                )
            })
            .collect();
        let refs: Vec<&SampleLine> = lines.iter().collect();
        let rewards: Vec<RewardColumn> = ["good", "half", "bad"]
            .iter()
            .map(|n| RewardColumn {
                name: n.to_string(),
                ground_truth: false,
                entry: RmEvalEntry {
                    reward_variance: 1.0,
                    on_policy_accuracy: 0.5,
                    off_policy_accuracy: 0.5,
                    intervals: None,
                    per_prompt: None,
                },
            })
            .collect();
        let data = RunData {
            root: std::path::PathBuf::new(),
            policy: "p".into(),
            rewards,
            table1_prompts: 3,
            low_variance: None,
            seeds: vec![
                vec![seed(0, 0.3), seed(1, 0.5)],
                vec![seed(0, 0.2), seed(1, 0.1)],
                vec![seed(0, -0.1), seed(1, 0.0)],
            ],
        };
        let rms: Vec<String> = ["good", "half", "bad"].map(String::from).to_vec();
        let ev = teacher_vs_increase(&data, &refs, &rms, 3, 1).unwrap();
        assert_eq!(ev.seeds, vec![0, 1]);
        assert!((ev.gt_increase[0] - 0.4).abs() < 1e-12);
        assert_eq!(ev.predictors[1][0], 1.0);
        assert_eq!(ev.predictors[1][2], 0.0);
        // The reversed RM scores 0, the perfect one highest: the rank order matches.
        assert_eq!(ev.spearman[1].0, Some(1.0));
        assert!(ev.top_pick_is_best());
        // The pick is the best; the runner-up `half` trails by 0.4 - 0.15 = 0.25, per
        // seed by 0.1 and 0.4: with two seeds the interval is [0.1, 0.4].
        let pv = ev.pick_vs_best().unwrap();
        assert_eq!((pv.pick, pv.best, pv.other), (0, 0, Some(1)));
        assert!((pv.gap - 0.25).abs() < 1e-12);
        assert_eq!(
            pv.reading(),
            "the pick is the best, ahead of the runner-up (interval above 0)"
        );
        // Swap the measured outcomes of `good` and `half`: the pick is no longer the
        // best, by 0.4 - 0.15 on average; with two seeds the interval is [0.1, 0.4].
        let mut swapped = data.clone();
        swapped.seeds.swap(0, 1);
        let ev = teacher_vs_increase(&swapped, &refs, &rms, 3, 1).unwrap();
        assert!(!ev.top_pick_is_best());
        let pv = ev.pick_vs_best().unwrap();
        assert_eq!((pv.pick, pv.best, pv.other), (0, 1, Some(0)));
        assert!((pv.gap - 0.25).abs() < 1e-12);
        let i = pv.interval.unwrap();
        assert!(
            (i.lo - 0.1).abs() < 1e-9 && (i.hi - 0.4).abs() < 1e-9,
            "{i:?}"
        );
        assert_eq!(
            pv.reading(),
            "the pick is worse than the best (interval above 0)"
        );
        // No seed reached epoch 2: an error, not a number.
        assert!(teacher_vs_increase(&data, &refs, &rms, 3, 2).is_err());
    }
}
