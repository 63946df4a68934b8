//! Reward models: a causal-LM backbone (any [`CausalLm`], through `forward_hidden`)
//! plus a scalar head `score` (linear, no bias, N(0, 0.02) init) read at each row's
//! last non-pad token, as in transformers' `LlamaForSequenceClassification` and
//! `GPTNeoXForSequenceClassification` with `num_labels = 1`; the Bradley-Terry loss
//! with the centring term of the paper's reference code; and loading of Hugging Face
//! sequence-classification checkpoints (backbone under `model.` / `gpt_neox.`, head
//! `score.weight`, no language-model head).

use crate::hf::{checkpoint_files, load_checkpoint, load_into_varmap, tensor_names, LoadReport};
use crate::logprobs::SequenceBatch;
use crate::models::{AttentionInputs, CausalLm, Model, ModelConfig, SeededVarMap};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use std::path::Path;

/// Standard deviation of the head's normal initialisation.
pub const SCORE_INIT_STD: f64 = 0.02;

/// Weight of the centring term `(r_c + r_r)^2` in [`bradley_terry_loss`].
pub const CENTERING_COEFFICIENT: f64 = 0.01;

/// Names of untied language-model heads, which a sequence-classification checkpoint
/// does not contain (`LlamaForCausalLM`, `GPTNeoXForCausalLM`).
const LM_HEAD_NAMES: [&str; 2] = ["lm_head.weight", "embed_out.weight"];

/// A backbone with a scalar head on the final hidden state of the last real token.
#[derive(Debug, Clone)]
pub struct RewardModel<M> {
    backbone: M,
    score: Tensor,
}

impl<M: CausalLm> RewardModel<M> {
    /// Adds the head `score.weight` `(1, hidden_size)` from `vb` (at the checkpoint
    /// root; created with N(0, [`SCORE_INIT_STD`]) when missing) to `backbone`.
    pub fn new(backbone: M, hidden_size: usize, vb: VarBuilder) -> Result<Self> {
        let init = Init::Randn {
            mean: 0.0,
            stdev: SCORE_INIT_STD,
        };
        let score = vb
            .pp("score")
            .get_with_hints((1, hidden_size), "weight", init)?;
        Ok(Self { backbone, score })
    }

    /// The backbone.
    pub fn backbone(&self) -> &M {
        &self.backbone
    }

    /// The head's weight `(1, hidden)`.
    pub fn score_weight(&self) -> &Tensor {
        &self.score
    }

    /// Rewards `(batch,)` f32 for `input_ids` `(batch, time)` u32. `attention_mask`
    /// `(batch, time)` is 1 for real tokens and 0 for padding, left or right (`None`:
    /// no padding); each row is scored at its rightmost real token. Differentiable.
    pub fn forward(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Tensor> {
        if input_ids.dtype() != DType::U32 || input_ids.rank() != 2 {
            return Err(Error::Input(format!(
                "reward model input ids must be (batch, time) u32, found {:?} {:?}",
                input_ids.dims(),
                input_ids.dtype()
            )));
        }
        let (b, t) = input_ids.dims2()?;
        let last = last_token_indices(attention_mask, b, t)?;
        let flat: Vec<u32> = last
            .iter()
            .enumerate()
            .map(|(row, &i)| (row * t + i) as u32)
            .collect();
        let index = Tensor::from_vec(flat, b, input_ids.device())?;
        self.scores_at(input_ids, attention_mask, &index)
    }

    /// Rewards read at the flat positions `index` `(batch,)` u32 (`row * time + col`).
    fn scores_at(
        &self,
        input_ids: &Tensor,
        attention_mask: Option<&Tensor>,
        index: &Tensor,
    ) -> Result<Tensor> {
        let (b, t) = input_ids.dims2()?;
        let device = input_ids.device();
        let inputs = AttentionInputs::new(attention_mask, b, t, 0, DType::F32, device)?;
        let hidden = self.backbone.forward_hidden(input_ids, &inputs, None)?;
        let h = hidden.dim(2)?;
        let pooled = hidden.reshape((b * t, h))?.index_select(index, 0)?;
        let pooled = pooled.to_dtype(self.score.dtype())?;
        let scores = pooled.matmul(&self.score.t()?)?.squeeze(1)?;
        Ok(scores.to_dtype(DType::F32)?)
    }

    /// Rewards `(batch,)` of the prompt-plus-response rows of `batch` (each scored at
    /// its last response token, or its last prompt token when the response is empty).
    ///
    /// Unlike [`forward`](Self::forward), which checks an arbitrary mask on the host,
    /// this finds each row's last real token on the device: a [`SequenceBatch`] has a
    /// non-empty prompt in every row, so no row is all padding, and nothing is copied
    /// back before the forward pass (training and scoring loops stay asynchronous).
    pub fn forward_batch(&self, batch: &SequenceBatch) -> Result<Tensor> {
        let (b, t) = batch.input_ids.dims2()?;
        let device = batch.input_ids.device();
        let real = batch
            .attention_mask
            .to_dtype(DType::F32)?
            .ne(0f32)?
            .to_dtype(DType::F32)?;
        // 1 + the rightmost real column of each row (exact in f32 for b * t < 2^24).
        let cols = Tensor::arange(1f32, t as f32 + 1.0, device)?.reshape((1, t))?;
        let last_plus_one = real.broadcast_mul(&cols)?.max(1)?;
        let rows = (Tensor::arange(0f32, b as f32, device)? * t as f64)?;
        let index = ((rows + last_plus_one)? - 1.0)?.to_dtype(DType::U32)?;
        self.scores_at(&batch.input_ids, Some(&batch.attention_mask), &index)
    }

    /// [`forward`](Self::forward) copied to the host.
    pub fn score(&self, input_ids: &Tensor, attention_mask: Option<&Tensor>) -> Result<Vec<f32>> {
        Ok(self.forward(input_ids, attention_mask)?.to_vec1::<f32>()?)
    }
}

/// The column of each row's rightmost real token in a `(batch, time)` mask (`time - 1`
/// for every row when `mask` is `None`). Fails on a shape mismatch or an all-pad row.
pub fn last_token_indices(mask: Option<&Tensor>, batch: usize, time: usize) -> Result<Vec<usize>> {
    let Some(mask) = mask else {
        return Ok(vec![time.saturating_sub(1); batch]);
    };
    if mask.dims() != [batch, time] {
        return Err(Error::Input(format!(
            "attention mask has shape {:?}, expected [{batch}, {time}]",
            mask.dims()
        )));
    }
    mask.to_dtype(DType::F32)?
        .to_vec2::<f32>()?
        .iter()
        .enumerate()
        .map(|(row, m)| {
            m.iter().rposition(|&x| x != 0.0).ok_or_else(|| {
                Error::Input(format!("row {row} of the attention mask has no real token"))
            })
        })
        .collect()
}

/// Bradley-Terry loss with centring, mean over pairs:
/// `-log sigmoid(r_c - r_r) + 0.01 (r_c + r_r)^2` for rewards `chosen`, `rejected`
/// `(pairs,)`.
pub fn bradley_terry_loss(chosen: &Tensor, rejected: &Tensor) -> Result<Tensor> {
    bradley_terry_loss_with(chosen, rejected, CENTERING_COEFFICIENT)
}

/// [`bradley_terry_loss`] with centring weight `centering` (0 for the plain loss).
pub fn bradley_terry_loss_with(
    chosen: &Tensor,
    rejected: &Tensor,
    centering: f64,
) -> Result<Tensor> {
    if chosen.dims() != rejected.dims() || chosen.rank() != 1 || chosen.elem_count() == 0 {
        return Err(Error::Input(format!(
            "chosen and rejected rewards must be equal, non-empty vectors, found {:?} and {:?}",
            chosen.dims(),
            rejected.dims()
        )));
    }
    let diff = (chosen - rejected)?;
    // -log sigmoid(x) = softplus(-x) = relu(-x) + log(1 + exp(-|x|)), stable for any x.
    let nls = (diff.neg()?.relu()? + diff.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?;
    let center = ((chosen + rejected)?.sqr()? * centering)?;
    Ok((nls + center)?.mean_all()?)
}

/// The hidden size of either architecture.
pub fn hidden_size(config: &ModelConfig) -> usize {
    match config {
        ModelConfig::GptNeox(c) => c.hidden_size,
        ModelConfig::Llama(c) => c.hidden_size,
    }
}

/// A reward model loaded from (or initialised over) a checkpoint directory.
pub struct RewardCheckpoint {
    /// The parsed `config.json`.
    pub config: ModelConfig,
    /// Every variable, the head's `score.weight` included (pass `varmap.all_vars()` to
    /// an optimiser; a causal checkpoint's unused LM head is in it too).
    pub varmap: VarMap,
    /// The reward model.
    pub model: RewardModel<Model>,
    /// Tensors of the files that the model does not use.
    pub report: LoadReport,
}

/// A reward model with freshly initialised (seeded) weights in `varmap`.
pub fn new_reward_model(
    config: &ModelConfig,
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<RewardModel<Model>> {
    let vb = SeededVarMap::new(varmap.clone(), seed).var_builder(dtype, device);
    let backbone = Model::new(config, vb.clone())?;
    RewardModel::new(backbone, hidden_size(config), vb)
}

/// Loads a Hugging Face `*ForSequenceClassification` checkpoint from `dir` (backbone
/// under `model.` or `gpt_neox.`, head `score.weight` of shape `(1, hidden)`). An
/// untied LM head is not required (it is dropped from the variables when the files
/// lack it); every other tensor must be present and well shaped.
pub fn load_reward_checkpoint(
    dir: &Path,
    dtype: DType,
    device: &Device,
) -> Result<RewardCheckpoint> {
    let config = ModelConfig::from_file(&dir.join("config.json"))?;
    crate::reward_load::check_single_label(&dir.join("config.json"))?;
    let files = checkpoint_files(dir)?;
    let varmap = VarMap::new();
    // Every kept variable is overwritten by the load: the initial values never matter.
    let vb = VarBuilder::from_varmap(&varmap, dtype, device);
    let backbone = Model::new(&config, vb.clone())?;
    let model = RewardModel::new(backbone, hidden_size(&config), vb)?;
    let present = tensor_names(&files)?;
    {
        let mut data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Input("variable map lock poisoned".into()))?;
        for name in LM_HEAD_NAMES {
            if !present.contains(name) {
                data.remove(name);
            }
        }
    }
    let report = load_into_varmap(&varmap, &files)?;
    Ok(RewardCheckpoint {
        config,
        varmap,
        model,
        report,
    })
}

/// Loads a causal-LM checkpoint (for example the SFT policy) from `dir` and adds a new
/// head initialised from `seed`: the paper's reward-model initialisation.
pub fn reward_model_from_causal_checkpoint(
    dir: &Path,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> Result<RewardCheckpoint> {
    let ckpt = load_checkpoint(dir, dtype, device)?;
    let vb = SeededVarMap::new(ckpt.varmap.clone(), seed).var_builder(dtype, device);
    let model = RewardModel::new(ckpt.model, hidden_size(&ckpt.config), vb)?;
    Ok(RewardCheckpoint {
        config: ckpt.config,
        varmap: ckpt.varmap,
        model,
        report: ckpt.report,
    })
}
