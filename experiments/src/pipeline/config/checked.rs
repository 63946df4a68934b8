//! [`Checked`]: a config that passed its checks, the only kind the runners take.
//!
//! A config is checked once, where it is finished: [`RunConfig::from_table`] (and the
//! readers built on it) check what they parse; code that builds or edits a config
//! (tests, `exp run --dry-run`, the levers experiment) calls
//! [`RunConfig::validate`] where it is done editing. [`crate::pipeline::run::run_with`]
//! and [`crate::pipeline::run_experiment`] take a `Checked` config as it is and check
//! nothing again. A `Checked` config derefs to the config but cannot be changed in
//! place: edit its [`into_inner`](Checked::into_inner) and validate that again.
//!
//! So an unchecked or edited config cannot reach the runner:
//!
//! ```compile_fail,E0308
//! use rmteach_experiments::pipeline::{run::run_with, RunConfig, RunOptions};
//! # fn f(text: &str, runs: &std::path::Path) -> rmteach_experiments::Result<()> {
//! let mut c = RunConfig::from_toml_str(text, "run.toml")?.into_inner();
//! c.pg.k = 1;
//! run_with(&c, runs, &RunOptions::default())?; // a RunConfig is not a Checked<RunConfig>
//! # Ok(()) }
//! ```
//!
//! ```compile_fail,E0594
//! use rmteach_experiments::pipeline::RunConfig;
//! # fn f(text: &str) -> rmteach_experiments::Result<()> {
//! let mut c = RunConfig::from_toml_str(text, "run.toml")?;
//! c.pg.k = 1; // no DerefMut: a checked config is read-only
//! # Ok(()) }
//! ```
//!
//! [`RunConfig::from_table`]: super::RunConfig::from_table
//! [`RunConfig::validate`]: super::RunConfig::validate

use crate::Result;
use serde::Serialize;
use std::ops::Deref;

/// A config's checks: every value a stage or the runner would refuse later, reported
/// as an error naming `file`, the dotted field and the fix.
pub trait Check {
    /// Checks every value; `file` names the config in errors.
    fn check(&self, file: &str) -> Result<()>;
}

/// A `T` that passed [`Check::check`]; made only by [`Checked::new`] (which checks),
/// read through `Deref`, changed only by taking it out ([`Checked::into_inner`]) and
/// checking it again.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<T>(T);

impl<T: Check> Checked<T> {
    /// Checks `value` (`file` names it in errors) and wraps it.
    pub fn new(value: T, file: &str) -> Result<Self> {
        value.check(file)?;
        Ok(Self(value))
    }
}

impl<T> Checked<T> {
    /// The config, to edit (and check again with [`Checked::new`]).
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Deref for Checked<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> AsRef<T> for Checked<T> {
    fn as_ref(&self) -> &T {
        &self.0
    }
}

/// Serialises as the config itself (a run's `config.json`).
impl<T: Serialize> Serialize for Checked<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}
