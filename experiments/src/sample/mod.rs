//! Batched, key/value-cached generation from a [`CausalLm`](crate::models::CausalLm):
//! prompts of different lengths are left-padded (per-row positions and a finite
//! additive mask come from [`AttentionInputs`](crate::models::AttentionInputs)), each
//! step reads only the last position's logits, and the next token is chosen on the
//! model's device (greedy, or temperature sampling with one uniform per row from a
//! seeded ChaCha stream) or, with top-k / top-p, on the host. Rows stop at an
//! end-of-sequence token; finished rows are fed padding.

mod config;
mod generate;
mod output;
mod pick;

pub use config::SamplingConfig;
pub use generate::generate;
pub use output::{FinishReason, Generation};
pub use pick::{pick_token, pick_tokens, row_rng, TokenPicker};
