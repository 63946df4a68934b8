//! Report tables: one [`Table`] written as markdown, CSV and JSON, with
//! atomic file writes ([`write_atomic`]) that other stages reuse.

mod atomic;
mod cell;
mod error;
mod table;

pub use atomic::write_atomic;
pub use cell::{format_float, Cell, DEFAULT_PRECISION};
pub use error::ReportError;
pub use table::Table;
