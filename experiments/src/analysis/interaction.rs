//! Section 4.2's crossover test on a 2 x 2 of policies and reward models: the
//! interaction contrast `[(A, RM_A) - (A, RM_B)] - [(B, RM_A) - (B, RM_B)]` of the
//! ground-truth increases, positive when each policy is taught better by its own
//! (on-policy) reward model than by the other policy's.
//!
//! The four cells are independent runs (their own seeds), so the standard error is
//! `sqrt(sum over cells of s^2 / n)` (s: the sample std over a cell's seeds), and the
//! 95% interval is a percentile bootstrap that resamples each cell's seeds on its own.
//! Within a policy the two cells share the epoch-0 evaluation, so the baseline cancels
//! in each difference.

use super::bootstrap::{mean_at, percentile_interval, Interval, Resampler, BOOTSTRAP_REPLICATES};
use super::increase::{seed_increases, MeanStd};
use super::load::RunData;
use super::summary::SummarizedRun;
use super::table10::{default_table10_epoch, mean_std_text};
use super::verdict::verdict;
use rmteach::report::Block;

/// The interaction contrast with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contrast {
    /// `[(A, RM_A) - (A, RM_B)] - [(B, RM_A) - (B, RM_B)]` of the cell means.
    pub value: f64,
    /// Its standard error, `sqrt(sum s^2 / n)` over the four independent cells.
    pub se: f64,
    /// 95% percentile-bootstrap interval (each cell's seeds resampled on its own).
    pub ci: Option<Interval>,
}

/// The interaction contrast of per-seed values `aa` = (A, RM_A), `ab` = (A, RM_B),
/// `ba` = (B, RM_A), `bb` = (B, RM_B); `None` when a cell has fewer than two seeds
/// (no standard error) or a value is not finite.
pub fn interaction_contrast(
    aa: &[f64],
    ab: &[f64],
    ba: &[f64],
    bb: &[f64],
    seed: u64,
) -> Option<Contrast> {
    let cells = [aa, ab, ba, bb];
    if cells
        .iter()
        .any(|c| c.len() < 2 || c.iter().any(|x| !x.is_finite()))
    {
        return None;
    }
    let mean = |c: &[f64]| c.iter().sum::<f64>() / c.len() as f64;
    let var = |c: &[f64]| {
        let m = mean(c);
        c.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (c.len() - 1) as f64
    };
    let combine = |m: &[f64]| (m[0] - m[1]) - (m[2] - m[3]);
    let value = combine(&cells.map(mean));
    let se = cells
        .iter()
        .map(|c| var(c) / c.len() as f64)
        .sum::<f64>()
        .sqrt();
    Some(Contrast {
        value,
        se,
        ci: cells_interval(&cells, combine, seed),
    })
}

/// The 95% percentile-bootstrap interval of `combine` applied to the cell means,
/// each cell's values resampled on its own (independent cells, e.g. runs with their
/// own seeds); `None` when a cell is empty.
pub fn cells_interval(
    cells: &[&[f64]],
    combine: impl Fn(&[f64]) -> f64,
    seed: u64,
) -> Option<Interval> {
    if cells.iter().any(|c| c.is_empty()) {
        return None;
    }
    let mut rs = Resampler::new(seed);
    let reps: Vec<f64> = (0..BOOTSTRAP_REPLICATES)
        .map(|_| {
            let means: Vec<f64> = cells
                .iter()
                .map(|c| mean_at(c, &rs.indices(c.len())))
                .collect();
            combine(&means)
        })
        .collect();
    percentile_interval(&reps)
}

/// The ground-truth increase at `epoch` of every seed of reward `name` in `data`
/// (seeds that did not reach `epoch` left out; `None` when `name` is not a reward of
/// the run).
pub fn seed_gt_increases(data: &RunData, name: &str, epoch: u32) -> Option<Vec<f64>> {
    let i = data.rewards.iter().position(|r| r.name == name)?;
    Some(
        data.seeds[i]
            .iter()
            .filter_map(|s| seed_increases(&s.records))
            .filter_map(|inc| {
                inc.iter()
                    .find(|x| x.epoch == epoch)
                    .map(|x| x.ground_truth)
            })
            .collect(),
    )
}

/// One 2 x 2 to test: runs `a` and `b` (indices into the policies report's runs) and
/// their own reward models `rm_a`, `rm_b` (rewards of both runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyContrast {
    /// Index of policy A's run.
    pub a: usize,
    /// Index of policy B's run.
    pub b: usize,
    /// Policy A's own reward model.
    pub rm_a: String,
    /// Policy B's own reward model.
    pub rm_b: String,
}

/// The report section (blocks) of `contrast` over `runs`: the 2 x 2 of ground-truth
/// increases (mean ± std, seeds) at the last epoch every cell's seeds reached, the
/// contrast, its standard error and interval, and the verdict; a sentence saying
/// why when it cannot be computed.
pub fn contrast_section(runs: &[SummarizedRun], contrast: &PolicyContrast) -> Vec<Block> {
    let text = |text: String| Block::Text { text };
    let (Some(a), Some(b)) = (runs.get(contrast.a), runs.get(contrast.b)) else {
        return vec![text(
            "Interaction contrast: a policy index is out of range.".into(),
        )];
    };
    let (pa, pb) = (&a.data.policy, &b.data.policy);
    let (ra, rb) = (&contrast.rm_a, &contrast.rm_b);
    let epoch = [a, b]
        .iter()
        .filter_map(|r| default_table10_epoch(&r.data, &r.summaries))
        .min();
    let Some(e) = epoch else {
        return vec![text(format!(
            "Interaction contrast {pa} x {pb}: no policy-gradient data."
        ))];
    };
    let cell = |r: &SummarizedRun, rm: &str| seed_gt_increases(&r.data, rm, e).unwrap_or_default();
    let cells = [cell(a, ra), cell(a, rb), cell(b, ra), cell(b, rb)];
    let cell_text = |c: &[f64]| match MeanStd::of(c) {
        Ok(m) => format!("{} ({} seeds)", mean_std_text(&m), c.len()),
        Err(_) => "no seeds".into(),
    };
    let mut md = vec![
        Block::Heading {
            level: 3,
            text: format!("Interaction: policies {pa}, {pb} x reward models {ra}, {rb}"),
        },
        text(format!(
            "Ground-truth increase after epoch {e} (mean ± std over seeds):"
        )),
        text(format!(
            "| policy | {ra} | {rb} |\n|---|---|---|\n\
             | {pa} | {} | {} |\n| {pb} | {} | {} |",
            cell_text(&cells[0]),
            cell_text(&cells[1]),
            cell_text(&cells[2]),
            cell_text(&cells[3]),
        )),
    ];
    md.push(
        match interaction_contrast(&cells[0], &cells[1], &cells[2], &cells[3], 42) {
            Some(c) => {
                let ci = c.ci.map_or_else(|| "none".into(), |i| i.text());
                text(format!(
                    "Interaction contrast [({pa},{ra}) - ({pa},{rb})] - [({pb},{ra}) - \
                 ({pb},{rb})] = {:.3}, standard error {:.3} (sqrt of the sum over the \
                 four independent cells of s^2/n, s the std over seeds), 95% bootstrap \
                 interval {ci} (each cell's seeds resampled): {}.",
                    c.value,
                    c.se,
                    verdict(c.ci, true)
                ))
            }
            None => text("Interaction contrast: a cell has fewer than two seeds.".into()),
        },
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_and_standard_error_of_a_hand_made_matrix() {
        // Cell means 0.3, 0.1 (policy A) and 0.2, 0.25 (policy B): contrast
        // (0.3 - 0.1) - (0.2 - 0.25) = 0.25.
        let aa = [0.2, 0.3, 0.4];
        let ab = [0.1, 0.1, 0.1];
        let ba = [0.2, 0.2];
        let bb = [0.2, 0.3];
        let c = interaction_contrast(&aa, &ab, &ba, &bb, 1).unwrap();
        assert!((c.value - 0.25).abs() < 1e-12, "{}", c.value);
        // s^2 / n: 0.01 / 3, 0, 0, 0.005 / 2.
        let se = (0.01 / 3.0 + 0.005 / 2.0_f64).sqrt();
        assert!((c.se - se).abs() < 1e-12, "{} vs {se}", c.se);
        let ci = c.ci.unwrap();
        assert!(
            ci.lo <= c.value && c.value <= ci.hi && ci.lo > 0.0,
            "{ci:?}"
        );
        // Swapping the reward models flips the sign, not the error.
        let d = interaction_contrast(&ab, &aa, &bb, &ba, 1).unwrap();
        assert!((d.value + 0.25).abs() < 1e-12 && (d.se - se).abs() < 1e-12);
    }

    #[test]
    fn a_cell_with_one_seed_has_no_contrast() {
        assert!(interaction_contrast(&[0.1], &[0.1, 0.2], &[0.0, 0.1], &[0.1, 0.3], 0).is_none());
        assert!(
            interaction_contrast(&[0.1, f64::NAN], &[0.1, 0.2], &[0.0, 0.1], &[0.1, 0.3], 0)
                .is_none()
        );
    }
}
