//! `rmteach teacher`: which reward model will teach this policy best?

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;

use rmteach_experiments::data::load_pairs;
use rmteach_experiments::stages::evaluate::EvalOptions;
use rmteach_experiments::teacher::{
    load_prompt_texts, run_teacher, RewardSource, TeacherInputs, PROPOSITION3_READING,
    TEACHER_SCORE_DEFINITION,
};

use crate::exp::DeviceArgs;

/// The text after `--help`: what the score is and how to read it.
fn help_text() -> String {
    format!(
        "Definition: {TEACHER_SCORE_DEFINITION}.\n\n{PROPOSITION3_READING}.\n\n\
         Outputs in --out: teacher.json, teacher.md, teacher.csv, teacher.png/.svg and \
         samples.jsonl (every sample with its raw scores; a killed run resumes from it, and \
         adding an --rm later reuses the samples).\n\n\
         Example (toy world): rmteach exp toy-world --out w; then \
         rmteach teacher --policy SFT_DIR --rm a=RM_DIR --gt toy:w --prompts w/data/prompts.jsonl \
         --out t"
    )
}

/// Flags of `rmteach teacher`.
#[derive(Args, Debug)]
#[command(after_help = help_text())]
pub struct TeacherArgs {
    /// A policy (causal LM directory with its tokenizer and chat template); repeat for
    /// several.
    #[arg(long = "policy", required = true)]
    policies: Vec<PathBuf>,
    /// A reward model, NAME=DIR (sequence-classification Llama / GPT-NeoX / Gemma /
    /// Gemma-2, or ArmoRM); repeat for several.
    #[arg(long = "rm", required = true)]
    rms: Vec<String>,
    /// Prompts: JSONL, JSON or parquet with a `prompt` column (generic, UltraFeedback)
    /// or AlpacaFarm's `instruction` (+ `input`).
    #[arg(long)]
    prompts: PathBuf,
    /// Ground truth: a reward-model directory, or toy:WORLD_DIR for the toy world's
    /// programmatic reward. Gives on-policy accuracy.
    #[arg(long)]
    gt: Option<String>,
    /// Preference pairs (`prompt`, `chosen`, `rejected`; UltraFeedback works) for
    /// off-policy accuracy; the first --max-prompts pairs are used.
    #[arg(long)]
    prefs: Option<PathBuf>,
    /// Responses sampled per prompt per policy (at least 2).
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// Use only the first N prompts (and pairs).
    #[arg(long)]
    max_prompts: Option<usize>,
    /// Longest response in tokens.
    #[arg(long, default_value_t = 512)]
    max_new_tokens: usize,
    /// Sampling seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Rows per generation or scoring pass.
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Output directory (samples.jsonl, teacher.json/.md/.csv, the figure).
    #[arg(long)]
    out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Parses `NAME=DIR`.
fn parse_rm(text: &str) -> Result<(String, RewardSource)> {
    match text.split_once('=') {
        Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
            Ok((name.to_string(), RewardSource::parse(dir)))
        }
        _ => bail!("--rm `{text}`: give NAME=DIR, e.g. --rm skywork=models/Skywork-RM"),
    }
}

/// Runs the command.
pub fn teacher(args: &TeacherArgs) -> Result<i32> {
    let (device, dtype) = args.device.resolve()?;
    crate::out_dir::create_out_dir("--out", &args.out)?;
    let rms = args
        .rms
        .iter()
        .map(|r| parse_rm(r))
        .collect::<Result<Vec<_>>>()?;
    let cap = args.max_prompts.unwrap_or(usize::MAX);
    let mut prompts = load_prompt_texts(&args.prompts)
        .with_context(|| format!("--prompts {}", args.prompts.display()))?;
    prompts.truncate(cap);
    let mut prefs = match &args.prefs {
        Some(p) => load_pairs(p).with_context(|| format!("--prefs {}", p.display()))?,
        None => Vec::new(),
    };
    prefs.truncate(cap);
    let inputs = TeacherInputs {
        policies: args.policies.clone(),
        rms,
        gt: args.gt.as_deref().map(RewardSource::parse),
        prompts,
        prefs,
        sampling: EvalOptions {
            samples_per_prompt: args.samples,
            max_new_tokens: args.max_new_tokens,
            batch_size: args.batch_size,
            seed: args.seed,
            ..EvalOptions::default()
        },
        device,
        dtype,
        out: args.out.clone(),
        progress: !args.quiet,
    };
    let report = run_teacher(&inputs)?;
    if !args.quiet {
        for p in &report.policies {
            println!("{}:", p.policy);
            for r in &p.rms {
                println!(
                    "  {}. {:<20} teacher score {}  reward variance {:.4}  zero-variance prompts {:.3}",
                    r.rank,
                    r.name,
                    r.teacher_score
                        .map(|s| format!("{s:.4}"))
                        .unwrap_or_else(|| "-".into()),
                    r.reward_variance,
                    r.zero_variance_prompts
                );
            }
        }
        println!("wrote {}", args.out.join("teacher.md").display());
    }
    Ok(0)
}
