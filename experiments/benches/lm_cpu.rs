//! CPU throughput of ~5M-parameter Llama and GPT-NeoX models: full-sequence forward,
//! forward + backward + AdamW step on the response log-likelihood, and cached sampling.
//! Prints medians over repetitions and the thread count candle uses. Not a test:
//!
//! ```text
//! RAYON_NUM_THREADS=1 cargo bench --bench lm_cpu
//! BENCH_REPS=9 RAYON_NUM_THREADS=2 cargo bench --bench lm_cpu
//! ```

use candle_core::{DType, Device};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rmteach_experiments::logprobs::{sequence_logprobs, SequenceBatch};
use rmteach_experiments::models::{Architecture, CausalLm, Model, SeededVarMap};
use rmteach_experiments::sample::{generate, SamplingConfig};
use std::time::Instant;

const VOCAB: usize = 4096;
const BATCH: usize = 8;
const PROMPT: usize = 16;
const RESPONSE: usize = 48;
const NEW_TOKENS: usize = 64;

fn llama() -> String {
    format!(
        r#"{{"model_type": "llama", "vocab_size": {VOCAB}, "hidden_size": 256,
        "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 8,
        "num_key_value_heads": 8, "max_position_embeddings": 512, "rms_norm_eps": 1e-5,
        "tie_word_embeddings": false, "rope_theta": 10000.0}}"#
    )
}

fn neox() -> String {
    format!(
        r#"{{"model_type": "gpt_neox", "vocab_size": {VOCAB}, "hidden_size": 256,
        "num_hidden_layers": 4, "num_attention_heads": 8, "intermediate_size": 1024,
        "hidden_act": "gelu", "rotary_pct": 0.25, "rotary_emb_base": 10000,
        "max_position_embeddings": 512, "layer_norm_eps": 1e-5,
        "use_parallel_residual": true, "tie_word_embeddings": false}}"#
    )
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Median seconds of `f` over `reps` runs after one warm-up run.
fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    median(
        (0..reps)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .collect(),
    )
}

fn tokens(rng: &mut ChaCha8Rng, n: usize) -> Vec<u32> {
    (0..n).map(|_| rng.random_range(1..VOCAB as u32)).collect()
}

fn main() -> rmteach_experiments::Result<()> {
    let reps: usize = std::env::var("BENCH_REPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let dev = Device::Cpu;
    println!(
        "threads: candle {} (RAYON_NUM_THREADS={}), reps {reps}, batch {BATCH}, \
         train seq {PROMPT}+{RESPONSE}, sample {PROMPT}+{NEW_TOKENS}",
        candle_core::utils::get_num_threads(),
        std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| "unset".into()),
    );
    println!(
        "{:<9} {:>7} {:>11} {:>15} {:>11} {:>10}",
        "model", "params", "forward s", "fwd+bwd+adam s", "sample s", "sample tok/s"
    );
    for (name, json) in [("llama", llama()), ("gpt-neox", neox())] {
        let config = Architecture::from_json_str(&json, name)?;
        let varmap = VarMap::new();
        let vb = SeededVarMap::new(varmap.clone(), 0).var_builder(DType::F32, &dev);
        let model = Model::new(&config, vb)?;
        let params: usize = varmap.all_vars().iter().map(|v| v.elem_count()).sum();

        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let prompts: Vec<Vec<u32>> = (0..BATCH).map(|_| tokens(&mut rng, PROMPT)).collect();
        let responses: Vec<Vec<u32>> = (0..BATCH).map(|_| tokens(&mut rng, RESPONSE)).collect();
        let batch = SequenceBatch::new(&prompts, &responses, 0, &dev)?;

        let forward = time(reps, || {
            model
                .forward(&batch.input_ids, Some(&batch.attention_mask))
                .expect("forward");
        });
        let mut opt = AdamW::new(varmap.all_vars(), ParamsAdamW::default())?;
        let train = time(reps, || {
            let loss = sequence_logprobs(&model, &batch)
                .and_then(|l| Ok(l.mean_all()?.neg()?))
                .expect("loss");
            opt.backward_step(&loss).expect("step");
        });
        let cfg = SamplingConfig::sampling(NEW_TOKENS, 1.0, u32::MAX, 0, 7);
        let sample = time(reps, || {
            let g = generate(&model, &prompts, &cfg, &dev).expect("generate");
            assert_eq!(g.width(), NEW_TOKENS);
        });
        println!(
            "{name:<9} {:>6.2}M {forward:>11.3} {train:>15.3} {sample:>11.3} {:>10.0}",
            params as f64 / 1e6,
            (BATCH * NEW_TOKENS) as f64 / sample
        );
    }
    Ok(())
}
