//! One experiment run of Section 4.1, from a [`RunConfig`] to `runs/<name>/`:
//! `world/` (the toy world, or a dry run's stand-ins) -> `sft/` -> `prefdata/` ->
//! `rms/rm-<p>/` (one per mix; and `rms/rm-union/` with `rm.union_with`) ->
//! `normalize/` -> `rm_eval/` -> `baseline/` (one evaluation of the initial policy,
//! shared by every reward and seed) -> `pg/<reward>/seed<k>/` for every training
//! reward and seed (with `eval.jsonl`: the shared initial evaluation as epoch 0, then
//! one evaluation per epoch), and `summary.json` (wall time per stage).
//!
//! Every stage is skipped when its directory holds `DONE.json`, and policy gradient
//! resumes from its last checkpoint, so a killed run restarts where it stopped. The
//! config is kept as `config.json`; a rerun with a different config is refused.

use super::config::{Checked, RunConfig, SftSource, ToyArch, GROUND_TRUTH, LOW_VARIANCE};
use super::dry_run::DryRunSpec;
use super::units::{run_units, Parallelism, Unit};
use crate::data::{
    filter_max_tokens, load_alpaca_sft, load_ultrafeedback, permutation, PreferencePair, PromptMix,
    SftExample,
};
use crate::hf::{load_checkpoint, read_config_json, save_random_model, SaveOptions};
use crate::models::Model;
use crate::progress::Reporter;
use crate::rundir::rewrite_stage;
use crate::rundir::{read_json, write_json, RunDir, StageDir};
use crate::stages::batches::{mix_seed, ChatCodec};
use crate::stages::evaluate::{prompt_means, reward_stats, sample, EvalOptions};
use crate::stages::normalize::load_scores;
use crate::stages::normalize::{load_normalizers, Normalize};
use crate::stages::pg::{Pg, PgOutcome};
use crate::stages::policy_eval::EvalHook;
pub use crate::stages::policy_eval::{Baseline, BaselineReward, EvalRecord};
use crate::stages::prefdata::{mix_pairs, rlhf_pairs, rm_split_chosen, LabeledPair, PrefData};
use crate::stages::rewards::{load_reward_dir, GroundTruthReward, Normalized, RewardFn};
use crate::stages::rm_eval::{raw_reward, LowVarianceSpec, RmEval};
use crate::stages::rm_train::{RmTrain, RmTrainOptions};
use crate::stages::sft::{Sft, SftOptions};
use crate::stages::{self, Runtime, Stage};
use crate::text::TextTokenizer;
use crate::toy::{write_toy_world, ToyModelSize, ToyReward, ToyWorldPaths, ToyWorldSpec};
use crate::{Error, Result};
use candle_core::Device;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How to run (not part of the experiment's definition).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Show a progress line per stage on stderr.
    pub progress: bool,
    /// Return after this stage (`world`, `sft`, `prefdata`, `rms`, `normalize`,
    /// `rm_eval`) as if killed there.
    pub stop_after: Option<String>,
    /// Stop the first unfinished policy-gradient run after this many updates (as if
    /// killed there; its checkpoints and logs stay). Runs the units one at a time.
    pub pg_stop_after: Option<u64>,
    /// The independent units (the reward models' training, the (reward, seed)
    /// policy-gradient runs) side by side: `--jobs N`, `--devices` ([`super::units`]).
    pub parallel: Parallelism,
}

pub use crate::records::{RunSummary, StageTime};

/// Runs (or resumes) the whole pipeline of `config` in `runs_root/<name>/`.
pub fn run(config: &Checked<RunConfig>, runs_root: &Path) -> Result<RunSummary> {
    run_with(config, runs_root, &RunOptions::default())
}

/// [`run`] with [`RunOptions`]. The config was validated when it was made
/// ([`Checked`]); the paths it reads are checked first, before anything is written.
pub fn run_with(
    config: &Checked<RunConfig>,
    runs_root: &Path,
    opts: &RunOptions,
) -> Result<RunSummary> {
    let config: &RunConfig = config;
    config.check_paper_paths("<run config>")?;
    // External reward models are needed from `normalize` on; a run stopped before it
    // (an experiment's first passes, which train them) does not need them yet.
    let early = ["world", "sft", "prefdata", "rms"];
    if !early.contains(&opts.stop_after.as_deref().unwrap_or("")) {
        config.check_external_paths("<run config>", runs_root)?;
    }
    let rt = config.runtime()?;
    opts.parallel.validate()?;
    let dir = RunDir::open(runs_root.join(&config.name))?;
    check_same_config(&dir, config)?;
    let mut r = Runner {
        c: config,
        runs_root: runs_root.to_path_buf(),
        dir,
        rt,
        opts,
        times: Vec::new(),
        start: Instant::now(),
    };
    let finished = r.all()?;
    if finished {
        let root = r.dir.root().to_path_buf();
        rewrite_stage(&root.join("report"), || write_run_report(&root))?;
    }
    let summary = RunSummary {
        name: config.name.clone(),
        dir: r.dir.root().to_path_buf(),
        stages: r.times,
        total_seconds: r.start.elapsed().as_secs_f64(),
        finished,
    };
    let path = summary.dir.join(crate::records::SUMMARY_FILE);
    let before: Option<RunSummary> = path.exists().then(|| read_json(&path)).transpose()?;
    write_json(&path, &keep_stage_times(before, &summary))?;
    Ok(summary)
}

/// The summary to keep on disk: a stage this call skipped keeps the time of the call
/// that ran it (from the `before` summary), and the total is the sum of those times
/// when any stage was skipped.
fn keep_stage_times(before: Option<RunSummary>, now: &RunSummary) -> RunSummary {
    let Some(before) = before else {
        return now.clone();
    };
    let mut out = now.clone();
    for t in &mut out.stages {
        let ran_before = before
            .stages
            .iter()
            .find(|b| b.stage == t.stage && !b.skipped);
        if let (true, Some(b)) = (t.skipped, ran_before) {
            *t = b.clone();
        }
    }
    if now.stages.iter().any(|t| t.skipped) {
        out.total_seconds = out.stages.iter().map(|t| t.seconds).sum();
    }
    out
}

/// Writes the report under `<run>/report/` (Tables 1 and 2, reward increase,
/// figures) from the run's records.
fn write_run_report(root: &Path) -> Result<()> {
    crate::analysis::write_report(root, &root.join("report"))?;
    Ok(())
}

/// Refuses to resume a run directory made by a different config.
fn check_same_config(dir: &RunDir, config: &RunConfig) -> Result<()> {
    let path = dir.root().join("config.json");
    let now = serde_json::to_value(config).map_err(|e| Error::Input(e.to_string()))?;
    if path.exists() {
        // Read back through `RunConfig`, so fields added since (with their defaults)
        // do not make an old run directory look foreign.
        let before: RunConfig = read_json(&path)?;
        let before = serde_json::to_value(before).map_err(|e| Error::Input(e.to_string()))?;
        if before != now {
            let mut changed = Vec::new();
            json_diff("", &before, &now, &mut changed);
            let shown = changed.len().min(8);
            let more = if changed.len() > shown {
                format!("; and {} more", changed.len() - shown)
            } else {
                String::new()
            };
            return Err(Error::Input(format!(
                "{} was made by a different config (its config.json); changed: {}{more}. \
                 Rerun with the config it was made by, give the changed config another \
                 `name`, or delete the directory to start over",
                dir.root().display(),
                changed[..shown].join("; "),
            )));
        }
        return Ok(());
    }
    write_json(&path, &now)
}

/// Appends `path: before -> now` for every leaf where two JSON values differ (dotted
/// paths; list elements as `[i]`).
fn json_diff(
    path: &str,
    before: &serde_json::Value,
    now: &serde_json::Value,
    out: &mut Vec<String>,
) {
    use serde_json::Value;
    let join = |k: &str| {
        if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        }
    };
    match (before, now) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let null = Value::Null;
                let (x, y) = (a.get(k).unwrap_or(&null), b.get(k).unwrap_or(&null));
                json_diff(&join(k), x, y, out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                json_diff(&format!("{path}[{i}]"), x, y, out);
            }
        }
        (a, b) if a != b => out.push(format!("`{path}`: {a} -> {b}")),
        _ => {}
    }
}

/// Where the initial model, data and ground truth are.
struct World {
    /// The initial model (fine-tuned by `sft`, or used as is).
    policy: PathBuf,
    sft_data: PathBuf,
    train_prefs: PathBuf,
    /// `None`: the toy ground truth; else a reward-model directory.
    ground_truth: Option<PathBuf>,
    /// `[[rm.external]]` reward models by name.
    external: BTreeMap<String, PathBuf>,
}

/// Stream ids of the run-level seeds.
const EVAL_PROMPTS_STREAM: u64 = 21;
const LOW_VARIANCE_STREAM: u64 = 22;
const NORMALIZE_STREAM: u64 = 23;
const EVAL_STREAM: u64 = 24;
const BASELINE_STREAM: u64 = 25;

/// A pipeline step: runs its stages; false when a stage stopped early.
type Step<'a> = fn(&mut Runner<'a>, &World) -> Result<bool>;

/// A stage whose inputs are prepared only when it runs (a complete stage loads
/// nothing): `run` prepares them and runs the work.
struct Prepared<F, T> {
    name: String,
    run: F,
    summary: std::marker::PhantomData<T>,
}

impl<F, T> Prepared<F, T> {
    fn new(name: impl Into<String>, run: F) -> Self {
        Self {
            name: name.into(),
            run,
            summary: std::marker::PhantomData,
        }
    }
}

impl<F, T> Stage for Prepared<F, T>
where
    F: FnOnce(&StageDir, &Runtime) -> Result<T>,
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    type Summary = T;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn run(self, dir: &StageDir, rt: &Runtime) -> Result<T> {
        (self.run)(dir, rt)
    }
}

/// What the normalisation stage leaves for the later stages.
struct Normalization {
    rlhf: Vec<LabeledPair>,
    normalizers: BTreeMap<String, rmteach::metrics::Normalizer>,
    low: LowVarianceSpec,
    norm_keys: Vec<usize>,
}

struct Runner<'a> {
    c: &'a RunConfig,
    runs_root: PathBuf,
    dir: RunDir,
    rt: Runtime,
    opts: &'a RunOptions,
    times: Vec<StageTime>,
    start: Instant,
}

impl<'a> Runner<'a> {
    /// Every step in order; false when stopped early.
    fn all(&mut self) -> Result<bool> {
        let world = self.world()?;
        let steps: [(&str, Step<'a>); 7] = [
            ("world", Self::toy_world),
            ("sft", Self::sft),
            ("prefdata", Self::prefdata),
            ("rms", Self::rms),
            ("normalize", Self::normalize),
            ("rm_eval", Self::rm_eval),
            ("pg", Self::policy_gradient),
        ];
        for (name, step) in steps {
            if !step(self, &world)? || self.opts.stop_after.as_deref() == Some(name) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Runs `stage` in its directory (skipped when complete), timed and shown.
    fn stage<S: Stage>(&mut self, stage: S) -> Result<S::Summary> {
        let name = stage.name();
        let dir = self.dir.stage(&name)?;
        let done = dir.is_complete();
        let rt = self.rt.clone();
        self.timed(&name, done, || stages::run(stage, &dir, &rt))
    }

    /// The policy every later stage starts from: the SFT model, or the world's model
    /// as is (`sft.enabled = false`).
    fn policy_dir(&self, world: &World) -> Result<PathBuf> {
        Ok(if self.c.sft.enabled {
            self.dir.stage("sft")?.path().to_path_buf()
        } else {
            world.policy.clone()
        })
    }

    fn sft(&mut self, world: &World) -> Result<bool> {
        let (c, root) = (self.c, self.dir.root().to_path_buf());
        if !c.sft.enabled {
            self.timed("sft", true, || Ok(()))?;
            return Ok(true);
        }
        self.stage(Prepared::new("sft", |dir: &StageDir, rt: &Runtime| {
            let data = sft_examples(c, world, &root, rt)?;
            // `[sft]` plus the run's seed; `enabled` and `source` are the runner's.
            let s = &c.sft;
            let o = SftOptions {
                lr: s.lr,
                batch_size: s.batch_size,
                micro_batch_size: s.micro_batch_size,
                epochs: s.epochs,
                max_grad_norm: s.max_grad_norm,
                shuffle_seed: Some(c.seed),
            };
            let sft = Sft {
                init_dir: &world.policy,
                data: &data,
                options: &o,
            };
            sft.run(dir, rt)
        }))?;
        Ok(true)
    }

    fn prefdata(&mut self, world: &World) -> Result<bool> {
        let (c, root) = (self.c, self.dir.root().to_path_buf());
        let policy_dir = self.policy_dir(world)?;
        self.stage(Prepared::new("prefdata", |dir: &StageDir, rt: &Runtime| {
            let tok = TextTokenizer::from_dir(&policy_dir)?;
            let pairs = load_ultrafeedback(&world.train_prefs)?;
            let kept = filter_max_tokens(pairs, &tok, c.data.max_tokens)?.kept;
            let gt = load_reward(c, &root, &rt.device, world, GROUND_TRUTH)?;
            let stage = PrefData {
                sft_dir: &policy_dir,
                pairs: kept,
                ground_truth: gt.as_ref(),
                rm_fraction: c.data.rm_fraction,
                mixes: &c.rm.mixes,
                seed: c.seed,
                max_new_tokens: c.prefdata.max_new_tokens,
                batch_size: c.prefdata.batch_size,
            };
            stage.run(dir, rt)
        }))?;
        Ok(true)
    }

    fn rms(&mut self, world: &World) -> Result<bool> {
        let c = self.c;
        let policy_dir = self.policy_dir(world)?;
        let pref = self.dir.stage("prefdata")?;
        let union = (!c.rm.union_with.is_empty()).then(|| (UNION_RM.to_string(), None));
        let trained = c.rm.mixes.iter().map(|&p| (RunConfig::rm_name(p), Some(p)));
        let mut rms: Vec<SideUnit<'_, ()>> = Vec::new();
        for (name, mix) in trained.chain(union) {
            let runs_root = self.runs_root.clone();
            let (pref, policy_dir) = (&pref, &policy_dir);
            let label = format!("rms/{name}");
            let dir = self.dir.stage(&label)?;
            let stage = Prepared::new(label.clone(), move |dir: &StageDir, rt: &Runtime| {
                // `[rm]`'s training settings plus the run's seeds; the mixes, external
                // and union reward models and the scoring batch are the runner's.
                let rm = &c.rm;
                let o = RmTrainOptions {
                    lr: rm.lr,
                    batch_size: rm.batch_size,
                    micro_batch_size: rm.micro_batch_size,
                    epochs: rm.epochs,
                    margin: rm.margin,
                    shuffle_seed: Some(c.seed),
                    head_seed: c.seed,
                    ..RmTrainOptions::default()
                };
                let pairs = match mix {
                    Some(p) => mix_pairs(pref, p)?,
                    None => union_pairs(pref, &runs_root, &rm.union_with)?,
                };
                let stage = RmTrain {
                    name: &name,
                    sft_dir: policy_dir,
                    pairs: &pairs,
                    options: &o,
                };
                stage.run(dir, rt)
            });
            let done = dir.is_complete();
            let run = move |rt: &Runtime| stages::run(stage, &dir, rt).map(|_| ());
            rms.push((label, done, Box::new(run)));
        }
        self.side_by_side(rms)?;
        Ok(true)
    }

    fn normalize(&mut self, world: &World) -> Result<bool> {
        let (c, root) = (self.c, self.dir.root().to_path_buf());
        let policy_dir = self.policy_dir(world)?;
        let rlhf = rlhf_pairs(&self.dir.stage("prefdata")?)?;
        let mut raw: Vec<String> = c
            .reward_names()
            .into_iter()
            .filter(|n| n != LOW_VARIANCE && n != GROUND_TRUTH)
            .collect();
        raw.push(GROUND_TRUTH.into());
        let pairs = fixed_pairs(&rlhf, c.normalize.prompts, c.seed);
        let device = self.rt.device.clone();
        let load = |name: &str| load_reward(c, &root, &device, world, name);
        self.stage(Normalize {
            policy_dir: &policy_dir,
            pairs: &pairs,
            rewards: &raw,
            load: &load,
            sampling: sampling(&c.normalize, mix_seed(c.seed, NORMALIZE_STREAM)),
        })?;
        Ok(true)
    }

    /// The RLHF pairs, the normalisers of every training reward (the low-variance one
    /// included), the low-variance reward's prompts and the normalisation prompts'
    /// keys, from the complete `prefdata` and `normalize` stages.
    fn normalization(&self) -> Result<Normalization> {
        let c = self.c;
        let rlhf = rlhf_pairs(&self.dir.stage("prefdata")?)?;
        let norm = self.dir.stage("normalize")?;
        let mut normalizers = load_normalizers(&norm)?;
        let low = self.low_variance(&rlhf)?;
        let norm_keys = fixed_indices(rlhf.len(), c.normalize.prompts, c.seed);
        if c.low_variance.enabled {
            let row_keys: Vec<usize> = norm_keys
                .iter()
                .flat_map(|&k| std::iter::repeat_n(k, c.normalize.samples))
                .collect();
            let gt = normalizers
                .get(GROUND_TRUTH)
                .copied()
                .ok_or_else(|| Error::Input("normalize.json has no normaliser for `gt`".into()))?;
            let gt_raw = load_scores(&norm, GROUND_TRUTH)?.samples;
            let n = low.normalizer(low.order, &gt_raw, &row_keys, gt)?;
            normalizers.insert(LOW_VARIANCE.into(), n);
        }
        Ok(Normalization {
            rlhf,
            normalizers,
            low,
            norm_keys,
        })
    }

    fn rm_eval(&mut self, _: &World) -> Result<bool> {
        let c = self.c;
        let n = self.normalization()?;
        let norm = self.dir.stage("normalize")?;
        let columns = c.reward_names();
        self.stage(RmEval {
            norm: &norm,
            columns: &columns,
            normalizers: &n.normalizers,
            low_variance: &n.low,
            prompt_keys: &n.norm_keys,
            samples_per_prompt: c.normalize.samples,
        })?;
        Ok(true)
    }

    /// Where the initial model, data and ground truth are: the toy world's files
    /// (written by the `world` step) or the paper's paths.
    fn world(&self) -> Result<World> {
        let c = self.c;
        if let Some(d) = &c.dry_run {
            return self.dry_run_world(d);
        }
        if let Some(p) = &c.world.paper {
            // The paths were checked by `check_paths` before anything was written.
            return Ok(World {
                policy: p.model.clone(),
                sft_data: p.sft_data.clone(),
                train_prefs: p.train_prefs.clone(),
                ground_truth: Some(p.ground_truth.clone()),
                external: self.external(),
            });
        }
        let t = c.world.toy.as_ref().ok_or_else(|| {
            Error::config("<run config>", "world", "give [world.toy] or [world.paper]")
        })?;
        let paths = ToyWorldPaths::new(self.dir.stage("world")?.path());
        let policy = if t.arch == ToyArch::GptNeox {
            paths.gpt_neox.clone()
        } else {
            paths.llama.clone()
        };
        Ok(World {
            policy,
            sft_data: paths.sft,
            train_prefs: paths.train_prefs,
            ground_truth: None,
            external: self.external(),
        })
    }

    /// A dry run's world: the stand-ins its `world/` stage writes (`[[rm.external]]`
    /// reward models of other runs, `from_run`, stay where they are).
    fn dry_run_world(&self, d: &DryRunSpec) -> Result<World> {
        let p = d.paths(self.dir.stage("world")?.path());
        let mut external = self.external();
        external.extend(p.external);
        Ok(World {
            policy: p.policy,
            sft_data: p.sft_data,
            train_prefs: p.train_prefs,
            ground_truth: Some(p.ground_truth),
            external,
        })
    }

    /// A dry run's `world/` stage: writes the stand-in models and data.
    fn write_dry_run_world(&mut self, d: &DryRunSpec) -> Result<bool> {
        let (seed, max_tokens) = (self.c.seed, self.c.data.max_tokens);
        self.stage(Prepared::new("world", |dir: &StageDir, rt: &Runtime| {
            d.write(dir.path(), seed, max_tokens, &rt.device)
        }))?;
        Ok(true)
    }

    /// The `world/` stage: a dry run's stand-ins or the toy world (nothing for the
    /// paper's world).
    fn toy_world(&mut self, world: &World) -> Result<bool> {
        if let Some(d) = &self.c.dry_run {
            return self.write_dry_run_world(d);
        }
        let Some(t) = &self.c.world.toy else {
            return Ok(true);
        };
        if self.c.world.paper.is_some() {
            return Ok(true);
        }
        let policy = &world.policy;
        self.stage(Prepared::new("world", |dir: &StageDir, _: &Runtime| {
            let spec = ToyWorldSpec {
                seed: t.seed,
                pretrain: 0,
                sft: t.sft,
                train_prefs: t.train_prefs,
                test_prefs: 1,
                prompts: 1,
                model: ToyModelSize {
                    hidden_size: t.hidden_size,
                    num_hidden_layers: t.num_hidden_layers,
                    num_attention_heads: t.num_attention_heads,
                    intermediate_size: t.intermediate_size,
                    max_position_embeddings: t.max_position_embeddings,
                },
                offpolicy_gap_permille: (t.offpolicy_gap * 1000.0).round() as u32,
                sft_style: t.sft_style,
            };
            write_toy_world(dir.path(), &spec)?;
            save_random_model(
                policy,
                &read_config_json(policy)?,
                t.seed,
                &SaveOptions::default(),
            )?;
            Ok(serde_json::json!({ "policy": policy }))
        }))?;
        Ok(true)
    }

    /// The `[[rm.external]]` directories by name (checked by `check_external_paths`).
    fn external(&self) -> BTreeMap<String, PathBuf> {
        self.c
            .rm
            .external
            .iter()
            .map(|e| (e.name.clone(), e.resolve(&self.runs_root)))
            .collect()
    }

    /// The low-variance reward's fixed share of RLHF prompts, chosen by index.
    fn low_variance(&self, rlhf: &[LabeledPair]) -> Result<LowVarianceSpec> {
        let lv = &self.c.low_variance;
        let mask = PromptMix::new(rlhf.len(), mix_seed(self.c.seed, LOW_VARIANCE_STREAM))
            .mask(lv.fraction)?;
        Ok(LowVarianceSpec {
            keys: mask
                .iter()
                .enumerate()
                .filter(|(_, m)| **m)
                .map(|(i, _)| i)
                .collect(),
            scale: lv.scale,
            order: lv.order,
            rlhf_prompts: rlhf.len(),
        })
    }

    /// The `baseline/` stage: one evaluation of the initial policy on the evaluation
    /// prompts, scored by every training reward and the ground truth; every seed's
    /// epoch 0 is this one (a shared baseline, so seeds differ only after training).
    fn baseline(
        &mut self,
        rewards: &RewardCtx<'_>,
        (reference, codec, gt_raw): (&Model, &ChatCodec, &dyn RewardFn),
        eval: &EvalOptions,
        prompts: &[String],
    ) -> Result<Baseline> {
        let (names, seed) = (self.c.pg_rewards(), mix_seed(self.c.seed, BASELINE_STREAM));
        self.stage(Prepared::new("baseline", |dir: &StageDir, rt: &Runtime| {
            let o = EvalOptions {
                seed,
                ..eval.clone()
            };
            let samples = sample(reference, codec, prompts, &o, &rt.device)?;
            let gt_norm = rewards.get(GROUND_TRUTH, gt_raw)?;
            let g = samples.score(gt_norm.as_ref())?;
            let mut by_name = BTreeMap::new();
            for name in &names {
                let proxy = rewards.get(name, gt_raw)?;
                let p = samples.score(proxy.as_ref())?;
                by_name.insert(
                    name.clone(),
                    BaselineReward {
                        stats: reward_stats(&p, &g)?,
                        per_prompt: prompt_means(&p),
                    },
                );
            }
            let b = Baseline {
                prompts: prompts.len(),
                samples_per_prompt: o.samples_per_prompt,
                ground_truth: BaselineReward {
                    stats: reward_stats(&g, &g)?,
                    per_prompt: prompt_means(&g),
                },
                rewards: by_name,
            };
            write_json(&dir.file("baseline.json"), &b)?;
            Ok(b)
        }))
    }

    /// Policy gradient for every training reward and seed; false when stopped early.
    fn policy_gradient(&mut self, world: &World) -> Result<bool> {
        let (c, root) = (self.c, self.dir.root().to_path_buf());
        let device = self.rt.device.clone();
        let policy_dir = self.policy_dir(world)?;
        let Normalization {
            rlhf,
            normalizers,
            low,
            ..
        } = self.normalization()?;
        let prompts: Vec<String> = rlhf.iter().map(|l| l.pair.prompt.clone()).collect();
        let eval_keys = fixed_indices(rlhf.len(), c.eval.prompts, c.seed);
        let eval_prompts: Vec<String> = eval_keys.iter().map(|&i| prompts[i].clone()).collect();
        let eval_options = EvalOptions {
            keys: Some(eval_keys),
            ..sampling(&c.eval, 0)
        };
        let complete = |label: &str| -> Result<bool> { Ok(self.dir.stage(label)?.is_complete()) };
        let mut todo = false;
        for name in c.pg_rewards() {
            for &seed in &c.pg.seeds {
                todo |= !complete(&format!("pg/{name}/seed{seed}"))?;
            }
        }
        // Loaded only when some run is unfinished: a rerun of a finished run loads nothing.
        let shared = if todo {
            Some((
                load_checkpoint(&policy_dir, self.rt.dtype, &device)?.model,
                ChatCodec::from_dir(&policy_dir)?,
                load_reward(c, &root, &device, world, GROUND_TRUTH)?,
            ))
        } else {
            None
        };
        let ctx = RewardCtx {
            c,
            root: &root,
            device: &device,
            world,
            normalizers: &normalizers,
            low: &low,
        };
        let baseline = match &shared {
            Some((reference, codec, gt_raw)) => Some(self.baseline(
                &ctx,
                (reference, codec, gt_raw.as_ref()),
                &eval_options,
                &eval_prompts,
            )?),
            None => {
                self.timed("baseline", true, || Ok(()))?;
                None
            }
        };
        let unit = PgUnit {
            c,
            root: &root,
            world,
            policy_dir: &policy_dir,
            normalizers: &normalizers,
            low: &low,
            prompts: &prompts,
            eval_prompts: &eval_prompts,
            eval_options: &eval_options,
            shared: shared.as_ref().map(|s| (&s.0, &device)),
            stop_after: self.opts.pg_stop_after,
        };
        // `None`: complete already (or nothing to do), skipped.
        let mut pgs: Vec<SideUnit<'_, Option<PgOutcome>>> = Vec::new();
        for name in c.pg_rewards() {
            for &seed in &c.pg.seeds {
                let label = format!("pg/{name}/seed{seed}");
                let dir = self.dir.stage(&label)?;
                let (false, Some(baseline)) = (dir.is_complete(), &baseline) else {
                    pgs.push((label, true, Box::new(|_: &Runtime| Ok(None))));
                    continue;
                };
                let (unit, initial, name) = (&unit, baseline.record(&name)?, name.clone());
                let run = move |rt: &Runtime| unit.run(&name, seed, initial, &dir, rt).map(Some);
                pgs.push((label, false, Box::new(run)));
            }
        }
        let stopped = |o: &Option<PgOutcome>| matches!(o, Some(PgOutcome::Stopped(_)));
        let outcomes = self.side_by_side_until(pgs, stopped)?;
        Ok(!outcomes.iter().any(stopped))
    }

    /// Runs `units` (label, complete already, work on a worker's runtime) side by side
    /// as `opts.parallel` says (one at a time with `pg_stop_after`), each timed and
    /// shown; records their times in the units' order and returns their results, or
    /// the first error.
    fn side_by_side<T: Send>(&mut self, units: Vec<SideUnit<'_, T>>) -> Result<Vec<T>> {
        self.side_by_side_until(units, |_| false)
    }

    /// [`side_by_side`](Self::side_by_side) that starts no further unit once one
    /// returns a result `stop` accepts (the units after it are left out).
    fn side_by_side_until<T: Send>(
        &mut self,
        units: Vec<SideUnit<'_, T>>,
        stop: impl Fn(&T) -> bool + Sync,
    ) -> Result<Vec<T>> {
        let par = &self.opts.parallel;
        let jobs = if self.opts.pg_stop_after.is_some() {
            1
        } else {
            par.jobs
        };
        let show = self.opts.progress.then_some(jobs > 1);
        let (rt, halted, stop) = (&self.rt, &AtomicBool::new(false), &stop);
        let work: Vec<Unit<'_, Option<(T, StageTime)>>> = units
            .into_iter()
            .map(|(label, done, run)| {
                Box::new(move |worker: usize| {
                    if halted.load(Ordering::SeqCst) {
                        return Ok(None);
                    }
                    let rt = par.runtime(worker, rt)?;
                    let (out, time) = timed_stage(show, &label, done, || run(&rt));
                    let out = out?;
                    if stop(&out) {
                        halted.store(true, Ordering::SeqCst);
                    }
                    Ok(Some((out, time)))
                }) as Unit<'_, _>
            })
            .collect();
        let mut out = Vec::new();
        for r in run_units(jobs, work) {
            if let Some((value, time)) = r? {
                self.times.push(time);
                out.push(value);
            }
        }
        Ok(out)
    }

    /// Runs `f` as stage `name`, timed and shown; `done`: it was complete (skipped).
    fn timed<T>(&mut self, name: &str, done: bool, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let (out, time) = timed_stage(self.opts.progress.then_some(false), name, done, f);
        let out = out?;
        self.times.push(time);
        Ok(out)
    }
}

/// A unit for [`Runner::side_by_side`]: its stage label, whether the stage was
/// complete already, and its work on the runtime of the worker that runs it.
type SideUnit<'u, T> = (
    String,
    bool,
    Box<dyn FnOnce(&Runtime) -> Result<T> + Send + 'u>,
);

/// Runs `f` as stage `name`, timed; shown when `show` is given (`Some(true)`: plain
/// lines, for stages running side by side); `done`: it was complete (skipped).
fn timed_stage<T>(
    show: Option<bool>,
    name: &str,
    done: bool,
    f: impl FnOnce() -> Result<T>,
) -> (Result<T>, StageTime) {
    let start = Instant::now();
    let reporter = show.map(|lines| {
        if lines {
            Reporter::start_lines(name)
        } else {
            Reporter::start(name)
        }
    });
    let result = f();
    if let Some(r) = reporter {
        match (&result, done) {
            (Ok(_), true) => r.finish("complete, skipped"),
            (Ok(_), false) => {
                let message = format!("done in {:.1} s", r.elapsed());
                r.finish(&message);
            }
            (Err(e), _) => r.finish(&format!("failed: {e}")),
        }
    }
    let time = StageTime {
        stage: name.into(),
        seconds: start.elapsed().as_secs_f64(),
        skipped: done,
    };
    (result, time)
}

/// What every policy-gradient unit of a run reads (all finished before the units
/// start), and how one unit runs.
struct PgUnit<'a> {
    c: &'a RunConfig,
    root: &'a Path,
    world: &'a World,
    policy_dir: &'a Path,
    normalizers: &'a BTreeMap<String, rmteach::metrics::Normalizer>,
    low: &'a LowVarianceSpec,
    prompts: &'a [String],
    eval_prompts: &'a [String],
    eval_options: &'a EvalOptions,
    /// The reference policy loaded for the baseline, and its device: shared by the
    /// units on that device (the others load their own).
    shared: Option<(&'a Model, &'a Device)>,
    stop_after: Option<u64>,
}

impl PgUnit<'_> {
    /// Policy gradient on training reward `name` with seed `seed` in `stage`, on `rt`:
    /// loads what it needs on `rt`'s device (the tokenizer, the ground truth, the
    /// reference unless shared), evaluates with the baseline record `initial` as epoch 0.
    fn run(
        &self,
        name: &str,
        seed: u64,
        initial: EvalRecord,
        stage: &StageDir,
        rt: &Runtime,
    ) -> Result<PgOutcome> {
        let c = self.c;
        let loaded;
        let reference = match self.shared {
            Some((m, d)) if d.same_device(&rt.device) => m,
            _ => {
                loaded = load_checkpoint(self.policy_dir, rt.dtype, &rt.device)?.model;
                &loaded
            }
        };
        let codec = ChatCodec::from_dir(self.policy_dir)?;
        let gt_raw = load_reward(c, self.root, &rt.device, self.world, GROUND_TRUTH)?;
        let ctx = RewardCtx {
            c,
            root: self.root,
            device: &rt.device,
            world: self.world,
            normalizers: self.normalizers,
            low: self.low,
        };
        let proxy = ctx.get(name, gt_raw.as_ref())?;
        let gt = ctx.get(GROUND_TRUTH, gt_raw.as_ref())?;
        let mut hook = EvalHook {
            reference,
            codec: &codec,
            prompts: self.eval_prompts,
            proxy: proxy.as_ref(),
            gt: gt.as_ref(),
            base: self.eval_options.clone(),
            seed: mix_seed(mix_seed(c.seed, EVAL_STREAM), seed),
            device: &rt.device,
            path: stage.file("eval.jsonl"),
            metrics: stage.file("metrics.jsonl"),
            initial,
        };
        let pg = Pg {
            reward_name: name,
            init_dir: self.policy_dir,
            prompts: self.prompts,
            reward: proxy.as_ref(),
            options: &c.pg,
            seed,
            stop_after: self.stop_after,
            hooks: &mut hook,
        };
        stages::run(pg, stage, rt)
    }
}

/// A raw reward: `gt` (the ground truth) or a trained RM `rm-<p>` of the run in `root`.
fn load_reward(
    c: &RunConfig,
    root: &Path,
    device: &Device,
    world: &World,
    name: &str,
) -> Result<Box<dyn RewardFn>> {
    let dir = match (name, &world.ground_truth) {
        (GROUND_TRUTH, None) => return Ok(Box::new(GroundTruthReward(ToyReward::default()))),
        (GROUND_TRUTH, Some(dir)) => dir.clone(),
        (rm, _) => match world.external.get(rm) {
            Some(dir) => dir.clone(),
            None => root.join("rms").join(rm),
        },
    };
    load_reward_dir(&dir, c.dtype.dtype(), device, c.rm.score_batch_size)
}

/// The SFT examples of `sft.source`, truncated to `data.max_sft_examples`; an empty
/// set is refused naming the file and the filter that emptied it.
fn sft_examples(
    c: &RunConfig,
    world: &World,
    root: &Path,
    rt: &Runtime,
) -> Result<Vec<SftExample>> {
    let empty = |file: &Path, why: String| {
        Err(Error::Input(format!(
            "sft: no training examples: {}: {why}",
            file.display()
        )))
    };
    let mut data = if c.sft.source == SftSource::RmSplitChosen {
        let file = &world.train_prefs;
        let tok = TextTokenizer::from_dir(&world.policy)?;
        let pairs = load_ultrafeedback(file)?;
        if pairs.is_empty() {
            return empty(
                file,
                "the file has no preference pairs (sft.source = \"rm_split_chosen\")".into(),
            );
        }
        let n = pairs.len();
        let kept = filter_max_tokens(pairs, &tok, c.data.max_tokens)?.kept;
        if kept.is_empty() {
            return empty(
                file,
                format!(
                    "data.max_tokens = {} dropped all {n} pairs (sft.source = \"rm_split_chosen\"); raise data.max_tokens",
                    c.data.max_tokens
                ),
            );
        }
        let k = kept.len();
        let gt = load_reward(c, root, &rt.device, world, GROUND_TRUTH)?;
        let data = rm_split_chosen(kept, gt.as_ref(), c.data.rm_fraction, c.seed)?;
        if data.is_empty() {
            return empty(
                file,
                format!(
                    "the RM split (data.rm_fraction = {}) of the {k} pairs within data.max_tokens is empty; raise data.rm_fraction",
                    c.data.rm_fraction
                ),
            );
        }
        data
    } else {
        let data = load_alpaca_sft(&world.sft_data)?;
        if data.is_empty() {
            return empty(
                &world.sft_data,
                "the file has no SFT records (sft.source = \"sft_data\")".into(),
            );
        }
        data
    };
    if let Some(n) = c.data.max_sft_examples {
        data.truncate(n);
    }
    Ok(data)
}

/// Name of the reward model that `rm.union_with` trains (under `rms/`).
pub const UNION_RM: &str = "rm-union";

/// This run's on-policy RM pairs (mix 100) followed by those of each run in `others`
/// (paths under `runs_root`), for `rms/rm-union`.
fn union_pairs(
    pref: &StageDir,
    runs_root: &Path,
    others: &[PathBuf],
) -> Result<Vec<PreferencePair>> {
    let mut pairs = mix_pairs(pref, 100)?;
    for (i, other) in others.iter().enumerate() {
        let stage = RunDir::open(runs_root.join(other))?.stage("prefdata")?;
        if !stage.is_complete() {
            return Err(Error::config(
                "<run config>",
                &format!("rm.union_with[{i}]"),
                format!(
                    "{} is not done; run that run's stages up to prefdata first \
                     (an experiment does this for its own runs)",
                    stage.path().display()
                ),
            ));
        }
        pairs.extend(mix_pairs(&stage, 100)?);
    }
    Ok(pairs)
}

/// Sampling settings of `[normalize]` / `[eval]` (the TOML's `top_k = 0` is "no
/// top-k", `None` for the sampler; the temperature is fixed at 1; `prompts` is the
/// runner's).
fn sampling(s: &super::config::SampleConfig, seed: u64) -> EvalOptions {
    EvalOptions {
        samples_per_prompt: s.samples,
        temperature: 1.0,
        top_k: (s.top_k > 0).then_some(s.top_k),
        max_new_tokens: s.max_new_tokens,
        batch_size: s.batch_size,
        seed,
        keys: None,
    }
}

/// The RLHF indices of the first `n` of `len` RLHF pairs in a fixed seeded order: the
/// normalisation and evaluation prompts (the paper's 500), and their keys.
pub fn fixed_indices(len: usize, n: usize, seed: u64) -> Vec<usize> {
    permutation(len, mix_seed(seed, EVAL_PROMPTS_STREAM))
        .into_iter()
        .take(n)
        .collect()
}

/// What building a normalised training reward needs.
struct RewardCtx<'a> {
    c: &'a RunConfig,
    root: &'a Path,
    device: &'a Device,
    world: &'a World,
    normalizers: &'a BTreeMap<String, rmteach::metrics::Normalizer>,
    low: &'a LowVarianceSpec,
}

impl RewardCtx<'_> {
    /// The normalised training reward `name` (scaled on the chosen prompts for the
    /// low-variance reward); `gt_raw` serves the ground-truth-based ones.
    fn get<'g>(&self, name: &str, gt_raw: &'g dyn RewardFn) -> Result<Box<dyn RewardFn + 'g>> {
        let n = self.normalizers.get(name).copied().ok_or_else(|| {
            Error::Input(format!("normalize.json has no normaliser for `{name}`"))
        })?;
        let raw = raw_reward(name);
        let inner: Box<dyn RewardFn + 'g> = if raw == GROUND_TRUTH {
            Box::new(gt_raw)
        } else {
            load_reward(self.c, self.root, self.device, self.world, raw)?
        };
        let mut proxy = Normalized::new(inner, n);
        if name == LOW_VARIANCE {
            proxy = proxy.with_scaled_prompts(self.low.keys.iter().copied(), self.low.scale);
        }
        Ok(Box::new(proxy))
    }
}

/// The first `n` RLHF pairs in a fixed seeded order ([`fixed_indices`]).
pub fn fixed_pairs(rlhf: &[LabeledPair], n: usize, seed: u64) -> Vec<PreferencePair> {
    fixed_indices(rlhf.len(), n, seed)
        .into_iter()
        .map(|i| rlhf[i].pair.clone())
        .collect()
}
