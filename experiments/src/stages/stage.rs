//! What every stage is: a value holding its inputs and options that runs into its
//! stage directory on a [`Runtime`] and returns a summary. [`run`] is the one way to
//! run a stage: a stage whose directory is complete is not rerun (its recorded
//! summary is returned); a stage that finishes is marked complete with its summary.

use crate::rundir::StageDir;
pub use crate::runtime::Runtime;
use crate::Result;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// One stage of a run.
pub trait Stage {
    /// What the stage returns and records in its completion marker.
    type Summary: Serialize + DeserializeOwned;

    /// The stage's directory under the run directory (`sft`, `rms/rm-50`, ...).
    fn name(&self) -> String;

    /// Does the work into `dir` (picking up its own partial state, if any). Does not
    /// check or write the completion marker: [`run`] does.
    fn run(self, dir: &StageDir, rt: &Runtime) -> Result<Self::Summary>;

    /// Whether `summary` finishes the stage (false: stopped early, not marked
    /// complete, resumed next time).
    fn finished(_summary: &Self::Summary) -> bool {
        true
    }
}

/// Runs `stage` in `dir` unless `dir` is complete (then returns its recorded
/// summary); marks `dir` complete when the stage finishes.
pub fn run<S: Stage>(stage: S, dir: &StageDir, rt: &Runtime) -> Result<S::Summary> {
    if let Some(done) = dir.summary::<S::Summary>()? {
        return Ok(done);
    }
    let summary = stage.run(dir, rt)?;
    if S::finished(&summary) {
        dir.complete(&summary)?;
    }
    Ok(summary)
}
