//! Reports: one [`Table`] written as markdown, CSV and JSON, a whole report as a
//! [`Document`] of typed blocks rendered to markdown, and atomic file writes
//! ([`write_atomic`]) that other stages reuse.
//!
//! ```
//! use rmteach::report::{Cell, Table};
//!
//! let mut table = Table::new("Reward models", ["name", "accuracy", "t_gamma"]);
//! table.push_row(vec!["RM 1".into(), 0.91234.into(), Cell::Missing])?;
//! assert!(table.to_markdown().contains("| RM 1 | 0.9123 | — |"));
//! assert_eq!(table.to_json()["rows"][0]["accuracy"], 0.91234);
//! # Ok::<(), rmteach::report::ReportError>(())
//! ```

mod atomic;
mod cell;
mod document;
mod error;
mod table;

pub use atomic::write_atomic;
pub use cell::{format_float, Cell, DEFAULT_PRECISION};
pub use document::{Block, Document, Inline, Placement};
pub use error::ReportError;
pub use table::Table;
