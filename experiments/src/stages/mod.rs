//! The training and evaluation stages of an experiment run, each a [`Stage`] (a value
//! holding its inputs and options) run alone or by the pipeline with [`run`] on a
//! [`Runtime`]: supervised fine-tuning ([`sft`]), reward-model training
//! ([`rm_train`]), policy gradient with RLOO or GRPO ([`pg`]), evaluation
//! ([`evaluate`]); and what they share: the optimiser with gradient clipping
//! ([`optim`]), resumable checkpoints ([`checkpoint`]), reward functions ([`rewards`]), advantages ([`advantages`]) and
//! batching of chat-formatted text ([`batches`]). The Section 4.1 pipeline's own stages:
//! preference data ([`prefdata`]), normalisation ([`normalize`]), reward-model
//! evaluation ([`rm_eval`]), and the policy evaluation hook of policy gradient
//! ([`policy_eval`]).

pub mod advantages;
pub mod batches;
pub mod checkpoint;
pub mod evaluate;
pub mod normalize;
pub mod optim;
pub mod pg;
pub mod policy_eval;
pub mod prefdata;
pub mod rewards;
pub mod rm_eval;
pub mod rm_train;
pub mod sft;
pub mod stage;

pub use stage::{run, Runtime, Stage};
