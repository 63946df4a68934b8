//! Hugging Face model I/O: safetensors checkpoints (single file or sharded with an
//! index) to and from a [`candle_nn::VarMap`], checkpoint directories as models, and
//! saving model directories in the Hugging Face layout.

pub mod checkpoint;
pub mod save;
pub mod weights;

pub use checkpoint::{load_checkpoint, load_checkpoint_cut, require_causal_lm, Checkpoint};
pub use save::{
    read_config_json, save_checkpoint, save_checkpoint_with_json, save_random_model, save_weights,
    save_weights_except, sequence_classification_json, SaveOptions,
};
pub use weights::{
    checkpoint_files, load_into_varmap, load_into_varmap_cut, save_varmap, tensor_names,
    LoadReport, RowCut,
};
