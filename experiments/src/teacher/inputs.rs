//! What `rmteach teacher` is given: policies, reward sources, prompts, preference
//! pairs, sampling settings, and where to write.

use super::cache::{prompts_digest, SampleSettings};
use super::GROUND_TRUTH;
use crate::data::{alpaca_user_content, read_records, PreferencePair};
use crate::stages::evaluate::EvalOptions;
use crate::stages::rewards::{load_reward_dir, GroundTruthReward, RewardFn};
use crate::toy::{ToyReward, ToyWorldPaths};
use crate::{Error, Result};
use candle_core::{DType, Device};
use std::path::{Path, PathBuf};

const PROMPTS_FORMAT: &str = "prompt files need a string column `prompt` (generic, \
UltraFeedback) or `instruction` with an optional `input` (AlpacaFarm)";

/// Where a reward comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RewardSource {
    /// A reward-model directory (any scorer [`load_reward_dir`] loads).
    Dir(PathBuf),
    /// The toy world's programmatic ground truth (the world's directory, checked to
    /// hold `world.json`).
    Toy(PathBuf),
}

impl RewardSource {
    /// Parses `toy:WORLD_DIR` or a directory.
    pub fn parse(text: &str) -> Self {
        match text.strip_prefix("toy:") {
            Some(dir) => Self::Toy(PathBuf::from(dir)),
            None => Self::Dir(PathBuf::from(text)),
        }
    }

    /// Loads the reward (`batch_size` rows per forward pass).
    pub fn load(
        &self,
        dtype: DType,
        device: &Device,
        batch_size: usize,
    ) -> Result<Box<dyn RewardFn>> {
        match self {
            Self::Dir(dir) => load_reward_dir(dir, dtype, device, batch_size),
            Self::Toy(dir) => {
                check_toy_world(dir)?;
                Ok(Box::new(GroundTruthReward(ToyReward::default())))
            }
        }
    }

    /// Checks, before anything is sampled, that the source is there: a directory
    /// holding `config.json`, or a toy world holding `world.json`. `flag` (`--rm a`,
    /// `--gt`) names it in the error.
    pub fn check_exists(&self, flag: &str) -> Result<()> {
        match self {
            Self::Dir(dir) if !dir.join("config.json").is_file() => Err(Error::Input(format!(
                "{flag} {}: no config.json there; give a reward-model directory \
                 (config.json, *.safetensors, tokenizer.json){}",
                dir.display(),
                if flag == "--gt" {
                    ", or toy:WORLD_DIR"
                } else {
                    ""
                }
            ))),
            Self::Dir(_) => Ok(()),
            Self::Toy(dir) => check_toy_world(dir),
        }
    }
}

/// Checks that `dir` holds a toy world's `world.json`.
fn check_toy_world(dir: &Path) -> Result<()> {
    let manifest = ToyWorldPaths::new(dir).manifest;
    if manifest.is_file() {
        return Ok(());
    }
    Err(Error::Input(format!(
        "--gt toy:{}: no {} there; give the directory `rmteach exp toy-world` \
         (or a toy run's `world/`) wrote",
        dir.display(),
        manifest.display()
    )))
}

/// Everything [`run_teacher`](super::run_teacher) needs.
pub struct TeacherInputs {
    /// Policy directories, each named by its path as given.
    pub policies: Vec<PathBuf>,
    /// Reward models by name (unique, not `gt`).
    pub rms: Vec<(String, RewardSource)>,
    /// The ground truth, if any (scored as `gt`).
    pub gt: Option<RewardSource>,
    /// The prompts, in file order.
    pub prompts: Vec<String>,
    /// Preference pairs for off-policy accuracy (`chosen` is the preferred response).
    pub prefs: Vec<PreferencePair>,
    /// Samples per prompt, length, seed, batch size (temperature 1, top-k 50 as in the
    /// pipeline's normalisation stage unless changed).
    pub sampling: EvalOptions,
    /// Where tensors live.
    pub device: Device,
    /// Precision of the weights.
    pub dtype: DType,
    /// The output directory.
    pub out: PathBuf,
    /// Draw a progress bar with ETA on stderr.
    pub progress: bool,
}

impl TeacherInputs {
    /// The name of `policy` in the sample cache and the report: its path relative to
    /// the output directory's parent when it lies there (a run's `sft` beside its
    /// `teacher`), so a moved or copied directory keeps its samples and its figure
    /// titles; else the path as given.
    pub fn policy_name(&self, policy: &Path) -> String {
        let base = self.out.parent().unwrap_or(Path::new(""));
        match policy.strip_prefix(base) {
            Ok(inside) if !base.as_os_str().is_empty() && !inside.as_os_str().is_empty() => {
                inside.display().to_string()
            }
            _ => policy.display().to_string(),
        }
    }

    /// What the samples depend on (`settings.json`).
    pub fn settings(&self) -> SampleSettings {
        let o = &self.sampling;
        SampleSettings {
            samples_per_prompt: o.samples_per_prompt,
            max_new_tokens: o.max_new_tokens,
            seed: o.seed,
            temperature: o.temperature,
            top_k: o.top_k,
            batch_size: o.batch_size,
            prompts: self.prompts.len(),
            prompts_digest: prompts_digest(&self.prompts),
        }
    }

    /// Checks names and counts before any model is loaded.
    pub fn validate(&self) -> Result<()> {
        if self.policies.is_empty() {
            return Err(Error::Input("give at least one --policy DIR".into()));
        }
        if self.rms.is_empty() {
            return Err(Error::Input("give at least one --rm NAME=DIR".into()));
        }
        let mut names = std::collections::BTreeSet::new();
        for (name, _) in &self.rms {
            if name.is_empty() || name == GROUND_TRUTH || !names.insert(name.as_str()) {
                return Err(Error::Input(format!(
                    "--rm `{name}`: RM names must be non-empty, unique and not `{GROUND_TRUTH}` \
                     (the ground truth's name)"
                )));
            }
        }
        if self.prompts.is_empty() {
            return Err(Error::Input("--prompts: the file holds no prompts".into()));
        }
        if self.sampling.samples_per_prompt < 2 {
            return Err(Error::Input(
                "--samples: reward variance needs at least 2 samples per prompt".into(),
            ));
        }
        if self.sampling.batch_size == 0 {
            return Err(Error::Input(
                "--batch-size: must be at least 1 (rows per generation or scoring pass)".into(),
            ));
        }
        if self.sampling.max_new_tokens == 0 {
            return Err(Error::Input(
                "--max-new-tokens: must be at least 1 (with 0 every response is empty, so \
                 every RM induces zero variance)"
                    .into(),
            ));
        }
        // Every directory is checked before the first sample is drawn, so a typo in
        // the last --rm does not cost the whole sampling pass.
        for policy in &self.policies {
            crate::hf::require_causal_lm(policy)
                .map_err(|e| Error::Input(format!("--policy {}: {e}", policy.display())))?;
        }
        for (name, src) in &self.rms {
            src.check_exists(&format!("--rm {name}"))?;
        }
        if let Some(gt) = &self.gt {
            gt.check_exists("--gt")?;
        }
        Ok(())
    }
}

/// Reads the prompts of `path` (JSONL, JSON or parquet): the `prompt` column when
/// present (generic files, UltraFeedback), else AlpacaFarm's `instruction` (+ `input`).
pub fn load_prompt_texts(path: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for record in read_records(path)? {
        let record = record?;
        let view = record.view().with_format(PROMPTS_FORMAT);
        let prompt = match view.opt_string("prompt")? {
            Some(p) => p.to_string(),
            None => match view.opt_string("instruction")? {
                Some(i) => alpaca_user_content(i, view.opt_string("input")?.unwrap_or("")),
                None => {
                    return Err(view
                        .error("prompt", "missing (and no `instruction`)", "")
                        .into())
                }
            },
        };
        out.push(prompt);
    }
    Ok(out)
}
