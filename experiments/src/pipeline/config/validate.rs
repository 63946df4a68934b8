//! Validation of a run config: every value a stage would reject later is reported
//! up front, naming the file, the dotted field and the fix.

use super::{Check, Checked, RunConfig, ToyWorldConfig, GROUND_TRUTH, LOW_VARIANCE};
use crate::{Error, Result};
use std::path::Path;

impl RunConfig {
    /// Checks every value a stage would reject later ([`Check`]), naming `file`, the
    /// field and the fix: the config the runner takes. Code that builds or edits a
    /// config calls this where it is done.
    pub fn validate(self, file: &str) -> Result<Checked<Self>> {
        Checked::new(self, file)
    }
}

impl Check for RunConfig {
    fn check(&self, file: &str) -> Result<()> {
        let bad = |field: &str, msg: &str| Err(Error::config(file, field, msg));
        check_dir_name(file, "name", &self.name, "")?;
        match (&self.world.toy, &self.world.paper) {
            (Some(t), None) => t.validate(file)?,
            (None, Some(_)) => {}
            _ => return bad("world", "give exactly one of [world.toy] and [world.paper]"),
        }
        let d = &self.data;
        if !(d.rm_fraction > 0.0 && d.rm_fraction < 1.0) {
            return bad(
                "data.rm_fraction",
                &format!(
                    "{} is out of range: must lie strictly between 0 and 1 (the paper: 0.8)",
                    d.rm_fraction
                ),
            );
        }
        positive(file, "data.max_tokens", d.max_tokens)?;
        if d.max_sft_examples == Some(0) {
            return bad(
                "data.max_sft_examples",
                "must be at least 1, or left out (all SFT examples)",
            );
        }
        positive(file, "sft.batch_size", self.sft.batch_size)?;
        positive(file, "sft.epochs", self.sft.epochs)?;
        micro(file, "sft", self.sft.batch_size, self.sft.micro_batch_size)?;
        rate(file, "sft.lr", self.sft.lr)?;
        clip_norm(file, "sft.max_grad_norm", self.sft.max_grad_norm)?;
        positive(
            file,
            "prefdata.max_new_tokens",
            self.prefdata.max_new_tokens,
        )?;
        positive(file, "prefdata.batch_size", self.prefdata.batch_size)?;
        let rm = &self.rm;
        if (rm.mixes.is_empty() && rm.external.is_empty()) || rm.mixes.iter().any(|&p| p > 100) {
            return bad(
                "rm.mixes",
                "must list on-policy percentages in 0..=100, e.g. [100, 75, 50, 25, 0] \
                 (may be empty when [[rm.external]] lists reward models)",
            );
        }
        self.validate_external(file)?;
        if !rm.union_with.is_empty() && !rm.mixes.contains(&100) {
            return Err(Error::config(
                file,
                "rm.union_with",
                "needs 100 in rm.mixes (the union is of on-policy pairs, mix 100)",
            ));
        }
        let mut seen = rm.mixes.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != rm.mixes.len() {
            return bad("rm.mixes", "must not repeat a percentage");
        }
        positive(file, "rm.batch_size", rm.batch_size)?;
        positive(file, "rm.epochs", rm.epochs)?;
        positive(file, "rm.score_batch_size", rm.score_batch_size)?;
        micro(file, "rm", rm.batch_size, rm.micro_batch_size)?;
        rate(file, "rm.lr", rm.lr)?;
        rate(file, "rm.margin", rm.margin)?;
        for (table, s) in [("normalize", &self.normalize), ("eval", &self.eval)] {
            positive(file, &format!("{table}.prompts"), s.prompts)?;
            if s.samples < 2 {
                return bad(
                    &format!("{table}.samples"),
                    "must be at least 2 (variance and accuracy compare samples)",
                );
            }
            positive(file, &format!("{table}.max_new_tokens"), s.max_new_tokens)?;
            positive(file, &format!("{table}.batch_size"), s.batch_size)?;
        }
        let lv = &self.low_variance;
        if !(lv.fraction >= 0.0 && lv.fraction <= 1.0) {
            return bad(
                "low_variance.fraction",
                &format!(
                    "{} is out of range: must lie in [0, 1] (the paper: 0.5)",
                    lv.fraction
                ),
            );
        }
        if !(lv.scale.is_finite() && lv.scale > 0.0) {
            return bad(
                "low_variance.scale",
                &format!(
                    "{} is out of range: must be finite and positive (the paper: 0.001)",
                    lv.scale
                ),
            );
        }
        let pg = &self.pg;
        rate(file, "pg.lr", pg.lr)?;
        if pg.seeds.is_empty() {
            return bad("pg.seeds", "must list at least one seed, e.g. [0, 1, 2]");
        }
        if !(pg.epochs.is_finite() && pg.epochs > 0.0) {
            return bad(
                "pg.epochs",
                &format!(
                    "{} is out of range: must be finite and positive (the paper: 6)",
                    pg.epochs
                ),
            );
        }
        if pg.k < 2 {
            return bad(
                "pg.k",
                "must be at least 2 (samples per prompt; the paper's 2)",
            );
        }
        if pg.batch_size == 0 || pg.batch_size % pg.k != 0 {
            return bad(
                "pg.batch",
                &format!("must be a positive multiple of pg.k (= {})", pg.k),
            );
        }
        if pg.mini_batches == 0 || pg.batch_size % pg.mini_batches != 0 {
            return bad(
                "pg.mini_batches",
                &format!("must be positive and divide pg.batch (= {})", pg.batch_size),
            );
        }
        micro(
            file,
            "pg",
            pg.batch_size / pg.mini_batches,
            pg.micro_batch_size,
        )?;
        positive(file, "pg.max_new_tokens", pg.max_new_tokens)?;
        if pg.checkpoint_every == 0 {
            return bad("pg.checkpoint_every", "must be positive");
        }
        rate(file, "pg.beta", pg.beta)?;
        if !(pg.reward_scale.is_finite() && pg.reward_scale > 0.0) {
            return bad("pg.reward_scale", "must be finite and > 0 (1: off)");
        }
        if pg.select_quantile.is_some_and(|q| !(0.0..1.0).contains(&q)) {
            return bad(
                "pg.select_quantile",
                "must be in [0, 1) (0.5 keeps the upper half), or left out (every prompt)",
            );
        }
        // Anything else the stage itself would refuse.
        if let Err(e) = pg.total_updates(1) {
            return bad("pg", &e.to_string());
        }
        if let Some(r) = &pg.rewards {
            let known = self.reward_names();
            if let Some(x) = r.iter().find(|x| !known.contains(x)) {
                return bad(
                    "pg.rewards",
                    &format!("unknown reward `{x}`; known: {}", known.join(", ")),
                );
            }
        }
        Ok(())
    }
}

impl RunConfig {
    /// Checks every path the run reads before anything is written: the files of a
    /// `[world.paper]` exist, and every `[[rm.external]]` directory (`from_run` under
    /// `runs_root`) holds a `config.json`.
    pub fn check_paths(&self, file: &str, runs_root: &Path) -> Result<()> {
        self.check_paper_paths(file)?;
        self.check_external_paths(file, runs_root)
    }

    /// Checks that the files of a `[world.paper]` exist.
    pub fn check_paper_paths(&self, file: &str) -> Result<()> {
        if self.dry_run.is_some() {
            // A dry run's `world/` stage writes stand-ins for them.
            return Ok(());
        }
        if let Some(p) = &self.world.paper {
            for (field, path) in [
                ("world.paper.model", &p.model),
                ("world.paper.sft_data", &p.sft_data),
                ("world.paper.train_prefs", &p.train_prefs),
                ("world.paper.ground_truth", &p.ground_truth),
            ] {
                if !path.exists() {
                    return Err(Error::config(
                        file,
                        field,
                        format!("{} does not exist; fill in the local path", path.display()),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Checks that every `[[rm.external]]` directory (`from_run` under `runs_root`)
    /// holds a `config.json`.
    pub fn check_external_paths(&self, file: &str, runs_root: &Path) -> Result<()> {
        for (i, e) in self.rm.external.iter().enumerate() {
            if self
                .dry_run
                .as_ref()
                .is_some_and(|d| d.external.contains_key(&e.name))
            {
                continue;
            }
            let dir = e.resolve(runs_root);
            if dir.join("config.json").exists() {
                continue;
            }
            let (field, hint) = if e.from_run.is_some() {
                ("from_run", "run the experiment that trains it first")
            } else {
                (
                    "dir",
                    "fill in the local path of the reward model (another run's \
                     reward model: run that run first)",
                )
            };
            return Err(Error::config(
                file,
                &format!("rm.external[{i}].{field}"),
                format!("{} holds no config.json; {hint}", dir.display()),
            ));
        }
        Ok(())
    }

    /// Checks `[[rm.external]]`: names unique and free, exactly one of `dir`/`from_run`.
    fn validate_external(&self, file: &str) -> Result<()> {
        let taken: Vec<String> = self.rm.mixes.iter().map(|&p| Self::rm_name(p)).collect();
        let mut seen = Vec::new();
        for (i, e) in self.rm.external.iter().enumerate() {
            let field = |f: &str| format!("rm.external[{i}].{f}");
            check_dir_name(file, &field("name"), &e.name, "@")?;
            if taken.contains(&e.name)
                || [GROUND_TRUTH, LOW_VARIANCE].contains(&e.name.as_str())
                || seen.contains(&&e.name)
            {
                return Err(Error::config(
                    file,
                    &field("name"),
                    format!("`{}` is already a reward of this run; rename it", e.name),
                ));
            }
            seen.push(&e.name);
            if e.dir.is_some() == e.from_run.is_some() {
                return Err(Error::config(
                    file,
                    &field("dir"),
                    "give exactly one of `dir` (a reward-model directory) and `from_run` \
                     (a path under the runs root)",
                ));
            }
        }
        Ok(())
    }
}

impl ToyWorldConfig {
    pub(super) fn validate(&self, file: &str) -> Result<()> {
        for (f, v) in [
            ("sft", self.sft),
            ("train_prefs", self.train_prefs),
            ("hidden_size", self.hidden_size),
            ("num_hidden_layers", self.num_hidden_layers),
            ("num_attention_heads", self.num_attention_heads),
            ("intermediate_size", self.intermediate_size),
            ("max_position_embeddings", self.max_position_embeddings),
        ] {
            positive(file, &format!("world.toy.{f}"), v)?;
        }
        let longest = crate::toy::longest_exchange_tokens()?;
        if self.max_position_embeddings < longest {
            return Err(Error::config(
                file,
                "world.toy.max_position_embeddings",
                format!(
                    "{} is shorter than the toy world's longest prompt and response \
                     ({longest} tokens); use at least {longest}",
                    self.max_position_embeddings
                ),
            ));
        }
        if self.train_prefs < 10 {
            return Err(Error::config(
                file,
                "world.toy.train_prefs",
                "must be at least 10 (both the RM and the RLHF split need pairs)",
            ));
        }
        if !(self.offpolicy_gap >= 0.0 && self.offpolicy_gap < 1.0) {
            return Err(Error::config(
                file,
                "world.toy.offpolicy_gap",
                "must lie in [0, 1) (0: the same off-policy quality for every prompt)",
            ));
        }
        if self.hidden_size % (2 * self.num_attention_heads) != 0 {
            return Err(Error::config(
                file,
                "world.toy.hidden_size",
                "must be a multiple of 2 * num_attention_heads (even rotary head width)",
            ));
        }
        Ok(())
    }
}

/// Checks that `name` is one plain directory name under the runs root: non-empty,
/// not starting with `.` (so neither `.` nor `..`), and made of ASCII letters, digits,
/// `-`, `_`, `.` and the characters of `extra` (no `/`, `\`, or absolute paths), so
/// nothing it names can lie outside `--runs`.
pub(crate) fn check_dir_name(file: &str, field: &str, name: &str, extra: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c) || extra.contains(c));
    if ok {
        return Ok(());
    }
    let extra: String = extra.chars().map(|c| format!(", `{c}`")).collect();
    Err(Error::config(
        file,
        field,
        format!(
            "`{name}` is not a directory name: use a non-empty name of letters, digits, \
             `-`, `_`, `.`{extra}, not starting with `.` (no `/`, so nothing is written \
             outside --runs)"
        ),
    ))
}

/// Refuses a zero count.
fn positive(file: &str, field: &str, v: usize) -> Result<()> {
    if v == 0 {
        return Err(Error::config(file, field, "must be positive"));
    }
    Ok(())
}

fn rate(file: &str, field: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v >= 0.0) {
        return Err(Error::config(
            file,
            field,
            format!("{v} is out of range: must be finite and >= 0"),
        ));
    }
    Ok(())
}

fn clip_norm(file: &str, field: &str, v: Option<f64>) -> Result<()> {
    match v {
        Some(c) if !(c.is_finite() && c > 0.0) => Err(Error::config(
            file,
            field,
            format!("{c} is out of range: must be finite and > 0 (1.0), or left out (no clipping)"),
        )),
        _ => Ok(()),
    }
}

fn micro(file: &str, table: &str, batch: usize, m: Option<usize>) -> Result<()> {
    match m {
        Some(m) if m == 0 || m > batch => Err(Error::config(
            file,
            &format!("{table}.micro_batch_size"),
            format!("must be in 1..={batch} (the batch per step), or left out"),
        )),
        _ => Ok(()),
    }
}

/// The dotted key at the error's position, found from the table header above it and
/// the `key =` on its line (best effort; `None` when the error has no position).
pub(super) fn toml_field(text: &str, e: &toml::de::Error) -> Option<String> {
    let start = e.span()?.start.min(text.len());
    let before = &text[..start];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let table = before[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    // An unknown field's message names it; otherwise the key of the line.
    let key = unknown_field(e.message()).or_else(|| {
        let (k, _) = line.split_once('=')?;
        Some(k.trim().to_string())
    });
    match (table, key) {
        (Some(t), Some(k)) if !line.trim_start().starts_with('[') => Some(format!("{t}.{k}")),
        (_, Some(k)) if !line.trim_start().starts_with('[') => Some(k),
        (_, _) if line.trim_start().starts_with('[') => Some(
            line.trim()
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string(),
        ),
        _ => None,
    }
}

/// `x` of serde's "unknown field `x`, expected ...".
pub(super) fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}
