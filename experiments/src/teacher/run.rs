//! The whole `rmteach teacher` run: sample, score, summarise, write.

use super::cache::SampleCache;
use super::inputs::TeacherInputs;
use super::output::{write_outputs, PolicyReport, TeacherReport};
use super::scoring::{missing, sample_policy, score_lines, PrefsCache};
use super::stats::{rank, rm_stats};
use super::GROUND_TRUTH;
use crate::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rmteach::metrics::{mean_prompt_variance, Normalizer, VarianceEstimator};

/// Runs `rmteach teacher` and writes its outputs into `inputs.out`.
pub fn run_teacher(inputs: &TeacherInputs) -> Result<TeacherReport> {
    inputs.validate()?;
    let o = &inputs.sampling;
    let s = o.samples_per_prompt;
    let mut cache = SampleCache::open(&inputs.out, &inputs.settings())?;
    let mut rewards: Vec<(&str, &super::RewardSource)> = inputs
        .rms
        .iter()
        .map(|(n, src)| (n.as_str(), src))
        .collect();
    if let Some(gt) = &inputs.gt {
        rewards.push((GROUND_TRUTH, gt));
    }
    let p = inputs.prompts.len();
    let rows_total = (inputs.policies.len() * p * s) as u64;
    // Work units: a prompt sampled, a row scored per reward.
    let already_scored: u64 = rewards
        .iter()
        .map(|(n, _)| (cache.lines().len() - missing(&cache, n)) as u64)
        .sum();
    let total = (inputs.policies.len() * p) as u64 + rows_total * rewards.len() as u64;
    let bar = if inputs.progress {
        ProgressBar::new(total).with_style(
            ProgressStyle::with_template(
                "{msg:30} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta_precise}",
            )
            .map_err(|e| Error::Input(format!("progress bar template: {e}")))?
            .progress_chars("=> "),
        )
    } else {
        ProgressBar::hidden()
    };
    for policy in &inputs.policies {
        sample_policy(
            &mut cache,
            (&inputs.policy_name(policy), policy),
            &inputs.prompts,
            o,
            (&inputs.device, inputs.dtype),
            &bar,
        )?;
    }
    bar.inc(already_scored);
    let prefs_file = inputs.out.join("prefs_scores.json");
    let mut prefs = PrefsCache::open(&prefs_file, inputs.prefs.len())?;
    for (name, src) in &rewards {
        let need_prefs =
            *name != GROUND_TRUTH && !inputs.prefs.is_empty() && !prefs.scores.contains_key(*name);
        if missing(&cache, name) == 0 && !need_prefs {
            continue;
        }
        bar.set_message(format!("loading {name}"));
        let reward = src.load(inputs.dtype, &inputs.device, o.batch_size)?;
        score_lines(&mut cache, name, reward.as_ref(), &inputs.prompts, &bar)?;
        if need_prefs {
            bar.set_message(format!("{name}: preference pairs"));
            prefs.score(&prefs_file, name, reward.as_ref(), &inputs.prefs)?;
        }
    }
    bar.finish_and_clear();
    let mut policies = Vec::new();
    for policy in &inputs.policies {
        let name = inputs.policy_name(policy);
        let lines = cache.policy_lines(&name);
        let lines = &lines[..p * s];
        let column = |reward: &str| -> Result<Vec<f64>> {
            lines
                .iter()
                .map(|l| {
                    l.scores.get(reward).copied().ok_or_else(|| {
                        Error::Input(format!(
                            "{}: a `{name}` sample has no `{reward}` score",
                            cache.path().display()
                        ))
                    })
                })
                .collect()
        };
        let gt = match inputs.gt {
            Some(_) => Some(column(GROUND_TRUTH)?),
            None => None,
        };
        let mut rms = Vec::new();
        for (rm, _) in &inputs.rms {
            let pair = prefs
                .scores
                .get(rm)
                .map(|p| (p.chosen.as_slice(), p.rejected.as_slice()));
            rms.push(rm_stats(rm, &column(rm)?, gt.as_deref(), pair, s)?);
        }
        rank(&mut rms);
        let gt_reward_variance = match &gt {
            Some(g) => {
                let n = Normalizer::fit(g)
                    .map_err(|e| Error::Input(format!("ground truth of `{name}`: {e}")))?;
                Some(
                    mean_prompt_variance(n.apply_slice(g).chunks(s), VarianceEstimator::Unbiased)
                        .map_err(|e| Error::Input(format!("ground truth of `{name}`: {e}")))?,
                )
            }
            None => None,
        };
        let chars: usize = lines.iter().map(|l| l.response.len()).sum();
        policies.push(PolicyReport {
            policy: name,
            prompts: p,
            samples_per_prompt: s,
            mean_response_chars: chars as f64 / lines.len().max(1) as f64,
            gt_reward_variance,
            rms,
        });
    }
    let report = TeacherReport::new(policies, inputs.prefs.len(), inputs.gt.is_some());
    write_outputs(&inputs.out, &report)?;
    Ok(report)
}
