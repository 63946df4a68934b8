//! Scalar-head reward models: a causal-LM backbone (any [`CausalLm`], through
//! `forward_hidden`) plus a scalar head `score` (linear, no bias, N(0, 0.02) init) read
//! at each row's last non-pad token, as in transformers' `*ForSequenceClassification`
//! with `num_labels = 1`; and the Bradley-Terry loss with the centring term of the
//! paper's reference code. Loading lives in [`super::checkpoint`].

use crate::logprobs::SequenceBatch;
use crate::models::no_grad::param;
use crate::models::{AttentionInputs, CausalLm};
use crate::{Error, Result};
use candle_core::{DType, Tensor};
use candle_nn::{Init, VarBuilder};

/// Standard deviation of the head's normal initialisation.
pub const SCORE_INIT_STD: f64 = 0.02;

/// Weight of the centring term `(r_c + r_r)^2` in [`bradley_terry_loss`].
pub const CENTERING_COEFFICIENT: f64 = 0.01;

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
        let score = param(&self.score);
        let pooled = pooled.to_dtype(score.dtype())?;
        let scores = pooled.matmul(&score.t()?)?.squeeze(1)?;
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
    bradley_terry_loss_margin(chosen, rejected, None, centering)
}

/// [`bradley_terry_loss_with`] with a per-pair margin `m` `(pairs,)` (Llama 2, Touvron
/// et al. 2023, Eq. 2): `-log sigmoid(r_c - r_r - m) + centering (r_c + r_r)^2`, mean
/// over pairs. The loss keeps pushing a pair apart until its reward gap exceeds `m`,
/// so pairs with a larger margin are separated further. `None` is the loss without a
/// margin (the same arithmetic as before margins existed).
pub fn bradley_terry_loss_margin(
    chosen: &Tensor,
    rejected: &Tensor,
    margin: Option<&Tensor>,
    centering: f64,
) -> Result<Tensor> {
    if chosen.dims() != rejected.dims() || chosen.rank() != 1 || chosen.elem_count() == 0 {
        return Err(Error::Input(format!(
            "chosen and rejected rewards must be equal, non-empty vectors, found {:?} and {:?}",
            chosen.dims(),
            rejected.dims()
        )));
    }
    let mut diff = (chosen - rejected)?;
    if let Some(m) = margin {
        if m.dims() != chosen.dims() {
            return Err(Error::Input(format!(
                "the margins have shape {:?}, the rewards {:?}",
                m.dims(),
                chosen.dims()
            )));
        }
        let m = m.to_dtype(diff.dtype())?;
        diff = (diff - m)?;
    }
    // -log sigmoid(x) = softplus(-x) = relu(-x) + log(1 + exp(-|x|)), stable for any x.
    let nls = (diff.neg()?.relu()? + diff.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?)?;
    let center = ((chosen + rejected)?.sqr()? * centering)?;
    Ok((nls + center)?.mean_all()?)
}
