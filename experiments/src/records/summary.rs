//! `summary.json`: the wall time of each stage of one run.
//!
//! ```json
//! {"name": "toy-4.1", "dir": "runs/toy-4.1",
//!  "stages": [{"stage": "sft", "seconds": 3.2, "skipped": false}, ...],
//!  "total_seconds": 210.4, "finished": true}
//! ```

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// File name of the run summary inside a run directory.
pub const SUMMARY_FILE: &str = "summary.json";

/// Wall time of one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTime {
    /// The stage's directory under the run directory.
    pub stage: String,
    /// Seconds spent (loading included).
    pub seconds: f64,
    /// Whether it was already complete.
    pub skipped: bool,
}

/// What one call of the run did (`summary.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// The run's name.
    pub name: String,
    /// The run directory.
    pub dir: PathBuf,
    /// Every stage in order.
    pub stages: Vec<StageTime>,
    /// Wall time of the whole call.
    pub total_seconds: f64,
    /// False when stopped early (the run's `stop_after`).
    pub finished: bool,
}

impl RunSummary {
    /// A plain-text table of the stage times.
    pub fn table(&self) -> String {
        let mut s = format!("run {} in {}\n", self.name, self.dir.display());
        for t in &self.stages {
            let state = if t.skipped {
                "skipped (complete)"
            } else {
                "ran"
            };
            s.push_str(&format!(
                "  {:<32} {:>9.2} s  {state}\n",
                t.stage, t.seconds
            ));
        }
        s.push_str(&format!(
            "  {:<32} {:>9.2} s  {}\n",
            "total",
            self.total_seconds,
            if self.finished {
                "finished"
            } else {
                "stopped early"
            }
        ));
        s
    }
}
