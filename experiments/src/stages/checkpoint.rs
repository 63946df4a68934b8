//! Resumable training state inside a stage directory: the weights, the optimiser's
//! moments and step count, and where the stage stood (update count, seed, options).
//!
//! Layout: `<stage>/ckpt/update-NNNNNNNN/{policy,optimizer}.safetensors` and
//! `<stage>/ckpt/LATEST.json`, written last and atomically, naming the complete
//! checkpoint. Older checkpoint directories are removed once `LATEST.json` moved on,
//! so a kill at any moment leaves `LATEST.json` pointing at a complete checkpoint.

use super::optim::AdamW;
use crate::hf::{load_into_varmap, save_varmap};
use crate::rundir::{read_json, write_json, StageDir};
use crate::{Error, Result};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where a stage stood at a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// Updates finished (the next update's 0-based index).
    pub update: u64,
    /// The optimiser's step count.
    pub optimizer_step: u64,
    /// The stage's seed (every random draw derives from it and the update index).
    pub seed: u64,
    /// The options the stage ran with (a resume must use the same).
    pub options: serde_json::Value,
}

#[derive(Serialize, Deserialize)]
struct Latest {
    dir: String,
    state: TrainState,
}

const CKPT_DIR: &str = "ckpt";
const LATEST: &str = "LATEST.json";
const WEIGHTS: &str = "policy.safetensors";
const OPTIMIZER: &str = "optimizer.safetensors";

fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Saves `varmap`, `opt` and `state` as the stage's latest checkpoint.
pub fn save(stage: &StageDir, varmap: &VarMap, opt: &AdamW, state: &TrainState) -> Result<()> {
    let root = stage.file(CKPT_DIR);
    let name = format!("update-{:08}", state.update);
    let dir = root.join(&name);
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    save_varmap(varmap, &dir.join(WEIGHTS))?;
    opt.save_state(&dir.join(OPTIMIZER))?;
    write_json(
        &root.join(LATEST),
        &Latest {
            dir: name.clone(),
            state: state.clone(),
        },
    )?;
    for entry in std::fs::read_dir(&root).map_err(io(&root))? {
        let path = entry.map_err(io(&root))?.path();
        let stale = path.is_dir()
            && path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("update-") && *n != *name);
        if stale {
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// Restores the stage's latest checkpoint into `varmap` and `opt`; `None` when the
/// stage has none. Fails when `options` differ from the checkpoint's once `upgrade`
/// has rewritten those in today's spelling (a stage whose options changed spelling
/// keeps resuming old checkpoints).
pub fn load(
    stage: &StageDir,
    varmap: &VarMap,
    opt: &mut AdamW,
    options: &serde_json::Value,
    upgrade: fn(serde_json::Value) -> serde_json::Value,
) -> Result<Option<TrainState>> {
    let latest_path = stage.file(CKPT_DIR).join(LATEST);
    if !latest_path.exists() {
        return Ok(None);
    }
    let root = stage.file(CKPT_DIR);
    // A checkpoint that cannot be read (a damaged disk, a hand edit) is reported with
    // the way out: starting the stage over.
    let unreadable = |e: Error| {
        Error::Input(format!(
            "cannot resume from the checkpoint in {}: {}; delete {} to restart this \
             stage from its beginning",
            root.display(),
            e.detail(),
            root.display()
        ))
    };
    let latest: Latest = read_json(&latest_path).map_err(unreadable)?;
    if latest.dir.contains('/') || latest.dir.contains('\\') || latest.dir.starts_with('.') {
        return Err(unreadable(Error::Input(format!(
            "{}: field `dir`: `{}` is not a plain name",
            latest_path.display(),
            latest.dir
        ))));
    }
    if &upgrade(latest.state.options.clone()) != options {
        return Err(Error::Input(format!(
            "{}: the checkpoint was taken with other options ({}); resume with the same options or start a new stage directory",
            latest_path.display(),
            latest.state.options
        )));
    }
    let dir: PathBuf = root.join(&latest.dir);
    load_into_varmap(varmap, &[dir.join(WEIGHTS)]).map_err(unreadable)?;
    opt.load_state(&dir.join(OPTIMIZER)).map_err(unreadable)?;
    if opt.step_count() != latest.state.optimizer_step {
        return Err(unreadable(Error::Input(format!(
            "{}: optimiser step {} but the state says {}",
            dir.display(),
            opt.step_count(),
            latest.state.optimizer_step
        ))));
    }
    Ok(Some(latest.state))
}
