//! Benchmarks of the language-model stages on identical work for us and for a PyTorch
//! peer (`benches/lm/torch_peer.py`).
//!
//! [`init_bench_dir`] random-initialises (seeded) a causal LM and a reward model from a
//! `config.json`, saves both in the Hugging Face layout (so transformers loads the very
//! same weights) and writes the token ids every workload uses (`inputs.json`).
//! [`run_bench`] then times the [`Workload`]s on that directory, each started from the
//! saved weights: a warm-up call (whose values are the agreement check) and `reps`
//! timed calls, of which the median is reported.

mod workloads;

use crate::hf::save::torch_dtype_name;
use crate::hf::{save_random_model, sequence_classification_json, SaveOptions};
use crate::models::Architecture;
use crate::reward::{save_random_reward_model, LM_HEAD_NAMES};
use crate::{Error, Result};
use candle_core::{DType, Device};
use candle_nn::VarMap;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

/// One benchmarked stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Full-sequence forward of the policy (logits of every position), no gradients.
    Forward,
    /// Causal-LM loss over every position, backward, clipped AdamW step.
    Step,
    /// SFT step: token-mean NLL of the response tokens, backward, AdamW step.
    Sft,
    /// Reward-model step: Bradley-Terry loss (with centring) on chosen/rejected pairs.
    Rm,
    /// Batched sampling with the KV cache (temperature 1, no top-k, no EOS).
    Sample,
    /// One RLOO update: rollout (k = 2), old/reference log-probs, reward-model scores,
    /// KL-penalised leave-one-out advantages, two clipped-surrogate AdamW steps.
    Rloo,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 6] = [
        Workload::Forward,
        Workload::Step,
        Workload::Sft,
        Workload::Rm,
        Workload::Sample,
        Workload::Rloo,
    ];

    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Forward => "forward",
            Workload::Step => "step",
            Workload::Sft => "sft",
            Workload::Rm => "rm",
            Workload::Sample => "sample",
            Workload::Rloo => "rloo",
        }
    }

    /// Parses a comma-separated list (`all` for every workload).
    pub fn parse_list(text: &str) -> Result<Vec<Workload>> {
        let mut out = Vec::new();
        for part in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if part == "all" {
                out.extend(Self::ALL);
                continue;
            }
            let w = Self::ALL
                .into_iter()
                .find(|w| w.name() == part)
                .ok_or_else(|| {
                    Error::Input(format!(
                    "unknown workload `{part}`; use forward, step, sft, rm, sample, rloo or all"
                ))
                })?;
            out.push(w);
        }
        if out.is_empty() {
            return Err(Error::Input("no workload given".into()));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

/// The token ids of every workload (`inputs.json`), read by both frameworks.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchInputs {
    /// `batch` prompts of `prompt_len` ids (no padding).
    pub prompts: Vec<Vec<u32>>,
    /// `batch` responses of `response_len` ids (the SFT targets and the LM-loss tail).
    pub responses: Vec<Vec<u32>>,
    /// `batch` preferred responses of the reward-model pairs (after `prompts`).
    pub chosen: Vec<Vec<u32>>,
    /// `batch` dispreferred responses.
    pub rejected: Vec<Vec<u32>>,
    /// Padding id (never drawn as a token).
    pub pad: u32,
    /// Seed the ids and weights were drawn with.
    pub seed: u64,
}

/// Sizes of the inputs written by [`init_bench_dir`].
#[derive(Debug, Clone, Copy)]
pub struct InputSizes {
    /// Rows per batch (also completions per RLOO update; must be even).
    pub batch: usize,
    /// Prompt length in tokens.
    pub prompt_len: usize,
    /// Response length in tokens.
    pub response_len: usize,
}

/// What [`init_bench_dir`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct InitSummary {
    /// Parameters of the causal LM.
    pub policy_params: usize,
    /// Parameters of the reward model (saved ones).
    pub rm_params: usize,
    /// The model type (`llama` or `gpt_neox`).
    pub model_type: String,
}

/// Random-initialises (with `seed`) the causal LM of `config_json` (a Hugging Face
/// `config.json` text) and a reward model over the same backbone, saves them as f32
/// Hugging Face checkpoints `dir/policy` and `dir/rm`, and writes `dir/inputs.json`.
pub fn init_bench_dir(
    config_json: &str,
    dir: &Path,
    sizes: InputSizes,
    seed: u64,
) -> Result<InitSummary> {
    let InputSizes {
        batch,
        prompt_len,
        response_len,
    } = sizes;
    if batch == 0 || batch % 2 != 0 {
        return Err(Error::Input(format!(
            "--batch {batch}: must be a positive even number (RLOO uses k = 2)"
        )));
    }
    if prompt_len == 0 || response_len == 0 {
        return Err(Error::Input(
            "--prompt-len and --response-len must be positive".into(),
        ));
    }
    let config = Architecture::from_json_str(config_json, "model config")?;
    let vocab = config.vocab_size();
    if vocab < 3 {
        return Err(Error::Input(format!("vocab_size {vocab} is too small")));
    }
    let json = config.to_hf_json(torch_dtype_name(DType::F32)?)?;
    let (_, varmap) = save_random_model(&dir.join("policy"), &json, seed, &SaveOptions::default())?;
    let policy_params = count(&varmap, &[]);
    drop(varmap);

    let exclude: Vec<String> = LM_HEAD_NAMES.iter().map(|s| s.to_string()).collect();
    let json = sequence_classification_json(&config, DType::F32, Some(0))?;
    let options = SaveOptions {
        exclude: exclude.clone(),
        ..SaveOptions::default()
    };
    let (_, rm_vars) =
        save_random_reward_model(&dir.join("rm"), &json, seed.wrapping_add(1), &options)?;
    let rm_params = count(&rm_vars, &exclude);

    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xB3AC);
    let mut draw = |n: usize, len: usize| -> Vec<Vec<u32>> {
        (0..n)
            .map(|_| {
                (0..len)
                    .map(|_| rng.random_range(1..vocab as u32))
                    .collect()
            })
            .collect()
    };
    let inputs = BenchInputs {
        prompts: draw(batch, prompt_len),
        responses: draw(batch, response_len),
        chosen: draw(batch, response_len),
        rejected: draw(batch, response_len),
        pad: 0,
        seed,
    };
    write_json(&dir.join("inputs.json"), &inputs)?;
    let model_type = config.model_type();
    Ok(InitSummary {
        policy_params,
        rm_params,
        model_type: model_type.into(),
    })
}

/// Number of parameters in `varmap` outside `exclude`.
fn count(varmap: &VarMap, exclude: &[String]) -> usize {
    varmap
        .data()
        .lock()
        .map(|d| {
            d.iter()
                .filter(|(n, _)| !exclude.contains(n))
                .map(|(_, v)| v.elem_count())
                .sum()
        })
        .unwrap_or(0)
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Input(format!("cannot serialise {}: {e}", path.display())))?;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| Error::Io {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    rmteach::report::write_atomic(path, format!("{text}\n").as_bytes()).map_err(|source| {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Settings of [`run_bench`].
#[derive(Debug, Clone, Serialize)]
pub struct BenchSpec {
    /// The workloads to run.
    pub workloads: Vec<Workload>,
    /// Timed repetitions per workload (after one warm-up).
    pub reps: usize,
    /// Tokens generated per row by `sample` and `rloo`.
    pub new_tokens: usize,
    /// AdamW learning rate of the training workloads.
    pub lr: f64,
    /// Seed of sampling and mini-batch order.
    pub seed: u64,
}

/// The timings and check values of one workload.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WorkloadReport {
    /// Median seconds of one call.
    pub median_s: f64,
    /// Every timed call, seconds.
    pub times_s: Vec<f64>,
    /// Generated tokens per second at the median (`sample`, `rloo`).
    pub tokens_per_s: Option<f64>,
    /// Values computed by the warm-up call from the saved weights (losses, gradient
    /// norms, logits), which the peer must reproduce.
    pub check: BTreeMap<String, serde_json::Value>,
    /// Set when the workload failed (the others still run).
    pub error: Option<String>,
}

/// Everything [`run_bench`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// `"rmteach"`.
    pub framework: String,
    /// `llama` or `gpt_neox`.
    pub model_type: String,
    /// Parameters of the causal LM.
    pub params: usize,
    /// The device, as given.
    pub device: String,
    /// `f32` or `bf16`.
    pub dtype: String,
    /// candle's CPU thread count.
    pub threads: usize,
    /// Rows per batch.
    pub batch: usize,
    /// Prompt length.
    pub prompt_len: usize,
    /// Response length.
    pub response_len: usize,
    /// The settings.
    pub spec: BenchSpec,
    /// Per workload name.
    pub workloads: BTreeMap<String, WorkloadReport>,
}

/// Runs `spec`'s workloads on the directory written by [`init_bench_dir`], with the
/// models converted to `dtype` on `device` (`device_name` is recorded as given).
pub fn run_bench(
    dir: &Path,
    spec: &BenchSpec,
    device: &Device,
    device_name: &str,
    dtype: DType,
) -> Result<BenchReport> {
    if spec.reps == 0 || spec.new_tokens == 0 {
        return Err(Error::Input(
            "--reps and --new-tokens must be positive".into(),
        ));
    }
    if !spec.lr.is_finite() || spec.lr < 0.0 {
        return Err(Error::Input(format!(
            "--lr {}: must be finite and >= 0",
            spec.lr
        )));
    }
    let path = dir.join("inputs.json");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    let inputs: BenchInputs = crate::rundir::parse_json(&text, &path.display().to_string())?;
    if inputs.prompts.is_empty() || inputs.prompts.len() % 2 != 0 {
        return Err(Error::Input(format!(
            "{}: need an even, positive number of prompts",
            path.display()
        )));
    }
    let ctx = workloads::Ctx {
        dir,
        inputs: &inputs,
        spec,
        device,
        dtype,
    };
    let probe = crate::hf::load_checkpoint(&dir.join("policy"), dtype, device)?;
    let params = count(&probe.varmap, &[]);
    let model_type = probe.config.model_type();
    drop(probe);
    let mut reports = BTreeMap::new();
    for &w in &spec.workloads {
        let report = workloads::run(&ctx, w).unwrap_or_else(|e| WorkloadReport {
            error: Some(e.to_string()),
            ..WorkloadReport::default()
        });
        reports.insert(w.name().to_string(), report);
    }
    Ok(BenchReport {
        framework: "rmteach".into(),
        model_type: model_type.into(),
        params,
        device: device_name.into(),
        dtype: match dtype {
            DType::BF16 => "bf16".into(),
            DType::F16 => "f16".into(),
            _ => "f32".into(),
        },
        threads: candle_core::utils::get_num_threads(),
        batch: inputs.prompts.len(),
        prompt_len: inputs.prompts[0].len(),
        response_len: inputs.responses.first().map_or(0, Vec::len),
        spec: spec.clone(),
        workloads: reports,
    })
}

/// Median of `xs` (the upper one of an even count); 0 for none.
pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// Calls `f` once (warm-up; its value is returned) then `reps` times, timing each call
/// (with a device synchronisation before the clock stops).
fn timed<T>(
    reps: usize,
    device: &Device,
    mut f: impl FnMut() -> Result<T>,
) -> Result<(T, Vec<f64>)> {
    let first = f()?;
    device.synchronize()?;
    let mut times = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        f()?;
        device.synchronize()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok((first, times))
}
