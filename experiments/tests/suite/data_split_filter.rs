//! Seeded permutations, 80/20 splits, nested prompt mixes, and the token-length filter.

use rmteach_experiments::data::{
    filter_max_tokens, permutation, split_by_fraction, split_count, DataError, PreferencePair,
    PromptMix, PromptRecord, SftExample,
};
use rmteach_experiments::toy::toy_tokenizer;
use std::collections::HashSet;

#[test]
fn permutation_is_a_deterministic_permutation() {
    let p = permutation(1000, 7);
    assert_eq!(p, permutation(1000, 7));
    assert_ne!(p, permutation(1000, 8));
    let mut sorted = p.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_ne!(p, sorted, "shuffled");
    assert!(permutation(0, 1).is_empty());
    assert_eq!(permutation(1, 1), vec![0]);
    // Pinned values: the permutation must not change with dependency updates.
    assert_eq!(permutation(8, 42), PINNED_8_42.to_vec());
}

/// `permutation(8, 42)` as first computed; a change here changes every split.
const PINNED_8_42: [usize; 8] = [5, 3, 2, 6, 7, 4, 0, 1];

#[test]
fn permutation_is_roughly_uniform() {
    // Position of item 0 over many seeds: each of 4 places about 1/4 of the time.
    let mut counts = [0usize; 4];
    for seed in 0..4000 {
        let p = permutation(4, seed);
        counts[p.iter().position(|&x| x == 0).unwrap()] += 1;
    }
    for c in counts {
        assert!((850..1150).contains(&c), "{counts:?}");
    }
}

#[test]
fn split_80_20_is_deterministic_disjoint_and_complete() {
    let items: Vec<usize> = (0..101).collect();
    let (train, test) = split_by_fraction(items.clone(), 0.8, 3).unwrap();
    assert_eq!((train.len(), test.len()), (81, 20));
    assert_eq!(
        split_by_fraction(items.clone(), 0.8, 3).unwrap(),
        (train.clone(), test.clone())
    );
    let (train2, _) = split_by_fraction(items.clone(), 0.8, 4).unwrap();
    assert_ne!(train, train2);
    let all: HashSet<usize> = train.iter().chain(&test).copied().collect();
    assert_eq!(all.len(), 101);
    assert!(train.windows(2).all(|w| w[0] < w[1]), "original order kept");
    assert!(test.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(split_count(10, 0.0).unwrap(), 0);
    assert_eq!(split_count(10, 1.0).unwrap(), 10);
    for bad in [-0.1, 1.5, f64::NAN] {
        assert!(matches!(
            split_count(10, bad),
            Err(DataError::InvalidArgument(_))
        ));
    }
}

#[test]
fn prompt_mixes_are_nested_and_sized() {
    let mix = PromptMix::new(40, 11);
    let mut previous: Option<Vec<bool>> = None;
    for (fraction, expected) in [(0.0, 0), (0.25, 10), (0.5, 20), (0.75, 30), (1.0, 40)] {
        let mask = mix.mask(fraction).unwrap();
        assert_eq!(mask.len(), 40);
        assert_eq!(mask.iter().filter(|&&m| m).count(), expected);
        if let Some(prev) = &previous {
            assert!(prev.iter().zip(&mask).all(|(&a, &b)| !a || b), "nested");
        }
        previous = Some(mask);
    }
    assert_eq!(mix, PromptMix::new(40, 11));
    assert_eq!(mix.order(), permutation(40, 11).as_slice());
}

#[test]
fn length_filter_drops_rows_with_any_long_text() {
    let tok = toy_tokenizer().unwrap();
    let pair = |prompt: &str, chosen: &str, rejected: &str| PreferencePair {
        prompt: prompt.into(),
        chosen: chosen.into(),
        rejected: rejected.into(),
        score_chosen: None,
        score_rejected: None,
    };
    let pairs = vec![
        pair("list two food words", "rice soup", "cat"),
        pair("list two food words", "rice soup bread cake", "cat"),
        pair("list two food words", "rice", "cat dog fox owl bear"),
        pair("write five words about food please", "rice", "cat"),
    ];
    let out = filter_max_tokens(pairs.clone(), &tok, 4).unwrap();
    assert_eq!(out.dropped, 2);
    assert_eq!(out.kept, vec![pairs[0].clone(), pairs[1].clone()]);
    let all = filter_max_tokens(pairs.clone(), &tok, 6).unwrap();
    assert_eq!((all.kept.len(), all.dropped), (4, 0));

    let sft = vec![SftExample {
        prompt: "list two food words".into(),
        response: "rice soup bread cake bean".into(),
    }];
    assert_eq!(filter_max_tokens(sft, &tok, 4).unwrap().dropped, 1);
    let prompts = vec![PromptRecord {
        prompt: "list two food words".into(),
    }];
    assert_eq!(filter_max_tokens(prompts, &tok, 4).unwrap().dropped, 0);
}
