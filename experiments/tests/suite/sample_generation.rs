//! Batched, cached generation: batching and left padding do not change greedy
//! tokens, seeds reproduce samples, top-k 1 and a tiny top-p are greedy, EOS stops a
//! row without disturbing the others, bad settings are errors.

use crate::common;

use candle_core::Device;
use common::{all_tiny, build, tiny_llama};
use rmteach_experiments::models::CausalLm;
use rmteach_experiments::sample::{
    generate, pick_token, row_rng, FinishReason, Generation, SamplingConfig,
};

const PAD: u32 = 0;
/// An id no row is forced to produce (the tests set real EOS ids explicitly).
const NO_EOS: u32 = u32::MAX;

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![5, 9, 17],
        vec![4, 8, 15, 16, 23, 42, 7],
        vec![33],
        vec![2, 60, 7, 11, 3],
    ]
}

fn run<M: CausalLm + ?Sized>(model: &M, prompts: &[Vec<u32>], cfg: &SamplingConfig) -> Generation {
    generate(model, prompts, cfg, &Device::Cpu).expect("generate")
}

#[test]
fn batched_greedy_matches_one_by_one() {
    for (label, config) in all_tiny() {
        let (_, model) = build(&config, 21);
        let cfg = SamplingConfig::greedy(12, NO_EOS, PAD);
        let batched = run(&model, &prompts(), &cfg);
        assert_eq!(batched.prompts, prompts());
        for (i, p) in prompts().iter().enumerate() {
            let alone = run(&model, std::slice::from_ref(p), &cfg);
            assert_eq!(batched.responses[i], alone.responses[0], "{label}: row {i}");
            assert_eq!(batched.responses[i].len(), 12, "{label}: row {i}");
            assert_eq!(batched.finish_reasons[i], FinishReason::Length);
        }
    }
}

#[test]
fn same_seed_same_samples_and_seeds_differ() {
    let (_, model) = build(&tiny_llama(false, true), 4);
    let cfg = SamplingConfig::sampling(16, 1.0, NO_EOS, PAD, 1234);
    let a = run(&model, &prompts(), &cfg);
    let b = run(&model, &prompts(), &cfg);
    assert_eq!(a, b);
    let c = run(&model, &prompts(), &cfg.clone().with_seed(99));
    assert_ne!(a.responses, c.responses);
    // Top-k 50 / top-p 0.9 are reproducible too.
    let cfg = cfg.with_top_k(50).with_top_p(0.9);
    assert_eq!(run(&model, &prompts(), &cfg), run(&model, &prompts(), &cfg));
}

#[test]
fn top_k_one_and_tiny_top_p_equal_greedy() {
    for (label, config) in all_tiny() {
        let (_, model) = build(&config, 8);
        let greedy = run(&model, &prompts(), &SamplingConfig::greedy(10, NO_EOS, PAD));
        let sampled = SamplingConfig::sampling(10, 1.3, NO_EOS, PAD, 7);
        let top1 = run(&model, &prompts(), &sampled.clone().with_top_k(1));
        assert_eq!(greedy.responses, top1.responses, "{label}: top-k 1");
        let nucleus = run(&model, &prompts(), &sampled.with_top_p(1e-6));
        assert_eq!(greedy.responses, nucleus.responses, "{label}: top-p 1e-6");
    }
}

#[test]
fn eos_stops_a_row_and_leaves_the_others_alone() {
    for (label, config) in all_tiny() {
        let (_, model) = build(&config, 13);
        let free = run(&model, &prompts(), &SamplingConfig::greedy(10, NO_EOS, PAD));
        // Row 1's third greedy token becomes the end-of-sequence token.
        let eos = free.responses[1][2];
        let stopped = run(&model, &prompts(), &SamplingConfig::greedy(10, eos, PAD));
        for (i, full) in free.responses.iter().enumerate() {
            let got = &stopped.responses[i];
            match full.iter().position(|&t| t == eos) {
                Some(at) => {
                    assert_eq!(got, &full[..=at], "{label}: row {i}");
                    assert_eq!(stopped.finish_reasons[i], FinishReason::Eos);
                }
                None => {
                    assert_eq!(got, full, "{label}: row {i}");
                    assert_eq!(stopped.finish_reasons[i], FinishReason::Length);
                }
            }
        }
        assert!(stopped.responses[1].len() <= 3, "{label}");
        // Padded view: 1 up to and including EOS, then 0 and pad ids.
        let mask = stopped.response_mask();
        let padded = stopped.padded_responses(PAD);
        for i in 0..stopped.len() {
            let n = stopped.responses[i].len();
            assert_eq!(mask[i].iter().sum::<u32>() as usize, n);
            assert!(padded[i][n..].iter().all(|&t| t == PAD));
            assert_eq!(padded[i].len(), stopped.width());
        }
    }
}

#[test]
fn every_row_stopping_ends_generation_early() {
    let (_, model) = build(&tiny_llama(true, false), 2);
    let p = vec![vec![5u32, 9, 17]];
    let free = run(&model, &p, &SamplingConfig::greedy(6, NO_EOS, PAD));
    let eos = free.responses[0][0];
    let stopped = run(&model, &p, &SamplingConfig::greedy(50, eos, PAD));
    assert_eq!(stopped.responses[0], vec![eos]);
    assert_eq!(stopped.finish_reasons, vec![FinishReason::Eos]);
}

#[test]
fn bad_settings_and_prompts_are_errors() {
    let (_, model) = build(&tiny_llama(true, false), 1);
    let dev = Device::Cpu;
    let ok = SamplingConfig::greedy(4, NO_EOS, PAD);
    let empty: Vec<Vec<u32>> = vec![];
    assert!(generate(&model, &empty, &ok, &dev).is_err());
    assert!(generate(&model, &[vec![1u32], vec![]], &ok, &dev).is_err());
    assert!(
        generate(&model, &[vec![1u32, 64]], &ok, &dev).is_err(),
        "id outside vocab"
    );
    for bad in [
        SamplingConfig::sampling(4, -1.0, 1, PAD, 0),
        SamplingConfig::sampling(4, f64::NAN, 1, PAD, 0),
        ok.clone().with_top_k(0),
        ok.clone().with_top_p(0.0),
        ok.clone().with_top_p(1.5),
    ] {
        assert!(
            generate(&model, &[vec![1u32]], &bad, &dev).is_err(),
            "{bad:?}"
        );
    }
    let zero = generate(
        &model,
        &[vec![1u32]],
        &SamplingConfig::greedy(0, 1, PAD),
        &dev,
    )
    .unwrap();
    assert_eq!(zero.responses, vec![Vec::<u32>::new()]);
}

#[test]
fn pick_token_follows_the_tempered_distribution() {
    let logits = [0.0f32, 1.0, 2.0, f32::NEG_INFINITY];
    let cfg = SamplingConfig::sampling(1, 2.0, NO_EOS, PAD, 0);
    let mut rng = row_rng(3, 0);
    let n = 40_000;
    let mut counts = [0usize; 4];
    for _ in 0..n {
        counts[pick_token(&logits, &cfg, &mut rng).unwrap() as usize] += 1;
    }
    let w: Vec<f64> = [0.0f64, 0.5, 1.0].iter().map(|x| x.exp()).collect();
    let z: f64 = w.iter().sum();
    for i in 0..3 {
        let freq = counts[i] as f64 / n as f64;
        assert!(
            (freq - w[i] / z).abs() < 0.01,
            "token {i}: {freq} vs {}",
            w[i] / z
        );
    }
    assert_eq!(counts[3], 0);
    // Top-k 2 renormalises over the two best tokens.
    let cfg = cfg.with_top_k(2);
    let mut counts = [0usize; 4];
    for _ in 0..n {
        counts[pick_token(&logits, &cfg, &mut rng).unwrap() as usize] += 1;
    }
    assert_eq!(counts[0], 0);
    let expect = w[2] / (w[1] + w[2]);
    assert!((counts[2] as f64 / n as f64 - expect).abs() < 0.01);
    // Top-p: probabilities of [0, 1, 2] at temperature 1 are about [.09, .245, .665];
    // p = 0.8 keeps the two best, p = 0.5 only the best.
    let logits = [0.0f32, 1.0, 2.0];
    let nucleus = SamplingConfig::sampling(1, 1.0, NO_EOS, PAD, 0).with_top_p(0.8);
    let mut counts = [0usize; 3];
    for _ in 0..n {
        counts[pick_token(&logits, &nucleus, &mut rng).unwrap() as usize] += 1;
    }
    assert_eq!(counts[0], 0);
    let expect = 1f64.exp() / (1f64.exp() + 2f64.exp());
    assert!((counts[1] as f64 / n as f64 - expect).abs() < 0.01);
    let best_only = nucleus.with_top_p(0.5);
    assert!((0..100).all(|_| pick_token(&logits, &best_only, &mut rng).unwrap() == 2));
    // NaN logits and empty rows are errors.
    assert!(pick_token(&[0.0, f32::NAN], &cfg, &mut rng).is_err());
    assert!(pick_token(&[], &cfg, &mut rng).is_err());
}
