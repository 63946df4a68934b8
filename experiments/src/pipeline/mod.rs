//! The whole Section 4.1 pipeline ([`run`](mod@run)) and its TOML run config ([`config`]);
//! Section 4.2 experiments over several policies and algorithms ([`experiment`]).

pub mod config;
pub mod dry_run;
pub mod experiment;
pub mod run;
pub mod units;

pub use config::{parse_toml, RunConfig};
pub use experiment::{is_experiment, run_experiment, ExperimentConfig};
pub use run::{run, RunOptions, RunSummary};
