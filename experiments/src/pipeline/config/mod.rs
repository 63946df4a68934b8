//! The TOML run config of `rmteach exp run CONFIG.toml`.
//!
//! Every table and field is optional except `name` and `[world]`; an absent field takes
//! the paper's Section 4.1 default (the protocol restated in the project notes, EXPERIMENTS.md). Unknown fields
//! are errors, and every invalid value is reported as an [`Error::Config`] naming the
//! file, the dotted field (`pg.k`) and the fix.

use crate::runtime::{DTypeSpec, DeviceSpec, Runtime};
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

mod checked;
mod tables;
mod validate;

pub use crate::stages::pg::{PgAlgorithm, PgConfig};
pub use crate::stages::rm_eval::{LowVarianceOrder, GROUND_TRUTH, LOW_VARIANCE};
pub use checked::{Check, Checked};
pub use tables::{
    DataConfig, ExternalRm, LowVarianceConfig, PaperWorldConfig, PrefDataConfig, RmConfig,
    SampleConfig, SftConfig, SftSource, ToyArch, ToyWorldConfig, WorldConfig,
};
pub(crate) use validate::check_dir_name;
use validate::{toml_field, unknown_field};

/// Parses TOML text into its table: the one parse of a config file. A syntax error
/// names `file` and, where it can, the field.
pub fn parse_toml(text: &str, file: &str) -> Result<toml::Table> {
    toml::from_str(text).map_err(|e| {
        let field = toml_field(text, &e).unwrap_or_else(|| "(document)".into());
        Error::config(file, &field, e.to_string().trim_end())
    })
}

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The run's directory name under the runs root (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Seed of the data split, the mixes' permutation and the evaluation prompts.
    #[serde(default)]
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N` (a build with the `cuda` feature).
    #[serde(default)]
    pub device: DeviceSpec,
    /// Precision of the models: `f32` (the paper's) or `bf16` (bf16 weights; f32 optimiser
    /// masters, moments, losses and softmax).
    #[serde(default)]
    pub dtype: DTypeSpec,
    /// Where the models and data come from.
    pub world: WorldConfig,
    /// The train-preference split.
    #[serde(default)]
    pub data: DataConfig,
    /// Supervised fine-tuning.
    #[serde(default)]
    pub sft: SftConfig,
    /// On-policy preference pairs.
    #[serde(default)]
    pub prefdata: PrefDataConfig,
    /// Reward-model training.
    #[serde(default)]
    pub rm: RmConfig,
    /// The normalisation (and Table 1) sample.
    #[serde(default)]
    pub normalize: SampleConfig,
    /// The perfectly accurate, low-variance reward.
    #[serde(default)]
    pub low_variance: LowVarianceConfig,
    /// Policy gradient.
    #[serde(default)]
    pub pg: PgConfig,
    /// Per-epoch evaluation.
    #[serde(default)]
    pub eval: SampleConfig,
    /// A dry run: the `world/` stage writes these stand-ins and the run reads them
    /// instead of `[world.paper]`'s files (made by `exp run --dry-run`; see
    /// [`crate::pipeline::dry_run`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dry_run: Option<crate::pipeline::dry_run::DryRunSpec>,
}

impl RunConfig {
    /// Reads and validates a config file (its relative paths made relative to its
    /// directory).
    pub fn from_file(path: &Path) -> Result<Checked<Self>> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let file = path.display().to_string();
        let dir = path.parent().unwrap_or(Path::new(""));
        Self::from_table(parse_toml(&text, &file)?, &file, dir)
    }

    /// Makes the relative paths of a paper world and of `[[rm.external]]` `dir`s
    /// relative to `dir` (the config file's directory).
    pub fn resolve_relative(&mut self, dir: &Path) {
        let externals = self.rm.external.iter_mut().filter_map(|e| e.dir.as_mut());
        let paper = self.world.paper.as_mut().into_iter().flat_map(|p| {
            [
                &mut p.model,
                &mut p.sft_data,
                &mut p.train_prefs,
                &mut p.ground_truth,
            ]
        });
        for f in externals.chain(paper) {
            if f.is_relative() {
                *f = dir.join(&*f);
            }
        }
    }

    /// Parses and validates TOML text (relative paths kept as they are); `file` names
    /// it in errors.
    pub fn from_toml_str(text: &str, file: &str) -> Result<Checked<Self>> {
        Self::parse_table(parse_toml(text, file)?, file)?.validate(file)
    }

    /// The config of a parsed TOML table ([`parse_toml`]) with its relative paths made
    /// relative to `dir` (the file's directory), validated: the runner takes it as it
    /// is ([`Checked`]). `file` names it in errors, which name the dotted field.
    pub fn from_table(table: toml::Table, file: &str, dir: &Path) -> Result<Checked<Self>> {
        let mut config = Self::parse_table(table, file)?;
        config.resolve_relative(dir);
        config.validate(file)
    }

    /// The config of a parsed TOML table, not yet validated: for readers that finish
    /// it (relative paths) before they validate it once.
    pub(crate) fn parse_table(table: toml::Table, file: &str) -> Result<Self> {
        serde_path_to_error::deserialize(table).map_err(|e| {
            let message = e.inner().message().trim_end().to_string();
            let path = e.path().to_string();
            let field = match unknown_field(&message) {
                Some(k) if path == "." => k,
                Some(k) if !path.ends_with(&k) => format!("{path}.{k}"),
                _ if path == "." => "(document)".into(),
                _ => path,
            };
            Error::config(file, &field, message)
        })
    }

    /// Opens the config's device for models in its dtype.
    pub fn runtime(&self) -> Result<Runtime> {
        Runtime::open(self.device, self.dtype)
    }

    /// Name of the reward model trained on mix `p` (`rm-100`, ..., `rm-0`).
    pub fn rm_name(p: u32) -> String {
        format!("rm-{p}")
    }

    /// Every training reward, in Table 1's column order: the RMs (trained, then
    /// external), the low-variance
    /// reward (when enabled), the ground truth.
    pub fn reward_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.rm.mixes.iter().map(|&p| Self::rm_name(p)).collect();
        names.extend(self.rm.external.iter().map(|e| e.name.clone()));
        if self.low_variance.enabled {
            names.push(LOW_VARIANCE.into());
        }
        names.push(GROUND_TRUTH.into());
        names
    }

    /// The rewards policy gradient trains on.
    pub fn pg_rewards(&self) -> Vec<String> {
        self.pg
            .rewards
            .clone()
            .unwrap_or_else(|| self.reward_names())
    }
}
