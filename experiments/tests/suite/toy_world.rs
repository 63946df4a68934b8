//! The toy world: vocabulary, tokenizer (saved and reloaded through the Hugging Face
//! path), ground-truth reward, seeded generators, and the on-disk world read back by
//! the real loaders.

use rmteach_experiments::data::{load_alpaca_sft, load_prompts, load_ultrafeedback, read_records};
use rmteach_experiments::text::TextTokenizer;
use rmteach_experiments::toy::{
    toy_tokenizer, toy_vocabulary, write_toy_world, GroundTruth, ResponseStyle, ToyGenerator,
    ToyReward, ToyTask, ToyWorldSpec, EOS_TOKEN, FILLER_WORDS, PAD_TOKEN, TOPICS,
};
use std::collections::HashSet;

#[test]
fn vocabulary_is_distinct_and_covers_the_language() {
    let vocab = toy_vocabulary();
    let set: HashSet<&String> = vocab.iter().collect();
    assert_eq!(set.len(), vocab.len(), "no duplicate words");
    assert_eq!(&vocab[..3], &[PAD_TOKEN, EOS_TOKEN, "<unk>"]);
    let mut g = ToyGenerator::new(5);
    let tok = toy_tokenizer().unwrap();
    let unk = tok.token_to_id("<unk>").unwrap();
    for _ in 0..200 {
        let example = g.sft_example();
        let pair = g.preference_pair(&ToyReward::default());
        for text in [
            &example.prompt,
            &example.response,
            &pair.chosen,
            &pair.rejected,
        ] {
            assert!(!tok.encode(text).unwrap().contains(&unk), "{text}");
        }
    }
}

#[test]
fn toy_tokenizer_round_trips_and_reloads_from_disk() {
    let tok = toy_tokenizer().unwrap();
    let n = toy_vocabulary().len();
    assert_eq!(tok.vocab_size(), n + 2, "plus <|user|> and <|assistant|>");
    assert_eq!(tok.eos_token_id(), Some(1));
    assert_eq!(tok.pad_token_id(), Some(0));
    let text = "write five words about animals";
    assert_eq!(tok.decode(&tok.encode(text).unwrap(), false).unwrap(), text);
    let chat = tok
        .chat_template()
        .unwrap()
        .render_exchange(text, "cat dog fox owl bear")
        .unwrap();
    assert_eq!(
        chat,
        "<|user|>write five words about animals<eos><|assistant|>cat dog fox owl bear<eos>"
    );
    let ids = tok.encode(&chat).unwrap();
    assert_eq!(ids.len(), 1 + 5 + 1 + 1 + 5 + 1);
    assert_eq!(ids[0] as usize, n);
    assert_eq!(ids[7] as usize, n + 1);
    assert_eq!(
        tok.decode(&ids, true).unwrap(),
        "write five words about animals cat dog fox owl bear"
    );

    let dir = tempfile::tempdir().unwrap();
    tok.save(dir.path()).unwrap();
    let mut back = TextTokenizer::from_dir(dir.path()).unwrap();
    assert_eq!(back.ensure_chat_template().unwrap(), 0);
    assert_eq!(back.encode(&chat).unwrap(), ids);
    assert_eq!(back.vocab_size(), tok.vocab_size());
}

#[test]
fn ground_truth_scores_the_task() {
    let r = ToyReward::default();
    let p = "write four words about animals";
    assert_eq!(r.score(p, "cat dog fox owl"), 1.0);
    assert_eq!(r.score(p, ""), -1.0);
    assert_eq!(r.score("hello", "cat"), 0.0, "no task in the prompt");
    let wrong_topic = r.score(p, "red blue green pink");
    let repeated = r.score(p, "cat cat cat cat");
    let too_long = r.score(p, "cat dog fox owl bear wolf deer frog");
    let fillers = r.score(p, "cat and the dog");
    for s in [wrong_topic, repeated, too_long, fillers] {
        assert!((-1.0..1.0).contains(&s), "{s}");
    }
    assert!(wrong_topic < fillers && fillers < repeated && repeated < 1.0);
    assert!(too_long < 1.0 && too_long > wrong_topic);
    assert_eq!(
        ToyTask::parse("give me three weather words"),
        Some(ToyTask { topic: 4, count: 3 })
    );
    assert_eq!(ToyTask::parse("give me weather words"), None);
}

#[test]
fn quality_orders_mean_reward_and_generators_are_seeded() {
    let r = ToyReward::default();
    let mut g = ToyGenerator::new(9);
    let mean = |g: &mut ToyGenerator, q: f64| {
        let total: f64 = (0..300)
            .map(|_| {
                let (task, prompt) = g.prompt();
                let response = g.response(&task, q, ResponseStyle::Policy);
                let s = r.score(&prompt, &response);
                assert!((-1.0..=1.0).contains(&s));
                s
            })
            .sum();
        total / 300.0
    };
    let (low, mid, high) = (mean(&mut g, 0.0), mean(&mut g, 0.5), mean(&mut g, 1.0));
    assert!(low < mid && mid < high, "{low} {mid} {high}");
    assert!(high > 0.9, "{high}");

    let a: Vec<_> = {
        let mut g = ToyGenerator::new(3);
        (0..20).map(|_| g.preference_pair(&r)).collect()
    };
    let b: Vec<_> = {
        let mut g = ToyGenerator::new(3);
        (0..20).map(|_| g.preference_pair(&r)).collect()
    };
    assert_eq!(a, b);
    assert!(a.iter().all(|p| p.score_chosen >= p.score_rejected));
    let off = a
        .iter()
        .flat_map(|p| [&p.chosen, &p.rejected])
        .flat_map(|t| t.split_whitespace())
        .filter(|w| FILLER_WORDS.contains(w))
        .count();
    assert!(off > 0, "off-policy pairs use filler words");
    let mut g = ToyGenerator::new(3);
    for _ in 0..100 {
        let e = g.sft_example();
        assert!(!e
            .response
            .split_whitespace()
            .any(|w| FILLER_WORDS.contains(&w)));
    }
    assert!(TOPICS.iter().all(|(_, words)| words.len() == 8));
}

#[test]
fn world_on_disk_loads_through_the_real_loaders() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ToyWorldSpec {
        seed: 17,
        pretrain: 30,
        sft: 20,
        train_prefs: 25,
        test_prefs: 5,
        prompts: 10,
        ..ToyWorldSpec::default()
    };
    let paths = write_toy_world(dir.path(), &spec).unwrap();
    let tok = TextTokenizer::from_dir(&paths.tokenizer).unwrap();
    for model_dir in [&paths.gpt_neox, &paths.llama] {
        assert!(model_dir.join("config.json").exists());
        let t = TextTokenizer::from_dir(model_dir).unwrap();
        assert_eq!(t.vocab_size(), tok.vocab_size());
    }
    let sft = load_alpaca_sft(&paths.sft).unwrap();
    assert_eq!(sft.len(), 20);
    let train = load_ultrafeedback(&paths.train_prefs).unwrap();
    let test = load_ultrafeedback(&paths.test_prefs).unwrap();
    assert_eq!((train.len(), test.len()), (25, 5));
    assert_eq!(load_prompts(&paths.prompts).unwrap().len(), 10);
    let pretrain: Vec<_> = read_records(&paths.pretrain)
        .unwrap()
        .map(|r| r.unwrap().view().string("text").unwrap().to_string())
        .collect();
    assert_eq!(pretrain.len(), 30);
    let reward = ToyReward::default();
    for p in &train {
        assert!(ToyTask::parse(&p.prompt).is_some());
        assert!((-1.0..=1.0).contains(&reward.score(&p.prompt, &p.chosen)));
    }
    assert!(paths.manifest.exists());

    // Deterministic given the spec; another seed gives other data.
    let again = tempfile::tempdir().unwrap();
    let paths2 = write_toy_world(again.path(), &spec).unwrap();
    for (a, b) in [
        (&paths.sft, &paths2.sft),
        (&paths.train_prefs, &paths2.train_prefs),
    ] {
        assert_eq!(std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    }
    let other = tempfile::tempdir().unwrap();
    let paths3 = write_toy_world(other.path(), &ToyWorldSpec { seed: 18, ..spec }).unwrap();
    assert_ne!(
        std::fs::read(&paths.sft).unwrap(),
        std::fs::read(&paths3.sft).unwrap()
    );
    // Changing one dataset's size leaves the others unchanged.
    let bigger = tempfile::tempdir().unwrap();
    let paths4 = write_toy_world(
        bigger.path(),
        &ToyWorldSpec {
            pretrain: 31,
            ..spec
        },
    )
    .unwrap();
    assert_eq!(
        std::fs::read(&paths.sft).unwrap(),
        std::fs::read(&paths4.sft).unwrap()
    );
}
