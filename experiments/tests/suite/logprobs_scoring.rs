//! Log-probabilities of response tokens: the one-pass batched sum equals step-by-step
//! cached decoding, gradients reach every trainable tensor, and a model's log-ratio
//! against itself is zero.

use crate::common;

use candle_core::{DType, Device, Tensor, D};
use common::{all_tiny, assert_every_var_has_gradient, build, tiny_llama, tiny_neox};
use rmteach_experiments::logprobs::{
    log_ratio, sequence_logprobs, token_log_ratio, token_logprobs, SequenceBatch,
};
use rmteach_experiments::models::CausalLm;
use rmteach_experiments::ops::log_softmax;

const PAD: u32 = 0;

fn prompts() -> Vec<Vec<u32>> {
    vec![vec![5, 9, 17], vec![4, 8, 15, 16, 23, 42], vec![33]]
}

fn responses() -> Vec<Vec<u32>> {
    vec![vec![7, 1, 2, 3], vec![11], vec![60, 61, 62, 63, 1, 9]]
}

fn batch() -> SequenceBatch {
    SequenceBatch::new(&prompts(), &responses(), PAD, &Device::Cpu).unwrap()
}

/// Sum of the response tokens' log-probabilities, one cached step at a time.
fn stepwise<M: CausalLm>(model: &M, prompt: &[u32], response: &[u32]) -> f32 {
    let dev = Device::Cpu;
    let mut cache = model.new_cache();
    let ids = Tensor::new(prompt, &dev).unwrap().unsqueeze(0).unwrap();
    let mut logits = model.forward_cached(&ids, None, &mut cache).unwrap();
    let mut total = 0.0;
    for &tok in response {
        let t = logits.dim(1).unwrap();
        let last = logits.narrow(1, t - 1, 1).unwrap().flatten_all().unwrap();
        let logp = candle_nn::ops::log_softmax(&last, D::Minus1).unwrap();
        total += logp.to_vec1::<f32>().unwrap()[tok as usize];
        let next = Tensor::new(&[[tok]], &dev).unwrap();
        logits = model.forward_cached(&next, None, &mut cache).unwrap();
    }
    total
}

#[test]
fn batch_layout_pads_prompts_left_and_responses_right() {
    let b = batch();
    assert_eq!((b.prompt_width, b.response_width), (6, 6));
    let ids = b.input_ids.to_vec2::<u32>().unwrap();
    assert_eq!(ids[2], vec![0, 0, 0, 0, 0, 33, 60, 61, 62, 63, 1, 9]);
    assert_eq!(ids[1], vec![4, 8, 15, 16, 23, 42, 11, 0, 0, 0, 0, 0]);
    let mask = b.attention_mask.to_vec2::<u32>().unwrap();
    assert_eq!(mask[0], vec![0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    let rmask = b.response_mask.to_vec2::<f32>().unwrap();
    assert_eq!(rmask[1], vec![1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let dev = Device::Cpu;
    assert!(SequenceBatch::new(&prompts(), &responses()[..2], PAD, &dev).is_err());
    assert!(SequenceBatch::new(&[Vec::<u32>::new()], &[vec![1u32]], PAD, &dev).is_err());
}

#[test]
fn summed_logprobs_match_stepwise_cached_decoding() {
    for (label, config) in all_tiny() {
        let (_, model) = build(&config, 17);
        let sums = sequence_logprobs(&model, &batch())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let per_token = token_logprobs(&model, &batch()).unwrap();
        assert_eq!(per_token.dims(), &[3, 6]);
        let tok = per_token.to_vec2::<f32>().unwrap();
        assert_eq!(tok[1][1..], [0.0; 5], "{label}: padding scores 0");
        for (i, (p, r)) in prompts().iter().zip(responses()).enumerate() {
            let want = stepwise(&model, p, &r);
            assert!(
                (sums[i] - want).abs() < 1e-4,
                "{label}: row {i}: batched {} vs stepwise {want}",
                sums[i]
            );
            assert!(sums[i] < 0.0);
        }
    }
}

#[test]
fn gradient_reaches_every_trainable_tensor() {
    for (label, config) in all_tiny() {
        let (varmap, model) = build(&config, 23);
        let loss = sequence_logprobs(&model, &batch())
            .unwrap()
            .sum_all()
            .unwrap()
            .neg()
            .unwrap();
        let grads = loss.backward().unwrap();
        assert_every_var_has_gradient(label, &varmap, &grads, &[]);
    }
}

#[test]
fn log_ratio_against_itself_is_zero_and_reference_gets_no_gradient() {
    for (label, config) in all_tiny() {
        let (_, model) = build(&config, 31);
        let same = log_ratio(&model, &model, &batch())
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        assert!(same.iter().all(|x| x.abs() < 1e-6), "{label}: {same:?}");
    }
    let (policy_vars, policy) = build(&tiny_neox(true), 1);
    let (ref_vars, reference) = build(&tiny_neox(true), 2);
    let per_token = token_log_ratio(&policy, &reference, &batch()).unwrap();
    let summed = log_ratio(&policy, &reference, &batch()).unwrap();
    let diff = (per_token.sum(1).unwrap() - &summed)
        .unwrap()
        .abs()
        .unwrap();
    assert!(diff.max(0).unwrap().to_scalar::<f32>().unwrap() < 1e-5);
    assert!(
        summed
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            > 1e-3
    );
    let grads = summed.sum_all().unwrap().backward().unwrap();
    for var in ref_vars.all_vars() {
        assert!(
            grads.get(var.as_tensor()).is_none(),
            "reference received a gradient"
        );
    }
    assert!(policy_vars
        .all_vars()
        .iter()
        .all(|v| grads.get(v.as_tensor()).is_some()));
}

#[test]
fn log_softmax_matches_candle_and_handles_large_logits() {
    let x = Tensor::new(&[[1.0f32, 2.0, 3.0], [1000.0, 0.0, -1000.0]], &Device::Cpu).unwrap();
    let ours = log_softmax(&x).unwrap();
    let theirs = candle_nn::ops::log_softmax(&x, D::Minus1).unwrap();
    let diff = (ours - theirs)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap();
    assert!(diff.max(0).unwrap().to_scalar::<f32>().unwrap() < 1e-5);
}

#[test]
fn empty_responses_score_zero() {
    let (_, model) = build(&tiny_llama(true, false), 3);
    let empty =
        SequenceBatch::new(&prompts(), &vec![Vec::<u32>::new(); 3], PAD, &Device::Cpu).unwrap();
    let sums = sequence_logprobs(&model, &empty).unwrap();
    assert_eq!(sums.dims(), &[3]);
    assert_eq!(
        sums.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap(),
        vec![0.0; 3]
    );
}

#[test]
fn bf16_models_generate_and_score() {
    use rmteach_experiments::models::{Model, SeededVarMap};
    use rmteach_experiments::sample::{generate, SamplingConfig};
    let dev = Device::Cpu;
    for (label, config) in all_tiny() {
        let varmap = candle_nn::VarMap::new();
        let vb = SeededVarMap::new(varmap, 5).var_builder(DType::BF16, &dev);
        let model = Model::new(&config, vb).unwrap();
        let cfg = SamplingConfig::sampling(6, 1.0, u32::MAX, PAD, 3);
        let gen = generate(&model, &prompts(), &cfg, &dev).unwrap();
        assert_eq!(gen.width(), 6, "{label}");
        let sums = sequence_logprobs(&model, &gen.to_batch(PAD, &dev).unwrap()).unwrap();
        assert_eq!(sums.dtype(), DType::F32);
        let sums = sums.to_vec1::<f32>().unwrap();
        assert!(
            sums.iter().all(|x| x.is_finite() && *x < 0.0),
            "{label}: {sums:?}"
        );
    }
}
