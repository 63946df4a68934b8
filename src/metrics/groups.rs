//! Averaging a per-group metric over groups, such as prompts (crate-private).

use super::error::{MetricsError, Result};
use super::validate;

/// Applies `metric` to every group and returns each result (checked finite), one per
/// group; failures as in [`mean_over_groups`].
pub(crate) fn per_group<T>(
    what: &'static str,
    groups: impl IntoIterator<Item = T>,
    mut metric: impl FnMut(T) -> Result<f64>,
) -> Result<Vec<f64>> {
    let out = groups
        .into_iter()
        .enumerate()
        .map(|(index, group)| {
            metric(group)
                .and_then(|v| validate::finite_output(what, v))
                .map_err(|e| e.in_group(index))
        })
        .collect::<Result<Vec<f64>>>()?;
    if out.is_empty() {
        return Err(MetricsError::Empty { what });
    }
    Ok(out)
}

/// Applies `metric` to every group and returns the mean of the results.
///
/// A failure in group `i` is reported as [`MetricsError::InGroup`] with index
/// `i`; no groups at all is [`MetricsError::Empty`] naming `what`.
pub(crate) fn mean_over_groups<T>(
    what: &'static str,
    groups: impl IntoIterator<Item = T>,
    mut metric: impl FnMut(T) -> Result<f64>,
) -> Result<f64> {
    let mut total = 0.0;
    let mut count = 0usize;
    for (index, group) in groups.into_iter().enumerate() {
        total += metric(group).map_err(|e| e.in_group(index))?;
        count += 1;
    }
    if count == 0 {
        return Err(MetricsError::Empty { what });
    }
    validate::finite_output(what, total / count as f64)
}
