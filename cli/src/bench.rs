//! `rmteach exp bench ...`: the Rust side of the LM benchmarks against PyTorch
//! (`benches/lm/run.py` drives both sides; see the README's performance section).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Subcommand;
use rmteach_experiments::bench::{
    init_bench_dir, run_bench, write_json, BenchSpec, InputSizes, Workload,
};
use rmteach_experiments::runtime::{DTypeSpec, DeviceSpec, Runtime};

/// Benchmark subcommands.
#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Random-initialise (seeded) a causal LM and a reward model from a Hugging Face
    /// `config.json`, save both (f32, Hugging Face layout: `<out>/policy`, `<out>/rm`)
    /// and write the token ids of every workload (`<out>/inputs.json`), so that we and
    /// transformers run on identical weights and inputs.
    Init {
        /// The model's `config.json` (llama or gpt_neox).
        #[arg(long)]
        config: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Rows per batch (even: RLOO draws k = 2 samples of batch/2 prompts).
        #[arg(long, default_value_t = 8)]
        batch: usize,
        /// Prompt length in tokens.
        #[arg(long, default_value_t = 16)]
        prompt_len: usize,
        /// Response length in tokens (SFT/RM targets).
        #[arg(long, default_value_t = 48)]
        response_len: usize,
        /// Seed of the weights and token ids.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Time the workloads on a directory written by `bench init` and write medians and
    /// check values (losses, gradient norms, logits) as JSON.
    Run {
        /// The directory written by `bench init`.
        #[arg(long)]
        dir: PathBuf,
        /// Comma-separated: forward, step, sft, rm, sample, rloo, or all.
        #[arg(long, default_value = "all")]
        workloads: String,
        /// Timed repetitions per workload, after one warm-up.
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Tokens generated per row by `sample` and `rloo`.
        #[arg(long, default_value_t = 64)]
        new_tokens: usize,
        /// AdamW learning rate of the training workloads.
        #[arg(long, default_value_t = 1e-5)]
        lr: f64,
        /// Seed of sampling and mini-batch order.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// cpu, or cuda / cuda:N (needs a build with the `cuda` feature).
        #[arg(long, default_value = "cpu")]
        device: DeviceSpec,
        /// f32 or bf16.
        #[arg(long, default_value = "f32")]
        dtype: DTypeSpec,
        /// Where to write the JSON report (printed to stdout as well).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs a benchmark subcommand; returns the exit code.
pub fn run(cmd: BenchCommand) -> Result<i32> {
    match cmd {
        BenchCommand::Init {
            config,
            out,
            batch,
            prompt_len,
            response_len,
            seed,
        } => {
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("--config {}", config.display()))?;
            let sizes = InputSizes {
                batch,
                prompt_len,
                response_len,
            };
            let summary = init_bench_dir(&text, &out, sizes, seed)
                .with_context(|| format!("bench init from {}", config.display()))?;
            println!("{}", serde_json::to_string(&summary)?);
            Ok(0)
        }
        BenchCommand::Run {
            dir,
            workloads,
            reps,
            new_tokens,
            lr,
            seed,
            device,
            dtype,
            out,
        } => {
            let spec = BenchSpec {
                workloads: Workload::parse_list(&workloads).context("--workloads")?,
                reps,
                new_tokens,
                lr,
                seed,
            };
            let rt = Runtime::open(device, dtype).context("--device")?;
            let report = run_bench(&dir, &spec, &rt.device, &device.to_string(), rt.dtype)
                .with_context(|| format!("bench run on {}", dir.display()))?;
            if let Some(path) = &out {
                write_json(path, &report)?;
            }
            println!("{}", serde_json::to_string_pretty(&report)?);
            let failed: Vec<_> = report
                .workloads
                .iter()
                .filter_map(|(name, w)| w.error.as_ref().map(|e| format!("{name}: {e}")))
                .collect();
            for f in &failed {
                eprintln!("workload failed: {f}");
            }
            Ok(if failed.is_empty() { 0 } else { 1 })
        }
    }
}
