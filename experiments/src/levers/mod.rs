//! Beyond the paper: levers on reward variance, measured in the toy Section 4.1 world
//! (the experiments half of issue 14; the theory half is `rmteach theory levers`).
//!
//! One experiment (`<runs>/levers/`, run by [`run`]) of the toy 4.1 preset, changed
//! only to fit the budget: one reward model trained (`rm-0`, the least-variance RM of
//! the toy's Table 1), one training epoch (the measure is the epoch-1
//! increase), seeds 0-2, 5 evaluation samples per prompt. Every variant is a run of
//! the same world; variants that differ only in `[pg]` share every stage before
//! policy gradient (the experiment machinery, [`crate::pipeline::run_experiment`]).
//! The training reward is the toy's `gt-low-variance` (the ground truth scaled by
//! 0.001 on half the prompts: perfectly accurate, low variance), except for the margin
//! lever, which needs a trained reward model (`rm-0`).
//!
//! ## The levers and what the mechanism predicts (written before any outcome)
//! RLOO's advantage is linear in the reward: with a global scale `c` it is
//! `c A_r - beta A_KL`, where `A_KL` comes from the (unscaled) KL penalty.
//! 1. **Optimizer x global reward scale (1, 0.01, 0.001) x beta (0, 0.05).** AdamW's
//!    update `m / sqrt(v)` is invariant to a global scale of the gradient (up to
//!    `eps` = 1e-8, and the clip at norm 1 rescales each step but Adam divides it out):
//!    with `beta = 0` the ground-truth increase should not depend on `c`; with
//!    `beta = 0.05` the unscaled KL term takes a growing share of the gradient as `c`
//!    shrinks, so the increase should fall with `c`, most at 0.001. SGD's step is
//!    `lr c g` once `c |g|` is below the clip (the toy 4.1 logs show gradient norms of
//!    2-30 at `c = 1`, so at `c = 1` SGD runs clipped, and at 0.01 and 0.001 it does
//!    not): its increase should fall with `c` whatever `beta`. This is the theory's
//!    statement that flow time is SGD time: scaling the reward by `c` runs the flow
//!    for time `c t` (t_gamma grows as 1/c), and only an optimizer that follows the flow
//!    in its own time feels it. SGD's learning rate is fixed by a rule, not tuned:
//!    `lr_sgd = lr_adam sqrt(P)` (P trainable parameters), so that at `c = 1` its
//!    first (clipped, norm-1) step has the norm of AdamW's first step (every
//!    coordinate moves by `lr_adam`).
//! 2. **Samples per prompt k = 2, 4, 8** at a fixed 16 completions per update (8, 4, 2
//!    prompts). The number of completions, hence the gradient information, is the
//!    same; a larger `k` gives a better leave-one-out baseline on fewer prompts. Expect
//!    no clear difference in the increases; the within-prompt standard deviation seen
//!    in training is the same reward's (its mean over groups grows slightly with `k`,
//!    the small-sample bias of a standard deviation).
//! 3. **`rm.margin` on (1) vs off** for `rm-0`: Llama 2's `-log sigmoid(r_c - r_r - m)`
//!    with `m` the pair's ground-truth gap (the toy data's preference strength). The
//!    margin asks for larger reward gaps within pairs, i.e. within prompts, so after
//!    normalisation the within-prompt reward variance should rise; accuracy may
//!    change little (the same pairs, reweighted towards large gaps); a higher variance
//!    should speed the proxy increase, and the ground-truth increase follows only as
//!    far as the accuracy allows.
//! 4. **Prompt selection q = 0.5 vs all prompts** (`pg.select_quantile`): each batch
//!    keeps its prompts with the upper half of within-prompt reward variances. With
//!    `gt-low-variance` half the prompts carry 0.001 of the reward's spread, so the
//!    selection keeps mostly the unscaled prompts: the within-prompt standard
//!    deviation of what is trained on should about double; since AdamW normalises the
//!    step and the scaled prompts contributed almost no reward gradient anyway, the
//!    increases should change little (half the completions per step: more noise).
//!
//! For each lever the report gives the within-prompt reward standard deviation in
//! training, the training reward's variance and accuracy under the initial policy, and
//! the proxy and ground-truth increase at the last epoch, each with a 95% bootstrap
//! interval over seeds, plus one sentence derived from the intervals of the seed-paired
//! differences (variant minus the lever's reference); "no difference detected" and
//! "inconclusive" are results.

mod report;
mod results;

pub use report::{write_report, REPORT_DIR};
pub use results::{Contrast, Estimate, LeverResults, SeedOutcome, VariantOutcome, RESULTS_FILE};

use crate::pipeline::config::{RunConfig, LOW_VARIANCE};
use crate::pipeline::experiment::ExperimentRun;
use crate::pipeline::run::RunOptions;
use crate::pipeline::{run_experiment, ExperimentConfig};
use crate::runtime::DeviceSpec;
use crate::stages::optim::Optimizer;
use crate::toy::ToyWorldPaths;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The built-in toy Section 4.1 preset the experiment starts from.
const TOY_41: &str = include_str!("../../configs/toy-4.1.toml");

/// The experiment's directory name under the runs root.
pub const EXPERIMENT: &str = "levers";
/// Training seeds.
pub const SEEDS: [u64; 3] = [0, 1, 2];
/// Policy-gradient epochs (the increase is read at the last).
pub const EPOCHS: f64 = 1.0;
/// Evaluation samples per prompt (the preset's 100 prompts).
pub const EVAL_SAMPLES: usize = 5;
/// Global reward scales.
pub const SCALES: [f64; 3] = [1.0, 0.01, 0.001];
/// Samples per prompt beside the preset's 2.
pub const KS: [usize; 2] = [4, 8];
/// The prompt-selection quantile.
pub const SELECT_QUANTILE: f64 = 0.5;
/// The margin coefficient (m = the pair's ground-truth gap).
pub const MARGIN: f64 = 1.0;
/// The reward model of the margin lever (the least-variance RM of the toy's Table 1).
pub const MARGIN_RM: &str = "rm-0";
/// Its mix.
const MARGIN_MIX: u32 = 0;

/// Which lever a variant belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lever {
    /// Optimizer x global reward scale x beta.
    OptimizerScale,
    /// Samples per prompt.
    SamplesPerPrompt,
    /// The Bradley-Terry margin.
    Margin,
    /// Prompt selection by reward variance.
    Selection,
}

impl Lever {
    /// Every lever, in report order.
    pub const ALL: [Lever; 4] = [
        Lever::OptimizerScale,
        Lever::SamplesPerPrompt,
        Lever::Margin,
        Lever::Selection,
    ];

    /// The lever's title in the report.
    pub fn title(self) -> &'static str {
        match self {
            Lever::OptimizerScale => "Optimizer x global reward scale x beta",
            Lever::SamplesPerPrompt => "Samples per prompt (k)",
            Lever::Margin => "Bradley-Terry margin (rm.margin)",
            Lever::Selection => "Prompt selection by reward variance (pg.select_quantile)",
        }
    }
}

/// One run of the experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Its lever.
    pub lever: Lever,
    /// The run's directory name.
    pub name: String,
    /// The training reward.
    pub reward: String,
    /// AdamW or SGD.
    pub optimizer: Optimizer,
    /// Global reward scale.
    pub reward_scale: f64,
    /// KL coefficient.
    pub beta: f64,
    /// Samples per prompt.
    pub k: usize,
    /// Margin coefficient of the reward model (0: none).
    pub margin: f64,
    /// Prompt-selection quantile (`None`: every prompt).
    pub select_quantile: Option<f64>,
}

/// The run of the preset's settings on `gt-low-variance` (AdamW, scale 1, beta 0.05,
/// k 2, every prompt): the reference of every lever but the margin.
pub const REFERENCE: &str = "adamw-scale1-beta0.05";

/// The experiment's runs, each once; a lever's rows are [`lever_rows`].
pub fn plan() -> Vec<Variant> {
    let base = Variant {
        lever: Lever::OptimizerScale,
        name: String::new(),
        reward: LOW_VARIANCE.into(),
        optimizer: Optimizer::Adamw,
        reward_scale: 1.0,
        beta: 0.05,
        k: 2,
        margin: 0.0,
        select_quantile: None,
    };
    let mut out = Vec::new();
    for optimizer in [Optimizer::Adamw, Optimizer::Sgd] {
        for beta in [0.05, 0.0] {
            for c in SCALES {
                let opt = match optimizer {
                    Optimizer::Adamw => "adamw",
                    Optimizer::Sgd => "sgd",
                };
                out.push(Variant {
                    name: format!("{opt}-scale{c}-beta{beta}"),
                    optimizer,
                    reward_scale: c,
                    beta,
                    ..base.clone()
                });
            }
        }
    }
    for k in KS {
        out.push(Variant {
            lever: Lever::SamplesPerPrompt,
            name: format!("k{k}"),
            k,
            ..base.clone()
        });
    }
    for margin in [0.0, MARGIN] {
        out.push(Variant {
            lever: Lever::Margin,
            name: format!("{MARGIN_RM}-margin{margin}"),
            reward: MARGIN_RM.into(),
            margin,
            ..base.clone()
        });
    }
    out.push(Variant {
        lever: Lever::Selection,
        name: format!("select-q{SELECT_QUANTILE}"),
        select_quantile: Some(SELECT_QUANTILE),
        ..base.clone()
    });
    out
}

/// The runs of `lever` among `variants`, its reference first: the reference run for
/// samples per prompt (k 2) and selection (every prompt), the margin-0 run for the
/// margin; the optimizer grid's own order otherwise.
pub fn lever_rows(variants: &[Variant], lever: Lever) -> Vec<&Variant> {
    let reference = variants.iter().filter(|v| {
        v.name == REFERENCE && matches!(lever, Lever::SamplesPerPrompt | Lever::Selection)
    });
    reference
        .chain(variants.iter().filter(|v| v.lever == lever))
        .collect()
}

/// The toy 4.1 preset with the experiment's budget changes (see the module docs); not
/// validated (each run's [`variant_config`] is, where it is finished).
pub fn base_config() -> Result<RunConfig> {
    let mut c = RunConfig::from_toml_str(TOY_41, "<built-in toy-4.1.toml>")?.into_inner();
    c.rm.mixes = vec![MARGIN_MIX];
    c.pg.seeds = SEEDS.to_vec();
    c.pg.epochs = EPOCHS;
    c.eval.samples = EVAL_SAMPLES;
    Ok(c)
}

/// How errors name the experiment's configs (built here, not read from a file).
const LABEL: &str = "<levers experiment>";

/// The run config of `v` on `base`; SGD runs take `sgd_lr`.
pub fn variant_config(base: &RunConfig, v: &Variant, sgd_lr: f64) -> RunConfig {
    let mut c = base.clone();
    c.name = v.name.clone();
    c.rm.margin = v.margin;
    c.pg.rewards = Some(vec![v.reward.clone()]);
    c.pg.optimizer = v.optimizer;
    if v.optimizer == Optimizer::Sgd {
        c.pg.lr = sgd_lr;
    }
    c.pg.reward_scale = v.reward_scale;
    c.pg.beta = v.beta;
    c.pg.k = v.k;
    c.pg.select_quantile = v.select_quantile;
    c
}

/// SGD's learning rate by the module docs' rule: `lr_adam * sqrt(P)`, rounded to 3
/// significant digits (a value that survives the run's `config.json` exactly).
pub fn sgd_lr(adam_lr: f64, parameters: usize) -> f64 {
    let lr = adam_lr * (parameters as f64).sqrt();
    format!("{lr:.2e}").parse().unwrap_or(lr)
}

/// Trainable parameters of the safetensors checkpoint `file` (every tensor's size).
fn count_parameters(file: &Path) -> Result<usize> {
    let tensors = candle_core::safetensors::load(file, &candle_core::Device::Cpu).map_err(|e| {
        Error::Weights {
            file: file.display().to_string(),
            message: format!("cannot count the parameters: {e}"),
        }
    })?;
    Ok(tensors.values().map(|t| t.elem_count()).sum())
}

/// Runs (or resumes) the experiment under `<runs_root>/levers/` and writes its report
/// into `<runs_root>/levers/levers-report/`; returns that directory. `device`
/// overrides the preset's (`cpu`).
pub fn run(runs_root: &Path, device: Option<DeviceSpec>, opts: &RunOptions) -> Result<PathBuf> {
    let mut base = base_config()?;
    if let Some(d) = device {
        base.device = d;
    }
    let variants = plan();
    let dir = runs_root.join(EXPERIMENT);
    // The first run's world fixes P, hence SGD's learning rate.
    let first = variant_config(&base, &variants[0], base.pg.lr).validate(LABEL)?;
    let early = RunOptions {
        stop_after: Some("world".into()),
        ..opts.clone()
    };
    crate::pipeline::run::run_with(&first, &dir, &early)?;
    let world = ToyWorldPaths::new(&dir.join(&first.name).join("world"));
    let parameters = count_parameters(&world.llama.join("model.safetensors"))?;
    let lr = sgd_lr(base.pg.lr, parameters);
    let algorithm = base.pg.algorithm.name();
    let exp = ExperimentConfig {
        name: EXPERIMENT.into(),
        runs: variants
            .iter()
            .map(|v| {
                let label = ExperimentRun::label(LABEL, &v.name, algorithm);
                Ok(ExperimentRun {
                    policy: v.name.clone(),
                    algorithm: algorithm.to_string(),
                    config: variant_config(&base, v, lr).validate(&label)?,
                })
            })
            .collect::<Result<_>>()?,
        teachers: Vec::new(),
        contrasts: Vec::new(),
    }
    .validate(LABEL)?;
    let summary = run_experiment(&exp, runs_root, opts)?;
    if !summary.finished {
        return Err(Error::Input(format!(
            "the levers experiment stopped before its last run ({})",
            dir.display()
        )));
    }
    let results = LeverResults::load(&dir, &variants, lr, parameters)?;
    let out = dir.join(REPORT_DIR);
    write_report(&results, &out)?;
    Ok(out)
}
