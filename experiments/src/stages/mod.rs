//! The training and evaluation stages of an experiment run, each callable alone with
//! a small options struct: supervised fine-tuning ([`sft`]), reward-model training
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
