//! `rmteach exp ...`: check a model before trusting an experiment to it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::jobs::JobsArgs;
use candle_core::{DType, Device, Tensor};
use rmteach::report::write_atomic;
use rmteach_experiments::hf::{
    checkpoint_files, load_checkpoint, read_config_json, require_causal_lm, save_random_model,
    SaveOptions,
};
use rmteach_experiments::models::{Architecture, CausalLm};
use rmteach_experiments::pipeline::config::Checked;
use rmteach_experiments::pipeline::dry_run::{
    dry_run_config, dry_run_name, real_size_dry_run_config, real_size_dry_run_name,
};
use rmteach_experiments::pipeline::experiment::ExperimentRun;
use rmteach_experiments::pipeline::units::Parallelism;
use rmteach_experiments::pipeline::{ExperimentConfig, RunConfig};
use rmteach_experiments::reward::{load_reward_checkpoint, save_random_reward_model};
use rmteach_experiments::runtime::{DTypeSpec, DeviceSpec, Runtime};
use rmteach_experiments::sample::{generate, SamplingConfig};
use rmteach_experiments::text::{TextError, TextTokenizer};
use rmteach_experiments::toy::{write_toy_world, ToyWorldSpec};
#[path = "bench.rs"]
mod bench;
#[path = "check_kernels.rs"]
mod check_kernels;

/// Where tensors live and in which precision.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// cpu, or cuda / cuda:N (needs a build with the `cuda` feature).
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// f32 or bf16 (weights are converted on load).
    #[arg(long, default_value = "f32")]
    dtype: DTypeSpec,
}

impl DeviceArgs {
    /// Opens the device.
    pub(crate) fn resolve(&self) -> Result<(Device, DType)> {
        let rt = Runtime::open(self.device, self.dtype).context("--device")?;
        Ok((rt.device, rt.dtype))
    }
}

/// The experiment subcommands.
#[derive(Subcommand, Debug)]
pub enum ExpCommand {
    /// Write the synthetic toy world (tokenizer, tiny GPT-NeoX and Llama with seeded
    /// random weights, a tiny Llama reward model, JSONL datasets) into a directory: a
    /// model made here, to try every other `exp` command on with no downloads.
    ToyWorld {
        /// Output directory.
        #[arg(long, default_value = "runs/toy-world")]
        out: PathBuf,
        /// Seed of the data and of the weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Overwrite a toy world already in --out (else it is refused).
        #[arg(long)]
        force: bool,
    },
    /// Architecture, parameter count, stored dtype, tokenizer and chat template of a
    /// Hugging Face model directory.
    Inspect {
        /// The model directory (config.json, *.safetensors, tokenizer.json).
        #[arg(long)]
        model: PathBuf,
    },
    /// Per-position logits of a text or of token ids, written as JSON.
    Logits {
        /// The model directory.
        #[arg(long)]
        model: PathBuf,
        /// Text to tokenize (no special tokens added).
        #[arg(long, conflicts_with = "ids")]
        text: Option<String>,
        /// Comma-separated token ids, e.g. 1,2,3.
        #[arg(long, value_delimiter = ',')]
        ids: Option<Vec<u32>>,
        /// Write {ids, logits[position][token]} here (else print a summary only).
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Sample responses to a prompt (rendered with the model's chat template unless --raw).
    Generate {
        /// The model directory.
        #[arg(long)]
        model: PathBuf,
        /// The user prompt.
        #[arg(long)]
        prompt: String,
        /// Use the prompt as is, without the chat template.
        #[arg(long)]
        raw: bool,
        /// Number of samples (at least 1).
        #[arg(long, default_value_t = 1, value_parser = at_least_one)]
        n: usize,
        /// Temperature (0 = greedy).
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Keep the k most likely tokens.
        #[arg(long)]
        top_k: Option<usize>,
        /// Nucleus sampling mass.
        #[arg(long)]
        top_p: Option<f64>,
        /// Most new tokens per sample.
        #[arg(long, default_value_t = 64)]
        max_new_tokens: usize,
        /// Seed of the sampler.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Score a (prompt, response) pair with a reward model (`*ForSequenceClassification`
    /// directory), rendered with the reward model's own chat template.
    Score {
        /// The reward-model directory.
        #[arg(long)]
        rm: PathBuf,
        /// The user prompt.
        #[arg(long)]
        prompt: String,
        /// The response to score.
        #[arg(long)]
        response: String,
        #[command(flatten)]
        device: DeviceArgs,
    },
    /// Run (or resume) an experiment from a TOML config (see experiments/configs/).
    /// Section 4.1: SFT, preference data, reward models, normalisation, Table 1
    /// reward-model evaluation, policy gradient per reward and seed, report. A config
    /// with [[policies]] is a Section 4.2 experiment: one such run per policy and
    /// algorithm, and a report across policies.
    ///
    /// Resume: every stage directory gets DONE.json when it finishes, and policy
    /// gradient checkpoints every pg.checkpoint_every updates, so rerunning the same
    /// command after a kill skips the complete stages and continues from the last
    /// checkpoint (the logs keep their records up to it). Rerunning a finished run only
    /// rewrites its report; summary.json keeps the times of the call that ran each stage.
    ///
    /// Config changes: the whole config (and every path it reads) is checked before
    /// anything is written, and <runs>/<name>/config.json records it. A rerun with a
    /// different config in the same directory is refused, listing the fields that
    /// differ: change them back, give the new config another `name`, or delete the run
    /// directory to start over.
    Run {
        /// The run config, e.g. experiments/configs/toy-4.1.toml.
        config: PathBuf,
        /// Directory holding the run directories (the run goes in <runs>/<name>/).
        #[arg(long, visible_alias = "out", default_value = "runs")]
        runs: PathBuf,
        /// Run on this device instead of the config's (cpu, cuda, cuda:N).
        #[arg(long)]
        device: Option<DeviceSpec>,
        /// No progress lines.
        #[arg(long)]
        quiet: bool,
        #[command(flatten)]
        jobs: JobsArgs,
        /// Run a paper config ([world.paper]) end to end with seeded random stand-ins
        /// of its models (real architectures, shrunk sizes, real tokenizer formats and
        /// chat templates) and UltraFeedback / AlpacaFarm-format parquet written by the
        /// run itself, counts shrunk to minutes on a CPU, into <runs>/<name>-dry-run/.
        /// Nothing is read from [world.paper]'s paths; the report says it is a dry run.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: keep the models' published sizes (Pythia-1B, an
        /// ArmoRM-shaped Llama-3-8B ground truth, ...; random weights saved in bf16) and
        /// run in bf16, counts still shrunk, into <runs>/<name>-dry-run-real-sizes/: time
        /// per stage and memory at paper scale (a GPU run: `--device cuda`).
        #[arg(long, requires = "dry_run")]
        real_sizes: bool,
    },
    /// Benchmarks against PyTorch: `bench init` saves seeded random models and inputs,
    /// `bench run` times forward, training steps, sampling and an RLOO update on them.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Compare each fused op's CUDA kernel (on the CPU: its fused CPU kernel) with the
    /// CPU f32 reference and with candle's composite ops, values and gradients, on
    /// seeded random inputs at a 1B model's sizes; writes a markdown + JSON table and
    /// exits 1 on any failure. The kernels stay off in runs until this has passed them.
    CheckKernels(check_kernels::CheckKernelsArgs),
}

/// Runs an experiment subcommand; returns the exit code.
pub fn run(cmd: ExpCommand) -> Result<i32> {
    match cmd {
        ExpCommand::ToyWorld { out, seed, force } => toy_world(&out, seed, force),
        ExpCommand::Inspect { model } => inspect(&model),
        ExpCommand::Logits {
            model,
            text,
            ids,
            out,
            device,
        } => logits(&model, text, ids, out.as_deref(), &device),
        ExpCommand::Generate {
            model,
            prompt,
            raw,
            n,
            temperature,
            top_k,
            top_p,
            max_new_tokens,
            seed,
            device,
        } => {
            let cfg = SamplingOptions {
                n,
                temperature,
                top_k,
                top_p,
                max_new_tokens,
                seed,
            };
            generate_cmd(&model, &prompt, raw, &cfg, &device)
        }
        ExpCommand::Score {
            rm,
            prompt,
            response,
            device,
        } => score(&rm, &prompt, &response, &device),
        ExpCommand::Run {
            config,
            runs,
            device,
            quiet,
            jobs,
            dry_run,
            real_sizes,
        } => {
            let dry_run = match (dry_run, real_sizes) {
                (false, _) => DryRun::Off,
                (true, false) => DryRun::Shrunk,
                (true, true) => DryRun::RealSizes,
            };
            let parallel = jobs.parallelism(1)?;
            let text = std::fs::read_to_string(&config)
                .with_context(|| format!("cannot read {}", config.display()))?;
            let dir = config.parent().unwrap_or(Path::new("."));
            let source = ConfigSource {
                text: &text,
                file: &config.display().to_string(),
                dir,
            };
            run_config(&source, &runs, device, quiet, &parallel, dry_run).map(|_| 0)
        }
        ExpCommand::Bench(cmd) => bench::run(cmd),
        ExpCommand::CheckKernels(args) => check_kernels::run(&args),
    }
}

/// Whether `exp run` runs a paper config's dry run, and at which sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// The config as it is.
    Off,
    /// Stand-ins with shrunk sizes (minutes on a CPU).
    Shrunk,
    /// Stand-ins at the published sizes, in bf16 (a GPU run).
    RealSizes,
}

impl DryRun {
    /// The dry run of `c` (`file` names it in errors), under `c`'s name.
    fn config(
        self,
        c: &rmteach_experiments::pipeline::RunConfig,
        file: &str,
    ) -> Result<rmteach_experiments::pipeline::RunConfig> {
        Ok(match self {
            DryRun::Off => c.clone(),
            DryRun::Shrunk => dry_run_config(c, file)?,
            DryRun::RealSizes => real_size_dry_run_config(c, file)?,
        })
    }

    /// The dry run's name for a run or experiment called `name`.
    fn name(self, name: &str) -> String {
        match self {
            DryRun::Off => name.to_string(),
            DryRun::Shrunk => dry_run_name(name),
            DryRun::RealSizes => real_size_dry_run_name(name),
        }
    }
}

/// A run or experiment config's text and where it came from.
pub struct ConfigSource<'a> {
    /// The TOML text.
    pub text: &'a str,
    /// Its name in errors (the file, or a built-in preset's name).
    pub file: &'a str,
    /// The directory relative paths are relative to.
    pub dir: &'a Path,
}

/// Runs a Section 4.1 config or a Section 4.2 experiment (a config with
/// `[[policies]]`) under `runs` (its dry run as `dry_run` says); prints the stage times
/// and returns the directory holding the report.
pub fn run_config(
    source: &ConfigSource<'_>,
    runs: &Path,
    device: Option<DeviceSpec>,
    quiet: bool,
    parallel: &Parallelism,
    dry_run: DryRun,
) -> Result<PathBuf> {
    use rmteach_experiments::pipeline::{
        is_experiment, parse_toml, run::run_with, run_experiment, RunOptions,
    };
    crate::out_dir::create_out_dir("--runs", runs)?;
    let opts = RunOptions {
        progress: !quiet,
        parallel: parallel.clone(),
        ..RunOptions::default()
    };
    // The one parse of the file, validated once as written; a dry run or a --device
    // override is validated again where it is made (the runner takes only checked
    // configs).
    let table = parse_toml(source.text, source.file)?;
    if is_experiment(&table) {
        let mut exp = ExperimentConfig::from_table(table, source.file, source.dir, runs)?;
        if dry_run != DryRun::Off || device.is_some() {
            exp = edit_experiment(exp.into_inner(), source.file, dry_run, device)?;
        }
        let summary = run_experiment(&exp, runs, &opts)
            .with_context(|| format!("experiment `{}` from {}", exp.name, source.file))?;
        for s in &summary.runs {
            print!("{}", s.table());
        }
        if !summary.finished {
            bail!("experiment `{}` stopped before its last run", exp.name);
        }
        println!("report: {}", summary.dir.join("report").display());
        return Ok(summary.dir.join("report"));
    }
    let mut cfg = RunConfig::from_table(table, source.file, source.dir)?;
    if dry_run != DryRun::Off || device.is_some() {
        let mut edited = edit_run(cfg.into_inner(), source.file, dry_run, device)?;
        edited.name = dry_run.name(&edited.name);
        cfg = edited.validate(source.file)?;
    }
    let summary = run_with(&cfg, runs, &opts)
        .with_context(|| format!("run `{}` from {}", cfg.name, source.file))?;
    print!("{}", summary.table());
    println!("report: {}", summary.dir.join("report").display());
    Ok(summary.dir.join("report"))
}

/// A run's dry run ([`DryRun::config`], name kept), on `device` when given; `file`
/// names the config in errors.
fn edit_run(
    cfg: RunConfig,
    file: &str,
    dry_run: DryRun,
    device: Option<DeviceSpec>,
) -> Result<RunConfig> {
    let mut cfg = dry_run.config(&cfg, file)?;
    if let Some(d) = device {
        cfg.device = d;
    }
    Ok(cfg)
}

/// An experiment's dry run (every run mapped by [`DryRun::config`], the experiment
/// renamed by [`DryRun::name`]), every run on `device` when given; each edited run and
/// the experiment validated again.
fn edit_experiment(
    mut exp: ExperimentConfig,
    file: &str,
    dry_run: DryRun,
    device: Option<DeviceSpec>,
) -> Result<Checked<ExperimentConfig>> {
    exp.name = dry_run.name(&exp.name);
    for r in &mut exp.runs {
        let label = ExperimentRun::label(file, &r.policy, &r.algorithm);
        let edited = edit_run(r.config.as_ref().clone(), file, dry_run, device)?;
        r.config = edited.validate(&label)?;
    }
    Ok(exp.validate(file)?)
}

fn toy_world(out: &Path, seed: u64, force: bool) -> Result<i32> {
    let nonempty = std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some());
    if nonempty && !force {
        bail!(
            "{} is not empty (an earlier toy world?); pass --force to overwrite it, or \
             choose another --out",
            out.display()
        );
    }
    crate::out_dir::create_out_dir("--out", out)?;
    let spec = ToyWorldSpec {
        seed,
        ..Default::default()
    };
    let paths = write_toy_world(out, &spec)
        .with_context(|| format!("writing the toy world into {}", out.display()))?;
    let rm_dir = out.join("models/llama-toy-rm");
    // Seeded random weights for both causal models, saved beside their config.json.
    for dir in [&paths.gpt_neox, &paths.llama] {
        save_random_model(dir, &read_config_json(dir)?, seed, &SaveOptions::default())?;
    }
    // A reward model on the Llama backbone, in the `*ForSequenceClassification` layout.
    let mut json = read_config_json(&paths.llama)?;
    json["architectures"] = serde_json::json!(["LlamaForSequenceClassification"]);
    json["num_labels"] = serde_json::json!(1);
    let options = SaveOptions {
        extra_files: ["tokenizer.json", "tokenizer_config.json"]
            .map(|f| paths.llama.join(f))
            .to_vec(),
        ..Default::default()
    };
    save_random_reward_model(&rm_dir, &json, seed, &options)?;
    println!("toy world in {}:", out.display());
    println!(
        "  models   {} , {} , {} (reward model)",
        paths.gpt_neox.display(),
        paths.llama.display(),
        rm_dir.display()
    );
    println!("  data     {}", paths.root.join("data").display());
    println!("try: rmteach exp inspect --model {}", paths.llama.display());
    Ok(0)
}

/// Parses a count of at least 1 (`--n 0` would silently mean one sample).
fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn tokenizer(dir: &Path) -> Result<TextTokenizer> {
    TextTokenizer::from_dir(dir)
        .with_context(|| format!("{}: loading the tokenizer", dir.display()))
}

fn inspect(dir: &Path) -> Result<i32> {
    let config = Architecture::from_file(&dir.join("config.json"))?;
    let files = checkpoint_files(dir)?;
    let stored = stored_dtypes(&files)?;
    let ckpt = load_checkpoint(dir, DType::F32, &Device::Cpu)?;
    let params: usize = ckpt.varmap.all_vars().iter().map(|v| v.elem_count()).sum();
    println!("model:        {}", dir.display());
    println!("architecture: {config:?}");
    println!("parameters:   {params} ({:.2} M)", params as f64 / 1e6);
    println!(
        "weights:      {} file(s), stored as {}",
        files.len(),
        stored.join(", ")
    );
    if !ckpt.report.unexpected.is_empty() {
        println!("unused:       {}", ckpt.report.unexpected.join(", "));
    }
    match TextTokenizer::from_dir(dir) {
        Ok(t) => {
            println!(
                "tokenizer:    vocab {}, bos {:?}, eos {:?}, pad {:?}, prefix space {}",
                t.vocab_size(),
                t.bos_token_id(),
                t.eos_token_id(),
                t.pad_token_id(),
                t.adds_prefix_space()
            );
            match t.chat_template() {
                Ok(tpl) => println!("template:     {}", tpl.render_exchange("PROMPT", "RESPONSE")?.escape_debug()),
                Err(TextError::NoChatTemplate(_)) => println!("template:     none (the paper's <|user|>/<|assistant|> fallback will be added)"),
                Err(e) => println!("template:     broken ({e})"),
            }
        }
        Err(e) => println!("tokenizer:    unavailable ({e})"),
    }
    Ok(0)
}

/// The dtypes of the tensors stored in the safetensors `files` (from their headers).
fn stored_dtypes(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut seen = std::collections::BTreeSet::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
            .with_context(|| format!("{}: not a safetensors file", f.display()))?;
        for info in meta.tensors().values() {
            seen.insert(format!("{:?}", info.dtype));
        }
    }
    Ok(seen.into_iter().collect())
}

fn logits(
    dir: &Path,
    text: Option<String>,
    ids: Option<Vec<u32>>,
    out: Option<&Path>,
    dev: &DeviceArgs,
) -> Result<i32> {
    let (device, dtype) = dev.resolve()?;
    require_causal_lm(dir)?;
    let vocab = Architecture::from_file(&dir.join("config.json"))?.vocab_size();
    // Errors name the flag the tokens came from.
    let (flag, ids) = match (text, ids) {
        (Some(t), None) => {
            let tok = tokenizer(dir)?;
            tok.check_fits(dir, vocab)?;
            ("--text", tok.encode(&t)?)
        }
        (None, Some(ids)) => ("--ids", ids),
        _ => bail!("give --text or --ids"),
    };
    if ids.is_empty() {
        bail!("{flag}: the input has no tokens");
    }
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= vocab) {
        bail!(
            "{flag}: token {bad} is outside the vocabulary (config.json's vocab_size is {vocab})"
        );
    }
    let ckpt = load_checkpoint(dir, dtype, &device)?;
    let input = Tensor::new(ids.as_slice(), &device)?.unsqueeze(0)?;
    let logits = ckpt
        .model
        .forward(&input, None)?
        .squeeze(0)?
        .to_dtype(DType::F32)?
        .to_vec2::<f32>()?;
    for (pos, (id, row)) in ids.iter().zip(&logits).enumerate() {
        let (arg, max) =
            row.iter().enumerate().fold(
                (0, f32::NEG_INFINITY),
                |a, (i, &v)| if v > a.1 { (i, v) } else { a },
            );
        println!("position {pos}: token {id} -> argmax {arg} (logit {max:.4})");
    }
    if let Some(p) = out {
        let json =
            serde_json::json!({ "model": dir.display().to_string(), "ids": ids, "logits": logits });
        write_atomic(p, serde_json::to_string(&json)?.as_bytes())
            .with_context(|| format!("writing {}", p.display()))?;
        println!(
            "logits ({} x {}) written to {}",
            logits.len(),
            vocab,
            p.display()
        );
    }
    Ok(0)
}

/// Sampling flags of `exp generate`.
struct SamplingOptions {
    n: usize,
    temperature: f64,
    top_k: Option<usize>,
    top_p: Option<f64>,
    max_new_tokens: usize,
    seed: u64,
}

fn generate_cmd(
    dir: &Path,
    prompt: &str,
    raw: bool,
    o: &SamplingOptions,
    dev: &DeviceArgs,
) -> Result<i32> {
    let (device, dtype) = dev.resolve()?;
    require_causal_lm(dir)?;
    let tok = tokenizer(dir)?;
    tok.check_fits(
        dir,
        Architecture::from_file(&dir.join("config.json"))?.vocab_size(),
    )?;
    let text = if raw {
        prompt.to_string()
    } else {
        match tok.chat_template() {
            Err(TextError::NoChatTemplate(_)) => bail!(
                "{}: no chat template (pass --raw to use the prompt as is)",
                dir.display()
            ),
            t => t?.render_prompt(prompt)?,
        }
    };
    let ids = tok.encode(&text)?;
    let eos = tok.require_eos_token_id()?;
    let pad = tok.pad_token_id().unwrap_or(eos);
    let mut cfg = SamplingConfig::sampling(o.max_new_tokens, o.temperature, eos, pad, o.seed);
    if let Some(k) = o.top_k {
        cfg = cfg.with_top_k(k);
    }
    if let Some(p) = o.top_p {
        cfg = cfg.with_top_p(p);
    }
    let ckpt = load_checkpoint(dir, dtype, &device)?;
    let prompts = vec![ids; o.n];
    let out = generate(&ckpt.model, &prompts, &cfg, &device)?;
    for (i, (resp, why)) in out.responses.iter().zip(&out.finish_reasons).enumerate() {
        println!("--- sample {i} ({} tokens, {why:?})", resp.len());
        println!("{}", tok.decode(resp, true)?);
    }
    Ok(0)
}

fn score(dir: &Path, prompt: &str, response: &str, dev: &DeviceArgs) -> Result<i32> {
    let (device, dtype) = dev.resolve()?;
    let tok = tokenizer(dir)?;
    let text = match tok.chat_template() {
        Err(TextError::NoChatTemplate(_)) => {
            bail!("{}: the reward model has no chat template", dir.display())
        }
        t => t?.render_exchange(prompt, response)?,
    };
    let ids = tok.encode(&text)?;
    let rm = load_reward_checkpoint(dir, dtype, &device)?;
    let input = Tensor::new(ids.as_slice(), &device)?.unsqueeze(0)?;
    let s = rm.model.score(&input, None)?;
    println!("{}", s[0]);
    Ok(0)
}
