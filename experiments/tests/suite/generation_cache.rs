//! The key/value-cached forward agrees with the full forward, and left padding does
//! not change the logits of a row's real tokens.

use crate::common;

use candle_core::{Device, Tensor};
use common::{all_tiny, batch, build, max_abs_diff};
use rmteach_experiments::models::CausalLm;

#[test]
fn cached_decoding_matches_the_full_forward() {
    let (ids, mask) = batch();
    for (label, config) in all_tiny() {
        let (_, model) = build(&config, 11);
        let full = model.forward(&ids, Some(&mask)).unwrap();
        // Prompt of 5 tokens, then 3 single-token steps.
        let mut cache = model.new_cache();
        let prompt = ids.narrow(1, 0, 5).unwrap();
        let mut pieces = vec![model
            .forward_cached(&prompt, Some(&mask.narrow(1, 0, 5).unwrap()), &mut cache)
            .unwrap()];
        for t in 5..8 {
            let step = ids.narrow(1, t, 1).unwrap();
            let key_mask = mask.narrow(1, 0, t + 1).unwrap();
            pieces.push(
                model
                    .forward_cached(&step, Some(&key_mask), &mut cache)
                    .unwrap(),
            );
        }
        assert_eq!(cache.len(), 8);
        let cached = Tensor::cat(&pieces, 1).unwrap();
        // Compare real tokens only: pad queries attend to nothing real.
        let m = mask
            .to_dtype(candle_core::DType::F32)
            .unwrap()
            .unsqueeze(2)
            .unwrap();
        let diff = max_abs_diff(
            &full.broadcast_mul(&m).unwrap(),
            &cached.broadcast_mul(&m).unwrap(),
        );
        assert!(diff < 1e-4, "{label}: cached vs full differ by {diff}");
    }
}

#[test]
fn left_padding_leaves_real_token_logits_unchanged() {
    let (ids, mask) = batch();
    for (label, config) in all_tiny() {
        let (_, model) = build(&config, 5);
        let padded = model.forward(&ids, Some(&mask)).unwrap();
        // Row 1 has 3 pads; run its 5 real tokens alone, unpadded.
        let alone = ids.narrow(0, 1, 1).unwrap().narrow(1, 3, 5).unwrap();
        let alone_logits = model.forward(&alone, None).unwrap();
        let padded_row = padded.narrow(0, 1, 1).unwrap().narrow(1, 3, 5).unwrap();
        let diff = max_abs_diff(&alone_logits, &padded_row);
        assert!(diff < 1e-4, "{label}: padded vs unpadded differ by {diff}");
        let all_finite = padded
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
            .iter()
            .all(|x| x.is_finite());
        assert!(all_finite, "{label}: non-finite logits at pad positions");
    }
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let (_, model) = build(&common::tiny_llama(true, false), 1);
    let dev = Device::Cpu;
    let f32_ids = Tensor::zeros((1, 4), candle_core::DType::F32, &dev).unwrap();
    assert!(model.forward(&f32_ids, None).is_err());
    let ids = Tensor::zeros((2, 4), candle_core::DType::U32, &dev).unwrap();
    let wrong_mask = Tensor::ones((2, 3), candle_core::DType::U32, &dev).unwrap();
    let err = model
        .forward(&ids, Some(&wrong_mask))
        .unwrap_err()
        .to_string();
    assert!(err.contains("attention mask"), "{err}");
    let out_of_vocab = Tensor::new(&[[1u32, 64]], &dev).unwrap();
    assert!(model.forward(&out_of_vocab, None).is_err());
}
