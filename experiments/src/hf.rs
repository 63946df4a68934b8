//! Hugging Face model I/O: safetensors checkpoints (single file or sharded with an
//! index) to and from a [`candle_nn::VarMap`].

pub mod weights;

pub use weights::{checkpoint_files, load_into_varmap, save_varmap, LoadReport};
