//! The verdict on a paper's finding from a 95% interval: what the findings and the
//! interaction contrasts both say.

use super::bootstrap::Interval;

/// "as in the paper" when the 95% interval lies on the paper's side of zero
/// (`paper_positive`: above), "opposite to the paper" when it lies on the other
/// side, "inconclusive" when it contains zero or is unknown.
pub fn verdict(ci: Option<Interval>, paper_positive: bool) -> &'static str {
    match ci {
        Some(i) if (paper_positive && i.above_zero()) || (!paper_positive && i.below_zero()) => {
            "as in the paper"
        }
        Some(i) if i.above_zero() || i.below_zero() => "opposite to the paper",
        Some(_) => "inconclusive: the 95% interval contains 0",
        None => "inconclusive: no interval (the run logged no per-prompt values)",
    }
}
