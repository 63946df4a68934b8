//! One metrics core for both halves: the functions that give exact values for a
//! tabular policy give consistent estimates from sampled responses.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rmteach::metrics::{
    accuracy_weighted, expected_reward, mean_prompt_variance, on_policy_accuracy, reward_variance,
    softmax, VarianceEstimator, WeightedPair,
};
use rmteach_theory::instance::TabularInstance;

fn sample<R: Rng>(rng: &mut R, pi: &[f64]) -> usize {
    let u: f64 = rng.random();
    let mut acc = 0.0;
    for (y, p) in pi.iter().enumerate() {
        acc += p;
        if u < acc {
            return y;
        }
    }
    pi.len() - 1
}

#[test]
fn sampled_estimates_match_exact_values_of_a_flowed_policy() {
    // A policy after some gradient flow, as the theory half produces it.
    let inst = TabularInstance {
        num_prompts: 1,
        lambda: 0.0,
        gamma: 0.2,
        logits: Some(vec![0.3, -0.4, 1.1, 0.0, -1.5]),
        probs: None,
        r_rm: vec![0.5, -0.2, 0.1, 0.9, -0.7],
        r_g: vec![0.4, 0.1, -0.3, 1.0, -0.9],
        horizon: 3.0,
    };
    let res = inst.run(&Default::default(), false).unwrap();
    let pi = res.probs_end.clone();
    assert!((expected_reward(&pi, &inst.r_g).unwrap() - res.v_g_end).abs() < 1e-12);

    // 2,000 "prompts" x 10 sampled responses, as the LM half evaluates a reward model.
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let groups: Vec<Vec<usize>> = (0..2000)
        .map(|_| (0..10).map(|_| sample(&mut rng, &pi)).collect())
        .collect();
    let rm: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| g.iter().map(|&y| inst.r_rm[y]).collect())
        .collect();
    let gt: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| g.iter().map(|&y| inst.r_g[y]).collect())
        .collect();

    let exact_var = reward_variance(&pi, &inst.r_rm).unwrap();
    let est_var =
        mean_prompt_variance(rm.iter().map(|v| v.as_slice()), VarianceEstimator::Unbiased).unwrap();
    assert!(
        (est_var - exact_var).abs() < 0.05 * exact_var,
        "{est_var} vs {exact_var}"
    );

    // Exact on-policy accuracy: pairs of two independent draws, weighted pi(y) pi(y'),
    // where a repeated output is a tie in both rewards (correct).
    let n = pi.len();
    let mut pairs = Vec::new();
    let mut same = 0.0;
    for a in 0..n {
        same += pi[a] * pi[a];
        for b in a + 1..n {
            pairs.push(WeightedPair {
                a,
                b,
                weight: 2.0 * pi[a] * pi[b],
            });
        }
    }
    let distinct = accuracy_weighted(&inst.r_rm, &inst.r_g, &pairs).unwrap();
    let exact_acc = same + (1.0 - same) * distinct;
    let est_acc = on_policy_accuracy(
        rm.iter()
            .zip(&gt)
            .map(|(a, b)| (a.as_slice(), b.as_slice())),
    )
    .unwrap();
    assert!(
        (est_acc - exact_acc).abs() < 0.02,
        "{est_acc} vs {exact_acc}"
    );
    assert!(softmax(&[0.0, 0.0]).iter().all(|p| (p - 0.5).abs() < 1e-15));
}
