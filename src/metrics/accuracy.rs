//! Reward-model accuracy (Definition 1 of Razin et al., 2025).
//!
//! A pair of outputs `{y, y'}` is ranked correctly iff
//! `sign(r_RM(y) - r_RM(y')) == sign(r_G(y) - r_G(y'))` with `sign(0) = 0`:
//! a reward-model tie counts as correct only when the ground truth ties too.
//! Accuracy is the probability of a correct ranking under a distribution over
//! unordered pairs: an explicit weighted list ([`accuracy_weighted`]), the
//! uniform distribution over all pairs ([`accuracy_uniform`]), pairs of
//! on-policy samples per prompt ([`on_policy_accuracy`]), or one fixed
//! preference pair per prompt ([`off_policy_accuracy`]).

use serde::{Deserialize, Serialize};

use super::error::{MetricsError, Result};
use super::groups::{mean_over_groups, per_group};
use super::order::cmp_f64;
use super::validate;

/// Whether the reward model ranks one pair like the ground truth does.
///
/// `rm_a`, `rm_b` are the reward model's scores of the two outputs, `g_a`,
/// `g_b` the ground-truth rewards. True iff the signs of `rm_a - rm_b` and
/// `g_a - g_b` agree, with ties (sign 0) agreeing only with ties. This is also
/// the accuracy of a single off-policy preference pair. Inputs are expected to
/// be finite (the slice-based functions validate them); a pair involving NaN
/// never agrees.
pub fn pair_agrees(rm_a: f64, rm_b: f64, g_a: f64, g_b: f64) -> bool {
    match (rm_a.partial_cmp(&rm_b), g_a.partial_cmp(&g_b)) {
        (Some(rm), Some(g)) => rm == g,
        _ => false,
    }
}

/// An unordered pair of outputs `{a, b}` (indices into the reward vectors)
/// with a non-negative weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WeightedPair {
    /// Index of the first output.
    pub a: usize,
    /// Index of the second output (must differ from `a`).
    pub b: usize,
    /// Unnormalised probability of the pair (finite, `>= 0`).
    pub weight: f64,
}

/// One prompt's preference pair scored by the reward model and the ground truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScoredPair {
    /// Reward-model score of the chosen response.
    pub rm_chosen: f64,
    /// Reward-model score of the rejected response.
    pub rm_rejected: f64,
    /// Ground-truth reward of the chosen response.
    pub g_chosen: f64,
    /// Ground-truth reward of the rejected response.
    pub g_rejected: f64,
}

impl ScoredPair {
    /// Whether the reward model ranks this pair like the ground truth ([`pair_agrees`]).
    pub fn agrees(&self) -> bool {
        pair_agrees(
            self.rm_chosen,
            self.rm_rejected,
            self.g_chosen,
            self.g_rejected,
        )
    }

    /// The four scores, for validation.
    fn scores(&self) -> [f64; 4] {
        [
            self.rm_chosen,
            self.rm_rejected,
            self.g_chosen,
            self.g_rejected,
        ]
    }
}

/// Checks the reward-model and ground-truth score vectors of `n >= needed` outputs.
fn check_scores(r_rm: &[f64], r_g: &[f64], needed: usize) -> Result<()> {
    validate::paired_scores("r_rm vs r_g", ("r_rm", r_rm), ("r_g", r_g), needed)
}

/// Checks one weighted pair against `n` outputs.
fn check_pair(index: usize, pair: &WeightedPair, n: usize) -> Result<()> {
    let reason = if !(pair.weight.is_finite() && pair.weight >= 0.0) {
        format!("weight {} must be finite and >= 0", pair.weight)
    } else if pair.a >= n || pair.b >= n {
        format!(
            "indices ({}, {}) out of range for {n} outputs",
            pair.a, pair.b
        )
    } else if pair.a == pair.b {
        format!(
            "both indices are {}; a pair needs two distinct outputs",
            pair.a
        )
    } else {
        return Ok(());
    };
    Err(MetricsError::InvalidPair { index, reason })
}

/// Exact accuracy under an explicit weighted list of unordered pairs.
///
/// The weights are normalised by their total, so they need not sum to 1;
/// listing a pair twice adds its weights.
///
/// # Errors
/// [`MetricsError::LengthMismatch`], [`MetricsError::NotFinite`] for the
/// scores; [`MetricsError::Empty`] for an empty pair list;
/// [`MetricsError::InvalidPair`] for a negative or non-finite weight, an index
/// out of range, or `a == b`; [`MetricsError::InvalidWeights`] when the total
/// weight is zero or overflows.
pub fn accuracy_weighted(r_rm: &[f64], r_g: &[f64], pairs: &[WeightedPair]) -> Result<f64> {
    check_scores(r_rm, r_g, 0)?;
    validate::at_least("pairs", 1, pairs.len())?;
    let mut total = 0.0;
    let mut correct = 0.0;
    for (index, pair) in pairs.iter().enumerate() {
        check_pair(index, pair, r_rm.len())?;
        total += pair.weight;
        if pair_agrees(r_rm[pair.a], r_rm[pair.b], r_g[pair.a], r_g[pair.b]) {
            correct += pair.weight;
        }
    }
    if !(total > 0.0 && total.is_finite()) {
        return Err(MetricsError::InvalidWeights {
            reason: format!("total weight is {total}; it must be positive and finite"),
        });
    }
    Ok((correct / total).clamp(0.0, 1.0))
}

/// Number of unordered pairs among `n` items, `n (n - 1) / 2`.
fn pairs_among(n: usize) -> u128 {
    let n = n as u128;
    n * n.saturating_sub(1) / 2
}

/// Number of unordered pairs within runs of consecutive equal elements.
fn tied_pairs<T: PartialEq>(sorted: &[T]) -> u128 {
    sorted
        .chunk_by(|a, b| a == b)
        .map(|run| pairs_among(run.len()))
        .sum()
}

/// Sorts `v` ascending (merge sort) and returns the number of strict
/// inversions, the pairs `i < j` with `v[i] > v[j]`.
fn sort_counting_inversions(mut v: Vec<f64>) -> (Vec<f64>, u128) {
    let n = v.len();
    let mut buf = vec![0.0; n];
    let mut inversions = 0u128;
    let mut width = 1;
    while width < n {
        for start in (0..n).step_by(2 * width) {
            let mid = (start + width).min(n);
            let end = (start + 2 * width).min(n);
            inversions += merge(&v[start..mid], &v[mid..end], &mut buf[start..end]);
        }
        std::mem::swap(&mut v, &mut buf);
        width *= 2;
    }
    (v, inversions)
}

/// Merges two sorted runs into `out`; returns how many (left, right) pairs
/// have left strictly greater than right. Equal elements are not counted.
fn merge(left: &[f64], right: &[f64], out: &mut [f64]) -> u128 {
    let (mut i, mut j) = (0, 0);
    let mut inversions = 0u128;
    for slot in out.iter_mut() {
        let take_right = i == left.len() || (j < right.len() && cmp_f64(right[j], left[i]).is_lt());
        if take_right {
            if i < left.len() {
                inversions += (left.len() - i) as u128;
            }
            *slot = right[j];
            j += 1;
        } else {
            *slot = left[i];
            i += 1;
        }
    }
    inversions
}

/// Exact accuracy under the uniform distribution over all `n (n - 1) / 2`
/// unordered pairs, in `O(n log n)`.
///
/// Uses Knight's algorithm for Kendall's tau: sort by `(r_g, r_rm)`, count
/// pairs tied in `r_g` and tied in both, count discordant pairs as merge-sort
/// inversions of the `r_rm` sequence, then count pairs tied in `r_rm`.
/// Correct pairs are the concordant ones plus those tied in both.
/// [`accuracy_uniform_quadratic`] is the `O(n^2)` reference.
///
/// # Errors
/// [`MetricsError::LengthMismatch`], [`MetricsError::NotFinite`],
/// [`MetricsError::Empty`] / [`MetricsError::TooFew`] (needs `n >= 2`).
pub fn accuracy_uniform(r_rm: &[f64], r_g: &[f64]) -> Result<f64> {
    check_scores(r_rm, r_g, 2)?;
    let mut by_g: Vec<(f64, f64)> = r_g.iter().copied().zip(r_rm.iter().copied()).collect();
    by_g.sort_unstable_by(|x, y| cmp_f64(x.0, y.0).then(cmp_f64(x.1, y.1)));
    let g_ties = tied_pairs(&by_g.iter().map(|p| p.0).collect::<Vec<_>>());
    let both_ties = tied_pairs(&by_g);
    let (rm_sorted, discordant) = sort_counting_inversions(by_g.iter().map(|p| p.1).collect());
    let rm_ties = tied_pairs(&rm_sorted);
    let total = pairs_among(r_rm.len());
    // Pairs tied in neither are concordant or discordant.
    let concordant = total + both_ties - g_ties - rm_ties - discordant;
    Ok((concordant + both_ties) as f64 / total as f64)
}

/// Accuracy under the uniform distribution over all unordered pairs by direct
/// enumeration in `O(n^2)`: the reference that tests compare
/// [`accuracy_uniform`] with. Same inputs and errors as [`accuracy_uniform`].
///
/// # Errors
/// As [`accuracy_uniform`].
pub fn accuracy_uniform_quadratic(r_rm: &[f64], r_g: &[f64]) -> Result<f64> {
    check_scores(r_rm, r_g, 2)?;
    let n = r_rm.len();
    let correct: u128 = (0..n)
        .flat_map(|i| (i + 1..n).map(move |j| (i, j)))
        .filter(|&(i, j)| pair_agrees(r_rm[i], r_rm[j], r_g[i], r_g[j]))
        .count() as u128;
    Ok(correct as f64 / pairs_among(n) as f64)
}

/// On-policy accuracy: for each prompt, the accuracy over all pairs of that
/// prompt's sampled responses ([`accuracy_uniform`] on the samples), averaged
/// over prompts.
///
/// Each group is `(reward-model scores, ground-truth rewards)` of one
/// prompt's samples.
///
/// # Errors
/// [`MetricsError::Empty`] when there are no groups;
/// [`MetricsError::InGroup`] wrapping the [`accuracy_uniform`] error of the
/// first bad group.
pub fn on_policy_accuracy<'a, I>(groups: I) -> Result<f64>
where
    I: IntoIterator<Item = (&'a [f64], &'a [f64])>,
{
    mean_over_groups("groups", groups, |(rm, g)| accuracy_uniform(rm, g))
}

/// Each group's on-policy accuracy (what [`on_policy_accuracy`] averages), in group
/// order.
///
/// # Errors
/// As [`on_policy_accuracy`], the failing group named by its index.
pub fn prompt_on_policy_accuracies<'a, I>(groups: I) -> Result<Vec<f64>>
where
    I: IntoIterator<Item = (&'a [f64], &'a [f64])>,
{
    per_group("groups", groups, |(rm, g)| accuracy_uniform(rm, g))
}

/// Off-policy accuracy: the fraction of prompts whose single preference pair
/// the reward model ranks like the ground truth.
///
/// # Errors
/// [`MetricsError::Empty`] for no pairs; [`MetricsError::NotFinite`] (with the
/// pair's index) when a score is NaN or infinite.
pub fn off_policy_accuracy(pairs: &[ScoredPair]) -> Result<f64> {
    validate::at_least("pairs", 1, pairs.len())?;
    if let Some(index) = pairs
        .iter()
        .position(|p| p.scores().iter().any(|s| !s.is_finite()))
    {
        return Err(MetricsError::NotFinite {
            what: "pairs",
            index,
        });
    }
    let correct = pairs.iter().filter(|p| p.agrees()).count();
    Ok(correct as f64 / pairs.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all_pairs(n: usize) -> Vec<WeightedPair> {
        (0..n)
            .flat_map(|a| (a + 1..n).map(move |b| WeightedPair { a, b, weight: 1.0 }))
            .collect()
    }

    /// Small integer-valued scores so that ties are frequent.
    fn tied_scores() -> impl Strategy<Value = (Vec<f64>, Vec<f64>)> {
        (2usize..60).prop_flat_map(|n| {
            let v = prop::collection::vec((-4i32..=4).prop_map(f64::from), n);
            (v.clone(), v)
        })
    }

    #[test]
    fn single_pair_rule() {
        assert!(pair_agrees(2.0, 1.0, 5.0, 3.0));
        assert!(!pair_agrees(2.0, 1.0, 3.0, 5.0));
        assert!(pair_agrees(1.0, 1.0, 4.0, 4.0));
        assert!(!pair_agrees(1.0, 1.0, 4.0, 5.0));
        assert!(!pair_agrees(1.0, 2.0, 4.0, 4.0));
        assert!(pair_agrees(-0.0, 0.0, 1.0, 1.0));
        assert!(!pair_agrees(f64::NAN, 0.0, 1.0, 1.0));
    }

    #[test]
    fn hand_computed_uniform_accuracy() {
        // Pairs: (0,1): rm 1<2, g 1<3 ok; (0,2): rm 1<3, g 1>0 wrong;
        // (0,3): rm tie, g tie ok; (1,2): rm 2<3, g 3>0 wrong;
        // (1,3): rm 2>1, g 3>1 ok; (2,3): rm 3>1, g 0<1 wrong. 3/6.
        let rm = [1.0, 2.0, 3.0, 1.0];
        let g = [1.0, 3.0, 0.0, 1.0];
        assert_eq!(accuracy_uniform(&rm, &g).unwrap(), 0.5);
        assert_eq!(accuracy_uniform_quadratic(&rm, &g).unwrap(), 0.5);
        // A constant reward model is right only on ground-truth ties.
        assert_eq!(accuracy_uniform(&[7.0; 4], &g).unwrap(), 1.0 / 6.0);
    }

    #[test]
    fn hand_computed_weighted_accuracy() {
        let rm = [1.0, 2.0, 3.0];
        let g = [1.0, 3.0, 2.0];
        let pairs = [
            WeightedPair {
                a: 0,
                b: 1,
                weight: 3.0,
            }, // correct
            WeightedPair {
                a: 1,
                b: 2,
                weight: 1.0,
            }, // wrong
            WeightedPair {
                a: 2,
                b: 0,
                weight: 0.0,
            }, // correct, no weight
        ];
        assert_eq!(accuracy_weighted(&rm, &g, &pairs).unwrap(), 0.75);
    }

    #[test]
    fn on_and_off_policy() {
        let rm1 = [1.0, 2.0, 3.0];
        let g1 = [1.0, 2.0, 3.0];
        let rm2 = [1.0, 2.0];
        let g2 = [2.0, 1.0];
        let acc = on_policy_accuracy([(&rm1[..], &g1[..]), (&rm2[..], &g2[..])]).unwrap();
        assert_eq!(acc, 0.5);
        let pairs = [
            ScoredPair {
                rm_chosen: 1.0,
                rm_rejected: 0.0,
                g_chosen: 1.0,
                g_rejected: 0.0,
            },
            ScoredPair {
                rm_chosen: 0.0,
                rm_rejected: 1.0,
                g_chosen: 1.0,
                g_rejected: 0.0,
            },
            ScoredPair {
                rm_chosen: 0.5,
                rm_rejected: 0.5,
                g_chosen: 1.0,
                g_rejected: 0.0,
            },
            ScoredPair {
                rm_chosen: 2.0,
                rm_rejected: 1.0,
                g_chosen: 3.0,
                g_rejected: 0.0,
            },
        ];
        assert_eq!(off_policy_accuracy(&pairs).unwrap(), 0.5);
    }

    #[test]
    fn bad_input_is_reported() {
        use MetricsError::*;
        assert!(matches!(
            accuracy_uniform(&[1.0], &[1.0]),
            Err(TooFew { .. })
        ));
        assert!(matches!(accuracy_uniform(&[], &[]), Err(Empty { .. })));
        assert!(matches!(
            accuracy_uniform(&[1.0, 2.0], &[1.0]),
            Err(LengthMismatch { .. })
        ));
        assert!(matches!(
            accuracy_uniform(&[1.0, f64::INFINITY], &[1.0, 2.0]),
            Err(NotFinite {
                what: "r_rm",
                index: 1
            })
        ));
        let r = [1.0, 2.0];
        let bad = |a, b, weight| accuracy_weighted(&r, &r, &[WeightedPair { a, b, weight }]);
        assert!(matches!(bad(0, 2, 1.0), Err(InvalidPair { index: 0, .. })));
        assert!(matches!(bad(1, 1, 1.0), Err(InvalidPair { .. })));
        assert!(matches!(bad(0, 1, -1.0), Err(InvalidPair { .. })));
        assert!(matches!(bad(0, 1, f64::NAN), Err(InvalidPair { .. })));
        assert!(matches!(bad(0, 1, 0.0), Err(InvalidWeights { .. })));
        assert!(matches!(accuracy_weighted(&r, &r, &[]), Err(Empty { .. })));
        let groups: [(&[f64], &[f64]); 0] = [];
        assert!(matches!(on_policy_accuracy(groups), Err(Empty { .. })));
        assert!(matches!(
            on_policy_accuracy([(&r[..], &r[..]), (&r[..1], &r[..1])]),
            Err(InGroup { index: 1, .. })
        ));
        assert!(matches!(
            prompt_on_policy_accuracies([(&r[..], &r[..]), (&r[..1], &r[..1])]),
            Err(InGroup { index: 1, .. })
        ));
        let flipped: Vec<f64> = r.iter().map(|v| -v).collect();
        let per = prompt_on_policy_accuracies([(&r[..], &r[..]), (&flipped[..], &r[..])]).unwrap();
        assert_eq!(per, vec![1.0, 0.0]);
        assert!(matches!(off_policy_accuracy(&[]), Err(Empty { .. })));
        let nan = ScoredPair {
            rm_chosen: f64::NAN,
            rm_rejected: 0.0,
            g_chosen: 0.0,
            g_rejected: 0.0,
        };
        assert!(matches!(
            off_policy_accuracy(&[nan]),
            Err(NotFinite {
                what: "pairs",
                index: 0
            })
        ));
    }

    #[test]
    fn large_input_runs_fast_and_matches_kendall_structure() {
        // 5,000 responses: a perfectly ordered reward model, then its reverse.
        let g: Vec<f64> = (0..5000).map(f64::from).collect();
        assert_eq!(accuracy_uniform(&g, &g).unwrap(), 1.0);
        let rev: Vec<f64> = g.iter().map(|x| -x).collect();
        assert_eq!(accuracy_uniform(&rev, &g).unwrap(), 0.0);
    }

    proptest! {
        #[test]
        fn fast_matches_quadratic((rm, g) in tied_scores()) {
            prop_assert_eq!(
                accuracy_uniform(&rm, &g).unwrap(),
                accuracy_uniform_quadratic(&rm, &g).unwrap()
            );
        }

        #[test]
        fn weighted_with_unit_weights_is_uniform((rm, g) in tied_scores()) {
            let w = accuracy_weighted(&rm, &g, &all_pairs(rm.len())).unwrap();
            let u = accuracy_uniform(&rm, &g).unwrap();
            prop_assert!((w - u).abs() <= 1e-12);
        }

        #[test]
        fn ground_truth_is_a_perfect_reward_model((_, g) in tied_scores()) {
            prop_assert_eq!(accuracy_uniform(&g, &g).unwrap(), 1.0);
        }

        /// Accuracy only depends on the ordering of the reward model's scores.
        #[test]
        fn invariant_under_increasing_transforms(
            (rm, g) in tied_scores(),
            slope in 0.1..10.0f64,
            offset in -5.0..5.0f64,
        ) {
            let acc = accuracy_uniform(&rm, &g).unwrap();
            let transforms: [&dyn Fn(f64) -> f64; 3] =
                [&f64::exp, &|x| x * x * x + x, &|x| slope * x + offset];
            for f in transforms {
                let t: Vec<f64> = rm.iter().map(|&x| f(x)).collect();
                prop_assert_eq!(accuracy_uniform(&t, &g).unwrap(), acc);
            }
        }

        #[test]
        fn reversed_distinct_rewards_are_always_wrong(
            g in (2usize..60).prop_flat_map(|n| Just((0..n).map(|i| i as f64).collect::<Vec<_>>()).prop_shuffle())
        ) {
            let rev: Vec<f64> = g.iter().map(|x| 10.0 - 2.0 * x).collect();
            prop_assert_eq!(accuracy_uniform(&rev, &g).unwrap(), 0.0);
            prop_assert_eq!(accuracy_uniform_quadratic(&rev, &g).unwrap(), 0.0);
        }

        #[test]
        fn accuracy_is_a_probability((rm, g) in tied_scores()) {
            let acc = accuracy_uniform(&rm, &g).unwrap();
            prop_assert!((0.0..=1.0).contains(&acc));
        }
    }
}
