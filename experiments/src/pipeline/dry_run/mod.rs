//! `rmteach exp run CONFIG --dry-run`: a paper-scale config run end to end on this
//! machine with seeded random stand-ins that keep the real architectures and formats.
//!
//! [`dry_run_config`] maps a paper config (`[world.paper]`) to its dry-run counterpart:
//! the same stages, rewards, mixes and token lengths (`data.max_tokens`,
//! `max_new_tokens`), counts shrunk (examples, prompts, samples, batches, seeds, epochs)
//! and a [`DryRunSpec`] naming the stand-in of every model. The run's `world/` stage
//! then writes the stand-ins ([`DryRunSpec::write`]): each model's published config
//! shrunk with random weights and its family's tokenizer and chat template
//! ([`StandIn`]), and UltraFeedback / AlpacaFarm parquet files of toy-world text (a
//! share of the pairs longer than `data.max_tokens`, for the filter to drop). Every
//! later stage loads them through the real loaders. Nothing is downloaded; the
//! numbers of a dry run say nothing about the paper, and its report says so.

mod models;
mod parquet;
mod tokenizer;

pub use models::StandIn;
pub use tokenizer::Family;

use super::config::{DataConfig, RunConfig};
use crate::data::{PreferencePair, SftExample};
use crate::records::DRY_RUN_FILE;
use crate::rundir::write_json;
use crate::runtime::{DTypeSpec, DeviceSpec};
use crate::toy::{SftStyle, ToyGenerator, ToyReward};
use crate::{Error, Result};
use candle_core::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What a dry run's `world/` stage writes (the `[dry_run]` table of a run config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DryRunSpec {
    /// The stand-in of `world.paper.model`.
    pub policy: StandIn,
    /// The stand-in of `world.paper.ground_truth`.
    pub ground_truth: StandIn,
    /// The stand-in of each `[[rm.external]]` reward model with a `dir`, by name.
    #[serde(default)]
    pub external: BTreeMap<String, StandIn>,
    /// AlpacaFarm-format SFT examples.
    pub sft_examples: usize,
    /// UltraFeedback-format preference pairs.
    pub train_prefs: usize,
    /// Every `long_every`-th pair's chosen response is longer than `data.max_tokens`
    /// tokens (0: none).
    pub long_every: usize,
    /// Whether the stand-ins keep the published model sizes (see
    /// [`real_size_dry_run_config`]); absent (false) in shrunk dry runs' records.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub real_sizes: bool,
}

/// Where a dry run's stand-ins are, under its `world/` stage directory.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRunPaths {
    /// The initial policy.
    pub policy: PathBuf,
    /// The AlpacaFarm-format SFT parquet.
    pub sft_data: PathBuf,
    /// The UltraFeedback-format preference parquet.
    pub train_prefs: PathBuf,
    /// The ground-truth reward model.
    pub ground_truth: PathBuf,
    /// The external reward models by name.
    pub external: BTreeMap<String, PathBuf>,
}

/// Seed streams of the stand-ins.
const POLICY_STREAM: u64 = 1;
const GROUND_TRUTH_STREAM: u64 = 2;
const EXTERNAL_STREAM: u64 = 3;
const SFT_STREAM: u64 = 4;
const PREFS_STREAM: u64 = 5;

/// The dry-run counterpart of a run name.
pub fn dry_run_name(name: &str) -> String {
    format!("{name}-dry-run")
}

/// Maps a paper config to its dry run: stand-ins for every model and dataset, counts
/// shrunk so that a paper config finishes in minutes on two CPU cores, everything else
/// (stages, rewards, mixes, token lengths, algorithms, learning rates) as configured.
/// The name is kept (see [`dry_run_name`]); device and dtype become `cpu` and `f32`.
/// `file` names the config in errors.
pub fn dry_run_config(c: &RunConfig, file: &str) -> Result<RunConfig> {
    let paper = c.world.paper.as_ref().ok_or_else(|| {
        Error::config(
            file,
            "world",
            "--dry-run stands in for a [world.paper] config's models and data; a toy world \
             already runs here without it",
        )
    })?;
    let policy = StandIn::for_policy(&paper.model).ok_or_else(|| {
        Error::config(
            file,
            "world.paper.model",
            format!(
                "{}: no dry-run stand-in for this model (known: pythia*, *llama*, \
                 *llama*instruct*)",
                paper.model.display()
            ),
        )
    })?;
    let external =
        c.rm.external
            .iter()
            .filter_map(|e| {
                Some((
                    e.name.clone(),
                    StandIn::for_reward(e.dir.as_ref()?, &e.name),
                ))
            })
            .collect();
    let mut d = c.clone();
    d.dry_run = Some(DryRunSpec {
        policy,
        ground_truth: StandIn::for_reward(&paper.ground_truth, "ground truth"),
        external,
        sft_examples: 16,
        train_prefs: 40,
        long_every: 8,
        real_sizes: false,
    });
    d.device = DeviceSpec::Cpu;
    d.dtype = DTypeSpec::default();
    d.data = DataConfig {
        max_sft_examples: None,
        ..c.data.clone()
    };
    (d.sft.batch_size, d.sft.micro_batch_size) = (4, Some(2));
    d.prefdata.batch_size = 16;
    (
        d.rm.batch_size,
        d.rm.micro_batch_size,
        d.rm.score_batch_size,
    ) = (4, Some(2), 8);
    for (s, prompts, samples) in [(&mut d.normalize, 4, 3), (&mut d.eval, 3, 2)] {
        (s.prompts, s.samples, s.batch_size) = (prompts, samples, 16);
    }
    let pg = &mut d.pg;
    (pg.batch_size, pg.mini_batches, pg.micro_batch_size) = (4, 2, Some(2));
    pg.seeds.truncate(1);
    pg.epochs = pg.epochs.min(1.0);
    Ok(d)
}

/// The dry-run counterpart of a run name at real model sizes.
pub fn real_size_dry_run_name(name: &str) -> String {
    format!("{name}-dry-run-real-sizes")
}

/// [`dry_run_config`] with the stand-ins at their published sizes (Pythia-1B's,
/// Llama-3-8B's for ArmoRM, ...; random weights stored in bf16) and the run in bf16
/// (AdamW keeps f32 masters): the paper's memory and time per step on a GPU, with the
/// same shrunk counts (a few prompts, a couple of updates). Meant for
/// `exp run CONFIG --dry-run --real-sizes --device cuda`.
pub fn real_size_dry_run_config(c: &RunConfig, file: &str) -> Result<RunConfig> {
    let mut d = dry_run_config(c, file)?;
    if let Some(spec) = d.dry_run.as_mut() {
        spec.real_sizes = true;
    }
    d.dtype = DTypeSpec::Bf16;
    Ok(d)
}

impl DryRunSpec {
    /// The stand-ins' paths under `world` (the run's `world/` stage directory).
    pub fn paths(&self, world: &Path) -> DryRunPaths {
        DryRunPaths {
            policy: world.join("policy"),
            sft_data: world.join("data").join("alpaca_farm_sft.parquet"),
            train_prefs: world.join("data").join("ultrafeedback_train_prefs.parquet"),
            ground_truth: world.join("ground_truth"),
            external: self
                .external
                .keys()
                .map(|n| (n.clone(), world.join("rms").join(n)))
                .collect(),
        }
    }

    /// Writes every stand-in under `world` (weights from `seed`; real sizes drawn on
    /// `device`, see [`StandIn::write`]), with pairs longer than `max_tokens` every
    /// `long_every`-th, and `world/dry_run.json`, which the reports read to say that the
    /// run is a dry run.
    pub fn write(
        &self,
        world: &Path,
        seed: u64,
        max_tokens: usize,
        device: &Device,
    ) -> Result<serde_json::Value> {
        let p = self.paths(world);
        let stream = |s: u64| seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(s);
        let real = self.real_sizes;
        self.policy
            .write(&p.policy, stream(POLICY_STREAM), real, device)?;
        self.ground_truth
            .write(&p.ground_truth, stream(GROUND_TRUTH_STREAM), real, device)?;
        for (i, (name, standin)) in self.external.iter().enumerate() {
            standin.write(
                &p.external[name],
                stream(EXTERNAL_STREAM + 16 * i as u64),
                real,
                device,
            )?;
        }
        let data_dir = world.join("data");
        std::fs::create_dir_all(&data_dir).map_err(|source| Error::Io {
            path: data_dir.clone(),
            source,
        })?;
        let mut g = ToyGenerator::new(stream(SFT_STREAM));
        let sft: Vec<SftExample> = (0..self.sft_examples)
            .map(|_| g.sft_example_styled(SftStyle::Mixed))
            .collect();
        parquet::write_alpaca(&p.sft_data, &sft)?;
        let mut g = ToyGenerator::new(stream(PREFS_STREAM));
        let reward = ToyReward::default();
        let pairs: Vec<PreferencePair> = (0..self.train_prefs)
            .map(|i| {
                let mut pair = g.preference_pair_with_gap(&reward, 0.0);
                if self.long_every > 0 && i % self.long_every == self.long_every - 1 {
                    pair.chosen = longer_than(&pair.chosen, max_tokens);
                }
                pair
            })
            .collect();
        parquet::write_ultrafeedback(&p.train_prefs, &pairs)?;
        let manifest = serde_json::json!({
            "kind": "rmteach dry run: seeded random stand-ins, not the paper's models or data",
            "spec": self,
            "seed": seed,
        });
        write_json(&world.join(DRY_RUN_FILE), &manifest)?;
        Ok(manifest)
    }
}

/// `text` repeated until it has more than `max_tokens` bytes: more than `max_tokens`
/// tokens under the stand-ins' byte-level tokenizers (one token a byte).
fn longer_than(text: &str, max_tokens: usize) -> String {
    let mut out = text.to_string();
    while out.len() <= max_tokens {
        out.push(' ');
        out.push_str(text);
    }
    out
}
