//! The paper's constructions, built exactly and verified on construction.
//!
//! * Reward models of a prescribed accuracy (Definition 3, attainable accuracy):
//!   [`attainable_grid`] walks the adjacent-transposition (bubble-sort) path from the
//!   ground-truth order of the outputs to its reverse. Each adjacent swap flips exactly
//!   one pair, so under the uniform pair distribution with distinct `r_G` every
//!   accuracy `k / P` (`P = |Y|(|Y|-1)/2`) is visited; under a weighted distribution the
//!   attainable values offered are the accuracies of the orders visited, each measured
//!   with [`rmteach::metrics`] (so "attainable" is witnessed by construction).
//!   With `top = Some(y_g)` the output `y_g` is kept strictly first and only the others
//!   are reordered ("attainable subject to `y_g` ranked first"). [`realise`] returns the
//!   order for a requested accuracy and re-measures it.
//! * Theorem 5 (proof D.8): [`thm5_slow_reward`] (`0 < b_y < 1/T`, ordered by a
//!   ranking) and [`thm5_fast_reward`] (`1` on `y_g`, `0 < c_y < pi_0(y_g)` elsewhere);
//!   [`thm5_rewards`] builds both and measures their accuracies.
//! * Theorem 6: [`thm6_policy`] builds `pi_0` in
//!   `Pi = { E_pi r_G = V0, pi(y_g') <= T^-2, pi(y_g) >= c }` (and, with the roles
//!   swapped, `Pi'`), returning the residual of every constraint; [`thm6_v0_range`]
//!   gives the values of `V0` for which a whole sweep is constructible; [`thm6_reward`]
//!   is `+1` on one output and `-1` elsewhere.

use rand::Rng;
use serde::Serialize;

use crate::{Result, TheoryError};
use rmteach::metrics::{accuracy_uniform, accuracy_weighted, expected_reward, WeightedPair};

/// How close a weighted accuracy must come to the requested one (uniform accuracies are
/// ratios of pair counts and must match exactly).
pub const WEIGHTED_ACCURACY_TOL: f64 = 1e-12;

/// How close `E_pi r_G` must come to `V0` in Theorem 6's families.
pub const MEAN_TOL: f64 = 1e-12;

/// The distribution `D` over unordered output pairs of Definition 1.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum PairDistribution {
    /// Uniform over all `|Y|(|Y|-1)/2` unordered pairs.
    Uniform,
    /// An explicit weighted list of pairs (weights need not sum to 1).
    Weighted(Vec<WeightedPair>),
}

impl PairDistribution {
    /// `acc_D(r_rm)` measured with [`rmteach::metrics`].
    pub fn accuracy(&self, r_rm: &[f64], r_g: &[f64]) -> Result<f64> {
        Ok(match self {
            PairDistribution::Uniform => accuracy_uniform(r_rm, r_g)?,
            PairDistribution::Weighted(pairs) => accuracy_weighted(r_rm, r_g, pairs)?,
        })
    }

    /// The tolerance within which two accuracies under `D` count as equal: `0` for the
    /// uniform distribution (exact pair counts), [`WEIGHTED_ACCURACY_TOL`] otherwise.
    pub fn tolerance(&self) -> f64 {
        match self {
            PairDistribution::Uniform => 0.0,
            PairDistribution::Weighted(_) => WEIGHTED_ACCURACY_TOL,
        }
    }

    /// Whether `a` and `b` are the same accuracy under `D` (see [`Self::tolerance`]).
    pub fn same(&self, a: f64, b: f64) -> bool {
        (a - b).abs() <= self.tolerance()
    }

    /// A random non-uniform distribution over the pairs of `n` outputs: each unordered
    /// pair is kept with probability `keep` and given a weight uniform in `[0.05, 1)`
    /// (at least one pair is always kept).
    pub fn random_weighted<R: Rng>(rng: &mut R, n: usize, keep: f64) -> Self {
        let mut pairs = Vec::new();
        for a in 0..n {
            for b in a + 1..n {
                if rng.random_bool(keep.clamp(0.0, 1.0)) {
                    pairs.push(WeightedPair {
                        a,
                        b,
                        weight: rng.random_range(0.05..1.0),
                    });
                }
            }
        }
        if pairs.is_empty() && n >= 2 {
            pairs.push(WeightedPair {
                a: 0,
                b: 1,
                weight: 1.0,
            });
        }
        PairDistribution::Weighted(pairs)
    }

    /// "uniform" or "weighted(k pairs)".
    pub fn describe(&self) -> String {
        match self {
            PairDistribution::Uniform => "uniform".into(),
            PairDistribution::Weighted(p) => format!("weighted({} pairs)", p.len()),
        }
    }
}

/// An order of the outputs, possibly with ties: `levels[y]` is the level of output `y`
/// (higher = preferred, equal levels = tied; levels are dense `0..num_levels`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ranking {
    /// Level of each output.
    pub levels: Vec<usize>,
}

impl Ranking {
    /// A ranking from levels (made dense, order and ties kept).
    pub fn from_levels(levels: &[usize]) -> Self {
        let mut distinct: Vec<usize> = levels.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        Self {
            levels: levels
                .iter()
                .map(|l| distinct.binary_search(l).expect("level is present"))
                .collect(),
        }
    }

    /// The strict order listing outputs from lowest to highest.
    pub fn from_order(low_to_high: &[usize]) -> Self {
        let mut levels = vec![0; low_to_high.len()];
        for (pos, &y) in low_to_high.iter().enumerate() {
            levels[y] = pos;
        }
        Self { levels }
    }

    /// The order of the ground truth itself (ties where `r_G` ties): accuracy 1 under any `D`.
    pub fn of_values(values: &[f64]) -> Self {
        // `+ 0.0` turns -0.0 into 0.0, so that the two tie as they do in the accuracy.
        let values: Vec<f64> = values.iter().map(|v| v + 0.0).collect();
        let mut sorted: Vec<f64> = values.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup_by(|a, b| a.total_cmp(b).is_eq());
        Self {
            levels: values
                .iter()
                .map(|v| {
                    sorted
                        .binary_search_by(|s| s.total_cmp(v))
                        .expect("value is present")
                })
                .collect(),
        }
    }

    /// Number of outputs.
    pub fn len(&self) -> usize {
        self.levels.len()
    }

    /// Whether there are no outputs.
    pub fn is_empty(&self) -> bool {
        self.levels.is_empty()
    }

    /// Number of distinct levels.
    pub fn num_levels(&self) -> usize {
        self.levels.iter().max().map_or(0, |m| m + 1)
    }

    /// The levels as reward values (any increasing map of them has the same accuracy).
    pub fn scores(&self) -> Vec<f64> {
        self.levels.iter().map(|&l| l as f64).collect()
    }

    /// Whether `y` is alone on the highest level.
    pub fn strictly_first(&self, y: usize) -> bool {
        let top = self.levels[y];
        self.levels
            .iter()
            .enumerate()
            .all(|(i, &l)| i == y || l < top)
    }
}

/// One attainable accuracy together with an order that attains it.
#[derive(Debug, Clone, Serialize)]
pub struct Attainable {
    /// The accuracy of `ranking` under `D`, measured with [`rmteach::metrics`].
    pub alpha: f64,
    /// An order attaining it.
    pub ranking: Ranking,
}

fn check_rewards(r_g: &[f64], top: Option<usize>) -> Result<()> {
    if r_g.len() < 2 {
        return Err(TheoryError::invalid("r_g", "needs at least 2 outputs"));
    }
    if let Some(i) = r_g.iter().position(|v| !v.is_finite()) {
        return Err(TheoryError::invalid(
            format!("r_g[{i}]"),
            "is not a finite number",
        ));
    }
    if let Some(y) = top {
        if y >= r_g.len() {
            return Err(TheoryError::invalid(
                "top",
                format!("output {y} is out of range for {} outputs", r_g.len()),
            ));
        }
    }
    Ok(())
}

/// The orders on the adjacent-transposition path from the ground truth to its reverse
/// (with `top = Some(y)`, of the other outputs, `y` kept strictly above them); the first
/// order is the ground truth with its ties.
fn bubble_path(r_g: &[f64], top: Option<usize>) -> Vec<Ranking> {
    let n = r_g.len();
    let mut others: Vec<usize> = (0..n).filter(|&y| Some(y) != top).collect();
    others.sort_by(|&a, &b| r_g[a].total_cmp(&r_g[b]).then(a.cmp(&b)));
    let m = others.len();
    let with_top = |mut levels: Vec<usize>| -> Ranking {
        if let Some(y) = top {
            levels[y] = levels
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != y)
                .map(|(_, &l)| l + 1)
                .max()
                .unwrap_or(0);
        }
        Ranking::from_levels(&levels)
    };
    let mut states = Vec::with_capacity(m * m.saturating_sub(1) / 2 + 2);
    // The ground truth with its ties (over the reordered outputs).
    let gt_values: Vec<f64> = (0..n)
        .map(|y| {
            if Some(y) == top {
                f64::NEG_INFINITY
            } else {
                r_g[y]
            }
        })
        .collect();
    states.push(with_top(Ranking::of_values(&gt_values).levels));
    let strict = |order: &[usize]| -> Ranking {
        let mut levels = vec![0; n];
        for (pos, &y) in order.iter().enumerate() {
            levels[y] = pos;
        }
        with_top(levels)
    };
    let mut order = others;
    states.push(strict(&order));
    for pass in 0..m {
        for j in 0..m.saturating_sub(1 + pass) {
            order.swap(j, j + 1);
            states.push(strict(&order));
        }
    }
    states
}

/// Attainable accuracies under `D`, with an order attaining each, highest first.
///
/// `top = None`: every order on the bubble-sort path from the ground truth to its
/// reverse. `top = Some(y_g)`: `y_g` strictly first, the path over the other outputs
/// (accuracy "attainable subject to `y_g` ranked first"). Accuracies closer than
/// [`PairDistribution::tolerance`] are merged (the first order is kept). Under the
/// uniform distribution with distinct `r_G` and `top = None` this is every `k / P`.
pub fn attainable_grid(
    r_g: &[f64],
    d: &PairDistribution,
    top: Option<usize>,
) -> Result<Vec<Attainable>> {
    check_rewards(r_g, top)?;
    let mut grid: Vec<Attainable> = Vec::new();
    for ranking in bubble_path(r_g, top) {
        let alpha = d.accuracy(&ranking.scores(), r_g)?;
        if !grid.iter().any(|a| d.same(a.alpha, alpha)) {
            grid.push(Attainable { alpha, ranking });
        }
    }
    grid.sort_by(|a, b| b.alpha.total_cmp(&a.alpha));
    Ok(grid)
}

/// A requested accuracy, the order realising it, and the accuracy re-measured.
#[derive(Debug, Clone, Serialize)]
pub struct Realised {
    /// The accuracy asked for.
    pub requested: f64,
    /// The accuracy of `ranking`, measured with [`rmteach::metrics`].
    pub realised: f64,
    /// The order.
    pub ranking: Ranking,
}

/// The order realising accuracy `alpha` under `D` (subject to `top` ranked first, when
/// given); an error when `alpha` is not among the values of [`attainable_grid`].
pub fn realise(
    r_g: &[f64],
    d: &PairDistribution,
    alpha: f64,
    top: Option<usize>,
) -> Result<Realised> {
    let grid = attainable_grid(r_g, d, top)?;
    let Some(hit) = grid.iter().find(|a| d.same(a.alpha, alpha)) else {
        let offered: Vec<String> = grid.iter().map(|a| format!("{:.6}", a.alpha)).collect();
        return Err(TheoryError::invalid(
            "alpha",
            format!(
                "{alpha} is not attained by the construction under {}; attainable: {}",
                d.describe(),
                offered.join(", ")
            ),
        ));
    };
    let realised = d.accuracy(&hit.ranking.scores(), r_g)?;
    Ok(Realised {
        requested: alpha,
        realised,
        ranking: hit.ranking.clone(),
    })
}

/// Theorem 2's weak teacher: `y_g` first, every other pair ordered against `r_G`
/// (the others in reverse ground-truth order), so that the only correct pairs are
/// `(y_g, y)` with `r_G(y) < r_G(y_g)`; its uniform accuracy is at most `2/|Y|`.
pub fn wrong_except_top(r_g: &[f64], y_g: usize) -> Result<Ranking> {
    check_rewards(r_g, Some(y_g))?;
    let mut others: Vec<usize> = (0..r_g.len()).filter(|&y| y != y_g).collect();
    others.sort_by(|&a, &b| r_g[b].total_cmp(&r_g[a]).then(b.cmp(&a)));
    others.push(y_g);
    Ok(Ranking::from_order(&others))
}

/// Theorem 5's slow teacher: `r_RM(y) = b_y = (level + 1) / ((num_levels + 1) T)`, so
/// `0 < b_y < 1/T` and `Var_pi[r_RM] < 1/T^2` for every policy; ties share a value.
pub fn thm5_slow_reward(ranking: &Ranking, t_big: f64) -> Result<Vec<f64>> {
    if !(t_big.is_finite() && t_big >= 1.0) {
        return Err(TheoryError::invalid(
            "T",
            format!("must be a finite number >= 1, got {t_big}"),
        ));
    }
    let denom = (ranking.num_levels() + 1) as f64 * t_big;
    Ok(ranking
        .levels
        .iter()
        .map(|&l| (l + 1) as f64 / denom)
        .collect())
}

/// Theorem 5's fast teacher: `r'_RM(y_g) = 1` and `r'_RM(y) = c_y = pi_0(y_g) (level + 1) /
/// (levels below y_g + 1)` otherwise, so `0 < c_y < pi_0(y_g)`, ordered like `ranking`,
/// which must put `y_g` strictly first.
pub fn thm5_fast_reward(ranking: &Ranking, y_g: usize, pi0_yg: f64) -> Result<Vec<f64>> {
    if y_g >= ranking.len() || !ranking.strictly_first(y_g) {
        return Err(TheoryError::invalid(
            "ranking",
            format!("must put y_g = {y_g} strictly first"),
        ));
    }
    if !(pi0_yg > 0.0 && pi0_yg <= 1.0) {
        return Err(TheoryError::invalid(
            "pi0_yg",
            format!("must be in (0, 1], got {pi0_yg}"),
        ));
    }
    let below: Vec<usize> = ranking
        .levels
        .iter()
        .enumerate()
        .filter(|(y, _)| *y != y_g)
        .map(|(_, &l)| l)
        .collect();
    let dense = Ranking::from_levels(&below);
    let denom = (dense.num_levels() + 1) as f64;
    let mut r = vec![1.0; ranking.len()];
    let mut k = 0;
    for (y, v) in r.iter_mut().enumerate() {
        if y != y_g {
            *v = pi0_yg * (dense.levels[k] + 1) as f64 / denom;
            k += 1;
        }
    }
    Ok(r)
}

/// The pair of teachers of Theorem 5 with their accuracies measured on the reward
/// vectors themselves.
#[derive(Debug, Clone, Serialize)]
pub struct Thm5Rewards {
    /// `r_RM` (values in `(0, 1/T)`).
    pub r_rm: Vec<f64>,
    /// `r'_RM` (`1` on `y_g`, values in `(0, pi_0(y_g))` elsewhere).
    pub r_rm_prime: Vec<f64>,
    /// Requested `alpha`.
    pub alpha: f64,
    /// `acc_D(r_RM)`, measured.
    pub alpha_realised: f64,
    /// Requested `alpha'`.
    pub alpha_prime: f64,
    /// `acc_D(r'_RM)`, measured.
    pub alpha_prime_realised: f64,
}

impl Thm5Rewards {
    /// Whether both measured accuracies equal the requested ones (exactly for the
    /// uniform distribution, to [`WEIGHTED_ACCURACY_TOL`] for a weighted one).
    pub fn exact(&self, d: &PairDistribution) -> bool {
        d.same(self.alpha, self.alpha_realised)
            && d.same(self.alpha_prime, self.alpha_prime_realised)
    }
}

/// Builds Theorem 5's `r_RM` (accuracy `alpha`) and `r'_RM` (accuracy `alpha'`, `y_g`
/// first) for `T` and `pi_0(y_g)`, and measures their accuracies under `D`.
pub fn thm5_rewards(
    r_g: &[f64],
    d: &PairDistribution,
    alpha: f64,
    alpha_prime: f64,
    y_g: usize,
    pi0_yg: f64,
    t_big: f64,
) -> Result<Thm5Rewards> {
    let slow = realise(r_g, d, alpha, None)?;
    let fast = realise(r_g, d, alpha_prime, Some(y_g))?;
    let r_rm = thm5_slow_reward(&slow.ranking, t_big)?;
    let r_rm_prime = thm5_fast_reward(&fast.ranking, y_g, pi0_yg)?;
    Ok(Thm5Rewards {
        alpha_realised: d.accuracy(&r_rm, r_g)?,
        alpha_prime_realised: d.accuracy(&r_rm_prime, r_g)?,
        r_rm,
        r_rm_prime,
        alpha,
        alpha_prime,
    })
}

/// Theorem 6's teacher: `+1` on `favoured`, `-1` elsewhere.
pub fn thm6_reward(n: usize, favoured: usize) -> Vec<f64> {
    (0..n)
        .map(|y| if y == favoured { 1.0 } else { -1.0 })
        .collect()
}

/// The mass given to the suppressed output: `T^-2`, capped at `(1-c)/4` so that the
/// other outputs keep mass (the cap binds only for `T < 2/sqrt(1-c)`, e.g. `T = 1`).
pub fn thm6_suppressed_mass(t_big: f64, c: f64) -> f64 {
    t_big.powi(-2).min(0.25 * (1.0 - c))
}

/// How far a member of Theorem 6's family is from each constraint.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Thm6Residuals {
    /// `E_pi r_G - V0` (must be within [`MEAN_TOL`] of 0).
    pub mean: f64,
    /// `T^-2 - pi(suppressed)` (must be `>= 0`).
    pub suppressed_slack: f64,
    /// `pi(favoured) - c` (must be `>= 0`).
    pub favoured_slack: f64,
    /// `sum_y pi(y) - 1`.
    pub sum: f64,
    /// `min_y pi(y)` (must be `> 0`).
    pub min_prob: f64,
}

impl Thm6Residuals {
    /// Whether every constraint of the family holds.
    pub fn holds(&self) -> bool {
        self.mean.abs() <= MEAN_TOL
            && self.suppressed_slack >= 0.0
            && self.favoured_slack >= 0.0
            && self.min_prob > 0.0
    }
}

/// A member of `Pi` (favoured `y_g`, suppressed `y_g'`) or `Pi'` (roles swapped).
#[derive(Debug, Clone, Serialize)]
pub struct Thm6Policy {
    /// `pi_0`.
    pub probs: Vec<f64>,
    /// The output given mass `c`.
    pub favoured: usize,
    /// The output given mass at most `T^-2`.
    pub suppressed: usize,
    /// The prescribed `E_pi r_G`.
    pub v0: f64,
    /// `T`.
    pub t_big: f64,
    /// `c`.
    pub c: f64,
    /// The residual of every constraint.
    pub residuals: Thm6Residuals,
}

/// The interval of `r_G` means over the other outputs that the mixture can hit.
fn others_range(r_g: &[f64], a: usize, b: usize) -> (f64, f64) {
    r_g.iter()
        .enumerate()
        .filter(|(y, _)| *y != a && *y != b)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), (_, &v)| {
            (lo.min(v), hi.max(v))
        })
}

/// Builds `pi_0` with `pi(favoured) = c`, `pi(suppressed) = ` [`thm6_suppressed_mass`]`(T, c)`
/// and the remaining mass spread over the other outputs as the distribution `shape`
/// (positive weights; entries of the two named outputs are ignored) mixed with the
/// lowest- or highest-`r_G` other output by the exact fraction that makes
/// `E_pi r_G = V0`. Fails when `V0` is out of reach (see [`thm6_v0_range`]).
pub fn thm6_policy(
    r_g: &[f64],
    favoured: usize,
    suppressed: usize,
    v0: f64,
    t_big: f64,
    c: f64,
    shape: &[f64],
) -> Result<Thm6Policy> {
    let n = r_g.len();
    check_rewards(r_g, None)?;
    if n < 3 {
        return Err(TheoryError::invalid(
            "r_g",
            "Theorem 6's families need at least 3 outputs",
        ));
    }
    if favoured >= n || suppressed >= n || favoured == suppressed {
        return Err(TheoryError::invalid(
            "favoured/suppressed",
            "must be two distinct outputs",
        ));
    }
    if !(c > 0.0 && c < 1.0) {
        return Err(TheoryError::invalid(
            "c",
            format!("must be in (0, 1), got {c}"),
        ));
    }
    if !(t_big.is_finite() && t_big >= 1.0) {
        return Err(TheoryError::invalid(
            "T",
            format!("must be a finite number >= 1, got {t_big}"),
        ));
    }
    if shape.len() != n
        || shape
            .iter()
            .enumerate()
            .any(|(y, &w)| y != favoured && y != suppressed && !(w > 0.0 && w.is_finite()))
    {
        return Err(TheoryError::invalid(
            "shape",
            "needs a positive finite weight for every other output",
        ));
    }
    let q = thm6_suppressed_mass(t_big, c);
    let rest = 1.0 - c - q;
    let target = (v0 - c * r_g[favoured] - q * r_g[suppressed]) / rest;
    let (lo, hi) = others_range(r_g, favoured, suppressed);
    if !(target > lo && target < hi) {
        return Err(TheoryError::invalid(
            "V0",
            format!("{v0} needs the other outputs to average {target}, outside ({lo}, {hi}) for T = {t_big}, c = {c}"),
        ));
    }
    let others: Vec<usize> = (0..n)
        .filter(|&y| y != favoured && y != suppressed)
        .collect();
    let total: f64 = others.iter().map(|&y| shape[y]).sum();
    let mut sigma = vec![0.0; n];
    for &y in &others {
        sigma[y] = shape[y] / total;
    }
    let mean_sigma: f64 = others.iter().map(|&y| sigma[y] * r_g[y]).sum();
    let extreme = |better: fn(f64, f64) -> bool| -> usize {
        others
            .iter()
            .copied()
            .reduce(|a, b| if better(r_g[b], r_g[a]) { b } else { a })
            .expect("at least one other output")
    };
    let (anchor, beta) = if target < mean_sigma {
        let y = extreme(|x, best| x < best);
        (y, (mean_sigma - target) / (mean_sigma - r_g[y]))
    } else {
        let y = extreme(|x, best| x > best);
        (
            y,
            if target > mean_sigma {
                (target - mean_sigma) / (r_g[y] - mean_sigma)
            } else {
                0.0
            },
        )
    };
    let mut probs = vec![0.0; n];
    for &y in &others {
        probs[y] = rest * (1.0 - beta) * sigma[y];
    }
    probs[anchor] += rest * beta;
    probs[favoured] = c;
    probs[suppressed] = q;
    let residuals = Thm6Residuals {
        mean: expected_reward(&probs, r_g)? - v0,
        suppressed_slack: t_big.powi(-2) - probs[suppressed],
        favoured_slack: probs[favoured] - c,
        sum: probs.iter().sum::<f64>() - 1.0,
        min_prob: probs.iter().copied().fold(f64::INFINITY, f64::min),
    };
    Ok(Thm6Policy {
        probs,
        favoured,
        suppressed,
        v0,
        t_big,
        c,
        residuals,
    })
}

/// The open interval of `V0` for which [`thm6_policy`] can build every member of `Pi`
/// (favoured `y_g`, suppressed `y_g2`) and `Pi'` (roles swapped) for all `T` in `ts` and
/// `c` in `cs`, intersected with `V0 < min(r_G(y_g), r_G(y_g2))`; `None` when empty.
pub fn thm6_v0_range(
    r_g: &[f64],
    y_g: usize,
    y_g2: usize,
    ts: &[f64],
    cs: &[f64],
) -> Option<(f64, f64)> {
    if r_g.len() < 3 || y_g == y_g2 || y_g.max(y_g2) >= r_g.len() {
        return None;
    }
    let (o_lo, o_hi) = others_range(r_g, y_g, y_g2);
    let mut lo = -1.0_f64;
    let mut hi = r_g[y_g].min(r_g[y_g2]).min(1.0);
    for &t in ts {
        for &c in cs {
            let q = thm6_suppressed_mass(t, c);
            let rest = 1.0 - c - q;
            for (fav, sup) in [(y_g, y_g2), (y_g2, y_g)] {
                let fixed = c * r_g[fav] + q * r_g[sup];
                lo = lo.max(fixed + rest * o_lo);
                hi = hi.min(fixed + rest * o_hi);
            }
        }
    }
    (lo < hi).then_some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn distinct_rewards(rng: &mut ChaCha8Rng, n: usize) -> Vec<f64> {
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    #[test]
    fn uniform_grid_visits_every_pair_count() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for n in [2, 3, 4, 6, 10] {
            let r_g = distinct_rewards(&mut rng, n);
            let p = n * (n - 1) / 2;
            let grid = attainable_grid(&r_g, &PairDistribution::Uniform, None).unwrap();
            assert_eq!(grid.len(), p + 1, "n = {n}");
            for k in 0..=p {
                let alpha = k as f64 / p as f64;
                let r = realise(&r_g, &PairDistribution::Uniform, alpha, None).unwrap();
                assert_eq!(r.realised, alpha);
                assert_eq!(accuracy_uniform(&r.ranking.scores(), &r_g).unwrap(), alpha);
                // The Theorem 5 reward of that order keeps its accuracy exactly.
                let b = thm5_slow_reward(&r.ranking, 37.0).unwrap();
                assert!(b.iter().all(|&v| v > 0.0 && v < 1.0 / 37.0));
                assert_eq!(accuracy_uniform(&b, &r_g).unwrap(), alpha);
            }
        }
    }

    #[test]
    fn uniform_grid_with_top_is_the_shifted_range() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for n in [3, 5, 8] {
            let r_g = distinct_rewards(&mut rng, n);
            let y_g = rng.random_range(0..n);
            let p = n * (n - 1) / 2;
            let below = r_g.iter().filter(|&&v| v < r_g[y_g]).count();
            let grid = attainable_grid(&r_g, &PairDistribution::Uniform, Some(y_g)).unwrap();
            let expect: Vec<f64> = (0..=(n - 1) * (n - 2) / 2)
                .rev()
                .map(|k| (below + k) as f64 / p as f64)
                .collect();
            let got: Vec<f64> = grid.iter().map(|a| a.alpha).collect();
            assert_eq!(got, expect);
            for a in &grid {
                assert!(a.ranking.strictly_first(y_g));
                let pi0 = 0.01;
                let c = thm5_fast_reward(&a.ranking, y_g, pi0).unwrap();
                assert_eq!(c[y_g], 1.0);
                assert!(c
                    .iter()
                    .enumerate()
                    .all(|(y, &v)| y == y_g || (v > 0.0 && v < pi0)));
                assert_eq!(accuracy_uniform(&c, &r_g).unwrap(), a.alpha);
            }
            // Theorem 2's weak teacher is the last order of the path and has accuracy <= 2/|Y|.
            let weak = wrong_except_top(&r_g, y_g).unwrap();
            let acc = accuracy_uniform(&weak.scores(), &r_g).unwrap();
            assert_eq!(acc, below as f64 / p as f64);
            assert_eq!(acc, *got.last().unwrap());
            assert!(acc <= 2.0 / n as f64);
        }
    }

    #[test]
    fn weighted_grid_is_realised() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for n in [3, 4, 6, 10] {
            let r_g = distinct_rewards(&mut rng, n);
            let d = PairDistribution::random_weighted(&mut rng, n, 0.6);
            let y_g = rng.random_range(0..n);
            for top in [None, Some(y_g)] {
                let grid = attainable_grid(&r_g, &d, top).unwrap();
                assert!(grid.windows(2).all(|w| w[0].alpha > w[1].alpha));
                if top.is_none() {
                    assert_eq!(grid[0].alpha, 1.0);
                    assert_eq!(grid.last().unwrap().alpha, 0.0);
                }
                for a in &grid {
                    let r = realise(&r_g, &d, a.alpha, top).unwrap();
                    assert!((r.realised - a.alpha).abs() <= WEIGHTED_ACCURACY_TOL);
                    let PairDistribution::Weighted(pairs) = &d else {
                        unreachable!()
                    };
                    let direct = accuracy_weighted(&r.ranking.scores(), &r_g, pairs).unwrap();
                    assert!((direct - a.alpha).abs() <= WEIGHTED_ACCURACY_TOL);
                }
            }
            let (hi, lo) = {
                let g = attainable_grid(&r_g, &d, Some(y_g)).unwrap();
                (g[0].alpha, g.last().unwrap().alpha)
            };
            let t = thm5_rewards(&r_g, &d, 1.0, lo, y_g, 0.2, 10.0).unwrap();
            assert!(t.exact(&d), "{t:?}");
            let t = thm5_rewards(&r_g, &d, 0.0, hi, y_g, 0.2, 10.0).unwrap();
            assert!(t.exact(&d), "{t:?}");
        }
    }

    #[test]
    fn ties_in_ground_truth_are_handled() {
        let signed_zeros = [0.0, -0.0, 1.0];
        let gt = Ranking::of_values(&signed_zeros);
        assert_eq!(accuracy_uniform(&gt.scores(), &signed_zeros).unwrap(), 1.0);
        let r_g = [0.5, 0.5, -0.2, 0.9];
        let grid = attainable_grid(&r_g, &PairDistribution::Uniform, None).unwrap();
        assert_eq!(grid[0].alpha, 1.0);
        assert_eq!(grid[0].ranking.levels[0], grid[0].ranking.levels[1]);
        for a in &grid {
            assert_eq!(
                accuracy_uniform(&a.ranking.scores(), &r_g).unwrap(),
                a.alpha
            );
        }
    }

    #[test]
    fn thm6_families_satisfy_their_constraints() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let ts = [1.0, 3.0, 10.0, 30.0, 100.0];
        let cs = [0.1, 0.3];
        // With 3 outputs the mean is pinned by c and T: no V0 serves a whole sweep.
        assert!(thm6_v0_range(&[0.9, -0.9, 0.8], 0, 2, &ts, &cs).is_none());
        for n in [4, 6, 10] {
            let mut r_g = distinct_rewards(&mut rng, n);
            let (y_g, y_g2) = (0, n - 1);
            r_g[y_g] = 0.9;
            r_g[y_g2] = 0.8;
            r_g[1] = -0.95;
            r_g[2] = 0.7;
            let shape: Vec<f64> = (0..n).map(|_| rng.random_range(0.1..1.0)).collect();
            let (lo, hi) = thm6_v0_range(&r_g, y_g, y_g2, &ts, &cs).expect("feasible");
            let v0 = lo + 0.3 * (hi - lo);
            for &t in &ts {
                for &c in &cs {
                    for (fav, sup) in [(y_g, y_g2), (y_g2, y_g)] {
                        let p = thm6_policy(&r_g, fav, sup, v0, t, c, &shape).unwrap();
                        assert!(p.residuals.holds(), "{p:?}");
                        assert!(p.residuals.sum.abs() < 1e-12);
                        assert_eq!(p.probs[fav], c);
                        assert!(p.probs[sup] <= t.powi(-2));
                        assert!((expected_reward(&p.probs, &r_g).unwrap() - v0).abs() <= MEAN_TOL);
                        if t >= 3.0 {
                            assert_eq!(p.probs[sup], t.powi(-2));
                        }
                    }
                }
            }
            // Out of reach: V0 above every attainable mean.
            assert!(thm6_policy(&r_g, y_g, y_g2, 0.999, 10.0, 0.1, &shape).is_err());
        }
        assert_eq!(thm6_reward(3, 1), vec![-1.0, 1.0, -1.0]);
    }
}
