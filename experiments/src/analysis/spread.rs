//! The reward spread during policy gradient, from each reward's first seed's
//! `pg/<reward>/seed<k>/metrics.jsonl`: the mean within-group reward std, the share of
//! zero-std groups (which teach GRPO nothing) and the batch reward variance, per update.

use std::path::{Path, PathBuf};

use rmteach::plot::{GridPlot, LinePlot, Series};
use serde::Deserialize;

use super::error::{io_err, Result};
use super::load::RunData;
use crate::records::error::parse_record;

/// The fields of a `metrics.jsonl` record this figure reads.
#[derive(Debug, Deserialize)]
struct SpreadRecord {
    epoch: f64,
    group_reward_std: Option<f64>,
    zero_std_groups: Option<f64>,
    batch_reward_variance: Option<f64>,
}

/// `(epoch, [group std, zero-std share, batch variance])` per update of `path`
/// (records logged before the spread existed are skipped).
fn read_spread(path: &Path) -> Result<Vec<(f64, [f64; 3])>> {
    let text = std::fs::read_to_string(path).map_err(io_err(path))?;
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let r: SpreadRecord = parse_record(line, path, Some(i + 1))?;
        if let (Some(a), Some(b), Some(c)) = (
            r.group_reward_std,
            r.zero_std_groups,
            r.batch_reward_variance,
        ) {
            out.push((r.epoch, [a, b, c]));
        }
    }
    Ok(out)
}

/// Three panels against the epoch, one line per reward (its lowest seed); writes
/// `<stem>.png`/`.svg`. `None` when no run logged the spread.
///
/// # Errors
/// An unreadable or malformed `metrics.jsonl` (named), or a plotting error.
pub fn reward_spread(data: &RunData, stem: &Path) -> Result<Option<Vec<PathBuf>>> {
    let titles = [
        ("Mean within-group reward std", "std"),
        ("Share of zero-std groups", "share"),
        ("Batch reward variance", "variance"),
    ];
    let mut panels: Vec<LinePlot> = titles
        .iter()
        .map(|(t, y)| LinePlot::new(*t).x_label("epoch").y_label(*y))
        .collect();
    let mut any = false;
    for (r, seeds) in data.rewards.iter().zip(&data.seeds) {
        let Some(seed) = seeds.first() else { continue };
        let path = data
            .root
            .join("pg")
            .join(&r.name)
            .join(format!("seed{}", seed.seed))
            .join("metrics.jsonl");
        if !path.is_file() {
            continue;
        }
        let rows = read_spread(&path)?;
        if rows.is_empty() {
            continue;
        }
        any = true;
        let x: Vec<f64> = rows.iter().map(|r| r.0).collect();
        for (k, panel) in panels.iter_mut().enumerate() {
            let y = rows.iter().map(|r| r.1[k]).collect();
            panel.push(Series::new(r.name.clone(), x.clone(), y));
        }
    }
    if !any {
        return Ok(None);
    }
    let mut grid = GridPlot::new(
        format!(
            "Reward spread during policy gradient ({}; one line per reward: its first seed, \
             per update, no averaging)",
            data.policy
        ),
        3,
    );
    for p in panels {
        grid = grid.with_panel(p);
    }
    Ok(Some(grid.render(stem)?))
}
