//! Supervised fine-tuning: cross-entropy on the response tokens (and the template's
//! closing EOS) of chat-rendered (prompt, response) pairs, the prompt masked; AdamW
//! at a constant learning rate with gradient clipping; the paper's defaults.
//!
//! In bf16 (a [`Runtime`] with `BF16`) the model runs in bf16 and AdamW keeps f32 master
//! weights (see [`super::optim`]); the log-softmax and the loss reduction are f32
//! ([`token_logprobs`]), and the saved checkpoint holds the f32 masters. Per step the
//! host reads two numbers: the batch loss (accumulated on the device over the
//! micro-batches) and the gradient norm.

use super::batches::{check_batch, order, ChatCodec};
use super::optim::{AdamW, OptimConfig};
use super::stage::{Runtime, Stage};
use crate::data::SftExample;
use crate::hf::{
    load_checkpoint, load_checkpoint_cut, read_config_json, save_checkpoint_with_json, SaveOptions,
};
use crate::logprobs::{token_logprobs, SequenceBatch};
use crate::models::{Architecture, Model};
use crate::rundir::StageDir;
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;

/// Settings of [`Sft`] (defaults: the paper's Section 4.1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SftOptions {
    /// Constant learning rate (1e-6).
    pub lr: f64,
    /// Examples per optimiser step (32).
    pub batch_size: usize,
    /// Examples per forward pass, gradients accumulated (`None`: the whole batch).
    pub micro_batch_size: Option<usize>,
    /// Passes over the data (1).
    pub epochs: usize,
    /// Gradient clipping (1.0).
    pub max_grad_norm: Option<f64>,
    /// Seed of the per-epoch shuffle (`None`: data order).
    pub shuffle_seed: Option<u64>,
}

impl Default for SftOptions {
    fn default() -> Self {
        Self {
            lr: 1e-6,
            batch_size: 32,
            micro_batch_size: None,
            epochs: 1,
            max_grad_norm: Some(1.0),
            shuffle_seed: Some(0),
        }
    }
}

/// What [`Sft`] did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SftReport {
    /// Mean response-token cross-entropy of each step's batch (before the step).
    pub losses: Vec<f64>,
    /// Examples seen.
    pub examples: usize,
    /// Wall time of the training loop in seconds.
    pub seconds: f64,
}

/// Fine-tunes `model` (whose variables are `varmap`) on `data`, rendered by `codec`;
/// returns the report and the optimiser (whose [`master_varmap`](AdamW::master_varmap)
/// holds the f32 weights of a bf16 model).
fn train(
    model: &Model,
    varmap: &VarMap,
    codec: &ChatCodec,
    data: &[SftExample],
    o: &SftOptions,
) -> Result<(SftReport, AdamW)> {
    let micro = check_batch(o.batch_size, o.micro_batch_size, "sft")?;
    if data.is_empty() {
        return Err(Error::Input("sft: no training examples".into()));
    }
    let mut opt = AdamW::new(
        varmap,
        OptimConfig {
            max_grad_norm: o.max_grad_norm,
            ..OptimConfig::new(o.lr)
        },
    )?;
    let device = model_device(varmap);
    let (start, mut losses) = (Instant::now(), Vec::new());
    let per_epoch = data.len().div_ceil(o.batch_size.max(1)) as u64;
    crate::progress::set_length(per_epoch * o.epochs as u64, 0);
    for epoch in 0..o.epochs {
        let idx = order(
            data.len(),
            o.shuffle_seed.map(|s| s.wrapping_add(epoch as u64)),
        );
        for batch in idx.chunks(o.batch_size) {
            crate::progress::inc();
            let encoded = batch
                .iter()
                .map(|&i| {
                    codec
                        .exchange_ids(&data[i].prompt, &data[i].response)
                        .map_err(|e| Error::Input(format!("sft example {i}: {e}")))
                })
                .collect::<Result<Vec<_>>>()?;
            let tokens: usize = encoded.iter().map(|(_, r)| r.len()).sum();
            let mut loss_sum: Option<Tensor> = None;
            for chunk in encoded.chunks(micro) {
                let (p, r): (Vec<_>, Vec<_>) = chunk.iter().cloned().unzip();
                let seq = SequenceBatch::new(&p, &r, codec.pad, &device)?;
                // Summed NLL of this micro-batch over the batch's token count: the
                // micro-batch losses add up to the batch's token-mean cross-entropy.
                let loss = (token_logprobs(model, &seq)?.sum_all()?.neg()? / tokens as f64)?;
                let detached = loss.detach();
                loss_sum = Some(match loss_sum {
                    Some(acc) => (acc + detached)?,
                    None => detached,
                });
                opt.backward(&loss)?;
            }
            opt.apply()?;
            if let Some(l) = loss_sum {
                losses.push(f64::from(l.to_dtype(DType::F32)?.to_scalar::<f32>()?));
            }
        }
    }
    let report = SftReport {
        losses,
        examples: data.len() * o.epochs,
        seconds: start.elapsed().as_secs_f64(),
    };
    Ok((report, opt))
}

/// The device of a model's variables (CPU for an empty map).
pub(crate) fn model_device(varmap: &VarMap) -> Device {
    varmap
        .all_vars()
        .first()
        .map(|v| v.device().clone())
        .unwrap_or(Device::Cpu)
}

/// The SFT stage: loads the causal LM in `init_dir`, fine-tunes it on `data` and
/// saves it (Hugging Face layout: the input `config.json`, `model.safetensors`, the
/// tokenizer) into its stage directory. In bf16 AdamW keeps f32 master weights, and
/// the checkpoint is saved in f32 from them. Run it with [`super::run`].
pub struct Sft<'a> {
    /// The model to fine-tune.
    pub init_dir: &'a Path,
    /// The training examples.
    pub data: &'a [SftExample],
    /// The training settings.
    pub options: &'a SftOptions,
}

impl Stage for Sft<'_> {
    type Summary = SftReport;

    fn name(&self) -> String {
        "sft".into()
    }

    fn run(self, stage: &StageDir, rt: &Runtime) -> Result<SftReport> {
        rt.check_training_dtype()?;
        let rows = Architecture::from_file(&self.init_dir.join("config.json"))?.vocab_size();
        let (codec, cut) = ChatCodec::for_fine_tuning(self.init_dir, rows)?;
        let (ckpt, config_json) = match cut {
            Some(rows) => load_checkpoint_cut(self.init_dir, rows, rt.dtype, &rt.device)?,
            None => (
                load_checkpoint(self.init_dir, rt.dtype, &rt.device)?,
                read_config_json(self.init_dir)?,
            ),
        };
        let (report, opt) = train(&ckpt.model, &ckpt.varmap, &codec, self.data, self.options)?;
        save_policy(
            stage.path(),
            &config_json,
            &opt.master_varmap(&ckpt.varmap)?,
            &codec,
        )?;
        Ok(report)
    }
}

/// Saves `varmap` with the `config.json` value `config` and `codec`'s tokenizer into
/// `dir`.
pub fn save_policy(
    dir: &Path,
    config: &serde_json::Value,
    varmap: &VarMap,
    codec: &ChatCodec,
) -> Result<()> {
    save_checkpoint_with_json(dir, config, varmap, &SaveOptions::default())?;
    Ok(codec.tokenizer.save(dir)?)
}
