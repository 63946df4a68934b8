//! Gradient flow: vector fields ([`field`]), the `ode_solvers` drivers ([`solver`]) and
//! threshold-crossing events located to the solver's tolerance ([`events`]).
//!
//! The three parts are kept apart in the way diffrax separates terms, solvers and
//! events: a [`VectorField`] knows nothing about integration, the solver knows nothing
//! about rewards, and an event is a level of one observed scalar.

pub mod events;
pub mod field;
mod kernels;
pub mod solver;
mod tableau;

pub use events::{
    integrate_with_events, integrate_with_events_until, Crossing, FlowOutcome, Observer, Settled,
    Threshold, Trajectory, WithRates, SETTLED_EVERY,
};
pub use field::{ProbabilityFlow, TabularKlField, TabularNpgField, VectorField};
pub use solver::{integrate_to, Method, SolverConfig};

pub(crate) use kernels::{softmax_moments, softmax_moments_rates};
