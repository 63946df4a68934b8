//! `rmteach`: what makes a reward model a good teacher for RLHF?
//!
//! One program with subcommands: `rmteach theory ...` checks the paper's theory by
//! integrating gradient flows (see `rmteach theory --help`); `rmteach exp ...` works
//! with language models (see `rmteach exp --help`).

mod errors;
#[cfg(feature = "lm")]
mod evidence;
mod exp;
#[cfg(feature = "lm")]
mod jobs;
mod out_dir;
mod process;
#[cfg(feature = "lm")]
mod reproduce;
#[cfg(feature = "lm")]
mod teacher;
mod theory;

use clap::{Parser, Subcommand};

/// What makes a reward model a good teacher for RLHF? Tools to check the theory
/// (Razin et al., NeurIPS 2025) and to run its experiments on language models.
#[derive(Parser, Debug)]
#[command(name = "rmteach", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Gradient flow on tabular and small autoregressive policies: verify the paper's
    /// theorems numerically, draw its figures, or integrate your own instance.
    #[command(subcommand)]
    Theory(theory::TheoryCommand),
    /// Language models: write the toy world (toy-world), inspect a checkpoint, print
    /// logits, sample (generate), score with a reward model, run the Section 4.1 / 4.2
    /// experiments from a config (run), benchmark against PyTorch (bench).
    #[cfg(feature = "lm")]
    #[command(subcommand)]
    Exp(exp::ExpCommand),
    /// The main job: verify the theory, run the toy Section 4.1 and 4.2 experiments
    /// (built-in presets, no downloads, minutes on a laptop CPU) and write one report,
    /// <out>/report.md, linking every table and figure.
    #[cfg(feature = "lm")]
    Reproduce(reproduce::ReproduceArgs),
    /// Which reward model will teach this policy best? Samples from each policy once,
    /// scores the samples with every RM (and the ground truth), and ranks the RMs by
    /// the teacher score: accuracy and reward variance under the policy.
    #[cfg(feature = "lm")]
    Teacher(teacher::TeacherArgs),
}

fn main() {
    process::configure();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Theory(cmd) => theory::run(cmd),
        #[cfg(feature = "lm")]
        Command::Exp(cmd) => exp::run(cmd),
        #[cfg(feature = "lm")]
        Command::Reproduce(args) => reproduce::reproduce(&args),
        #[cfg(feature = "lm")]
        Command::Teacher(args) => teacher::teacher(&args),
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", errors::error_chain(&e));
            std::process::exit(2);
        }
    }
}
