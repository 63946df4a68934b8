//! Thin drivers around `ode_solvers`' Dopri5 and Dop853.

use nalgebra::DVector;
use ode_solvers::dop_shared::{OutputType, System};
use ode_solvers::{Dop853, Dopri5};
use serde::{Deserialize, Serialize};

use super::VectorField;
use crate::{Result, TheoryError};

/// The explicit Runge-Kutta pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// Dormand-Prince 5(4).
    Dopri5,
    /// Dormand-Prince 8(5,3).
    #[default]
    Dop853,
}

impl std::str::FromStr for Method {
    type Err = TheoryError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "dopri5" | "rk45" => Ok(Method::Dopri5),
            "dop853" => Ok(Method::Dop853),
            other => Err(TheoryError::invalid(
                "method",
                format!("unknown method `{other}`: use dopri5 or dop853"),
            )),
        }
    }
}

/// Method and tolerances of one integration.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct SolverConfig {
    /// The Runge-Kutta pair.
    pub method: Method,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Largest number of steps before giving up.
    pub max_steps: u32,
}

impl Default for SolverConfig {
    fn default() -> Self {
        Self {
            method: Method::Dop853,
            rtol: 1e-10,
            atol: 1e-12,
            max_steps: 1_000_000,
        }
    }
}

impl SolverConfig {
    /// The same method with other tolerances.
    pub fn with_tol(self, rtol: f64, atol: f64) -> Self {
        Self { rtol, atol, ..self }
    }

    /// Checks the tolerances.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("rtol", self.rtol), ("atol", self.atol)] {
            if !(v > 0.0 && v < 1.0) {
                return Err(TheoryError::invalid(
                    name,
                    format!("must be in (0, 1), got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// Called after every accepted step with `(t, y)`; returning `true` stops the integration.
pub(crate) type StepHook<'a> = &'a mut dyn FnMut(f64, &[f64]) -> bool;

/// Adapter from a [`VectorField`] (plus an optional step hook) to `ode_solvers::System`.
struct OdeSystem<'f, 'h> {
    field: &'f dyn VectorField,
    hook: Option<StepHook<'h>>,
}

impl System<f64, DVector<f64>> for OdeSystem<'_, '_> {
    fn system(&self, _t: f64, y: &DVector<f64>, dy: &mut DVector<f64>) {
        self.field.eval(y.as_slice(), dy.as_mut_slice());
    }
    fn solout(&mut self, t: f64, y: &DVector<f64>, _dy: &DVector<f64>) -> bool {
        match self.hook.as_mut() {
            Some(hook) => hook(t, y.as_slice()),
            None => false,
        }
    }
}

/// What one solver run ended with.
pub(crate) struct SolverRun {
    pub t: f64,
    pub y: Vec<f64>,
    pub rhs_evals: u64,
}

/// Integrates from `(t0, y0)` to `t1` (or until `hook` asks to stop).
pub(crate) fn run(
    field: &dyn VectorField,
    hook: Option<StepHook<'_>>,
    t0: f64,
    t1: f64,
    y0: &[f64],
    cfg: &SolverConfig,
) -> Result<SolverRun> {
    cfg.validate()?;
    let sys = OdeSystem { field, hook };
    let y0 = DVector::from_column_slice(y0);
    let h_max = t1 - t0;
    macro_rules! drive {
        ($solver:expr) => {{
            let mut solver = $solver;
            let stats = solver
                .integrate()
                .map_err(|e| TheoryError::Integration(e.to_string()))?;
            let t = *solver
                .x_out()
                .last()
                .expect("solver records the initial point");
            let y = solver
                .y_out()
                .last()
                .expect("solver records the initial point")
                .as_slice()
                .to_vec();
            SolverRun {
                t,
                y,
                rhs_evals: stats.num_eval as u64,
            }
        }};
    }
    let out = match cfg.method {
        Method::Dopri5 => drive!(Dopri5::from_param(
            sys,
            t0,
            t1,
            h_max,
            y0,
            cfg.rtol,
            cfg.atol,
            0.9,
            0.04,
            0.2,
            10.0,
            h_max,
            0.0,
            cfg.max_steps,
            1000,
            OutputType::Sparse,
        )),
        Method::Dop853 => drive!(Dop853::from_param(
            sys,
            t0,
            t1,
            h_max,
            y0,
            cfg.rtol,
            cfg.atol,
            0.9,
            0.0,
            0.333,
            6.0,
            h_max,
            0.0,
            cfg.max_steps,
            1000,
            OutputType::Sparse,
        )),
    };
    if out.y.iter().any(|v| !v.is_finite()) {
        return Err(TheoryError::Integration(format!(
            "state became non-finite at t = {}",
            out.t
        )));
    }
    Ok(out)
}

/// The state at `t1` of the flow started at `(t0, y0)`, with the number of
/// right-hand-side evaluations it took.
pub fn integrate_to(
    field: &dyn VectorField,
    t0: f64,
    t1: f64,
    y0: &[f64],
    cfg: &SolverConfig,
) -> Result<(Vec<f64>, u64)> {
    if t1 == t0 {
        return Ok((y0.to_vec(), 0));
    }
    let r = run(field, None, t0, t1, y0, cfg)?;
    Ok((r.y, r.rhs_evals))
}
