//! Hugging Face model I/O: safetensors checkpoints (single file or sharded with an
//! index) to and from a [`candle_nn::VarMap`], and checkpoint directories as models.

pub mod checkpoint;
pub mod weights;

pub use checkpoint::{load_checkpoint, Checkpoint};
pub use weights::{checkpoint_files, load_into_varmap, save_varmap, LoadReport};
