//! Section 4.2 experiments: one base run config, several policies and several
//! policy-gradient algorithms. The file is an ordinary run config (see [`RunConfig`])
//! plus two top-level keys:
//!
//! ```toml
//! name = "toy-4.2"
//! algorithms = ["rloo", "grpo"]     # pg.algorithm of each run (default: pg.algorithm)
//!
//! [[policies]]                      # each entry: a name and overrides of the base
//! name = "llama-sft"
//!
//! [[policies]]
//! name = "neox-sft"
//! world.toy.arch = "gpt-neox"
//! ```
//!
//! Every (policy, algorithm) becomes the run `<runs>/<name>/<policy>-<algorithm>/`,
//! laid out as a Section 4.1 run. A run that differs from an earlier one only in `pg`
//! (another algorithm, or a policy entry that overrides only `pg`) starts from that
//! run's finished stages before policy gradient (hard-linked, copied where links
//! fail). Every run's stages up to `prefdata` run first, then up to `rms`, then the
//! rest, so runs may use each other's pairs (`rm.union_with`) and reward models
//! (`[[rm.external]]` `from_run`). A policy may name its own reward model
//! (`teacher = "rm-x"`), and `contrasts = [["a", "b"]]` asks the report for the
//! interaction contrast of policies `a` and `b` with their teachers. The report compares the policies per
//! algorithm (Table 10 layout and bars) in `<runs>/<name>/report/`.

use super::config::{check_dir_name, parse_toml, Check, Checked, RunConfig};
use super::run::{run_with, RunOptions, RunSummary, StageTime};
use crate::analysis::{write_policies_report, PolicyContrast};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// One (policy, algorithm) run of an experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentRun {
    /// The policy's name.
    pub policy: String,
    /// `rloo` or `grpo`.
    pub algorithm: String,
    /// The run's config (its `name` is `<policy>-<algorithm>`), validated.
    pub config: Checked<RunConfig>,
}

impl ExperimentRun {
    /// How errors name this run's config: `file` (the experiment's) and the run.
    pub fn label(file: &str, policy: &str, algorithm: &str) -> String {
        format!("{file} (policy `{policy}`, {algorithm})")
    }
}

/// A parsed experiment file.
#[derive(Debug, Clone, PartialEq)]
pub struct ExperimentConfig {
    /// The experiment's directory name under the runs root.
    pub name: String,
    /// Every run, grouped by policy, algorithms in the file's order.
    pub runs: Vec<ExperimentRun>,
    /// Each policy's own reward model (its optional `teacher` key), by policy name.
    pub teachers: Vec<(String, String)>,
    /// Pairs of policies (top-level `contrasts = [["a", "b"], ...]`, both with a
    /// `teacher`) whose interaction contrast the report computes.
    pub contrasts: Vec<(String, String)>,
}

/// Whether a parsed config file ([`parse_toml`]) is an experiment (it has
/// `[[policies]]`).
pub fn is_experiment(table: &toml::Table) -> bool {
    table.contains_key("policies")
}

/// Stages before policy gradient that runs of one policy share.
const SHARED_STAGES: [&str; 6] = ["world", "sft", "prefdata", "rms", "normalize", "rm_eval"];

impl ExperimentConfig {
    /// Reads an experiment file; relative paths are relative to its directory and
    /// `from_run` reward models are resolved under `runs_root`.
    pub fn from_file(path: &Path, runs_root: &Path) -> Result<Checked<Self>> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::from_toml_str(&text, &path.display().to_string(), dir, runs_root)
    }

    /// Parses an experiment; `file` names it in errors.
    pub fn from_toml_str(
        text: &str,
        file: &str,
        dir: &Path,
        runs_root: &Path,
    ) -> Result<Checked<Self>> {
        Self::from_table(parse_toml(text, file)?, file, dir, runs_root)
    }

    /// The experiment of a parsed file ([`parse_toml`]), validated: each run's config
    /// is built from its merged table, never printed and parsed again, and validated
    /// once its paths are resolved.
    pub fn from_table(
        mut base: toml::Table,
        file: &str,
        dir: &Path,
        runs_root: &Path,
    ) -> Result<Checked<Self>> {
        let bad = |field: &str, msg: &str| Error::config(file, field, msg);
        let name = base
            .get("name")
            .and_then(toml::Value::as_str)
            .ok_or_else(|| bad("name", "give the experiment a name"))?
            .to_string();
        let policies = match base.remove("policies") {
            Some(toml::Value::Array(p)) if !p.is_empty() => p,
            _ => {
                return Err(bad(
                    "policies",
                    "list at least one [[policies]] entry with a `name`",
                ))
            }
        };
        let algorithms: Vec<String> = match base.remove("algorithms") {
            None => vec![base
                .get("pg")
                .and_then(|pg| pg.get("algorithm"))
                .and_then(toml::Value::as_str)
                .unwrap_or("rloo")
                .to_string()],
            Some(toml::Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| bad("algorithms", "must list strings, e.g. [\"rloo\", \"grpo\"]"))?,
            Some(_) => return Err(bad("algorithms", "must list at least one algorithm")),
        };
        let contrasts = parse_contrasts(base.remove("contrasts"), file)?;
        let mut runs = Vec::new();
        let mut teachers = Vec::new();
        let mut seen = Vec::new();
        for (i, p) in policies.into_iter().enumerate() {
            let field = format!("policies[{i}]");
            let toml::Value::Table(mut overrides) = p else {
                return Err(bad(&field, "must be a table with a `name`"));
            };
            let policy = match overrides.remove("name") {
                Some(toml::Value::String(n)) => n,
                _ => return Err(bad(&format!("{field}.name"), "give each policy a name")),
            };
            check_dir_name(file, &format!("{field}.name"), &policy, "")?;
            if seen.contains(&policy) {
                return Err(bad(&format!("{field}.name"), "policy names must differ"));
            }
            seen.push(policy.clone());
            match overrides.remove("teacher") {
                None => {}
                Some(toml::Value::String(t)) => teachers.push((policy.clone(), t)),
                Some(_) => {
                    return Err(bad(
                        &format!("{field}.teacher"),
                        "must name a reward model (a string)",
                    ))
                }
            }
            for algorithm in &algorithms {
                let mut t = base.clone();
                merge(&mut t, overrides.clone());
                let run_name = format!("{policy}-{algorithm}");
                t.insert("name".into(), toml::Value::String(run_name.clone()));
                let pg = t
                    .entry("pg")
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(pg) = pg {
                    pg.insert("algorithm".into(), toml::Value::String(algorithm.clone()));
                }
                let label = ExperimentRun::label(file, &policy, algorithm);
                let mut config = RunConfig::parse_table(t, &label)?;
                config.resolve_relative(dir);
                relative_to_experiment(&mut config, runs_root, &runs_root.join(&name));
                runs.push(ExperimentRun {
                    policy: policy.clone(),
                    algorithm: algorithm.clone(),
                    config: config.validate(&label)?,
                });
            }
        }
        Self {
            name,
            runs,
            teachers,
            contrasts,
        }
        .validate(file)
    }

    /// Checks the experiment ([`Check`]; its runs were checked when made), naming
    /// `file`: the experiment the runner takes. Code that builds or edits an
    /// experiment calls this where it is done.
    pub fn validate(self, file: &str) -> Result<Checked<Self>> {
        Checked::new(self, file)
    }

    /// The contrasts of the runs of `algorithm`, as indices into those runs.
    fn policy_contrasts(&self, algorithm: &str) -> Vec<PolicyContrast> {
        let runs: Vec<&ExperimentRun> = self
            .runs
            .iter()
            .filter(|r| r.algorithm == algorithm)
            .collect();
        let index = |p: &str| runs.iter().position(|r| r.policy == p);
        let teacher = |p: &str| {
            self.teachers
                .iter()
                .find(|(q, _)| q == p)
                .map(|(_, t)| t.clone())
        };
        self.contrasts
            .iter()
            .filter_map(|(a, b)| {
                Some(PolicyContrast {
                    a: index(a)?,
                    b: index(b)?,
                    rm_a: teacher(a)?,
                    rm_b: teacher(b)?,
                })
            })
            .collect()
    }

    /// The algorithms, in the file's order.
    pub fn algorithms(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for r in &self.runs {
            if !out.contains(&r.algorithm) {
                out.push(r.algorithm.clone());
            }
        }
        out
    }
}

impl Check for ExperimentConfig {
    /// The name is a directory name, and every contrast names policies with a
    /// `teacher`.
    fn check(&self, file: &str) -> Result<()> {
        check_dir_name(file, "name", &self.name, "")?;
        for (i, (a, b)) in self.contrasts.iter().enumerate() {
            for p in [a, b] {
                if !self.teachers.iter().any(|(q, _)| q == p) {
                    return Err(Error::config(
                        file,
                        &format!("contrasts[{i}]"),
                        format!("policy `{p}` is not a [[policies]] entry with a `teacher`"),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The top-level `contrasts` value: a list of two-policy lists.
fn parse_contrasts(v: Option<toml::Value>, file: &str) -> Result<Vec<(String, String)>> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let err = || {
        Error::config(
            file,
            "contrasts",
            "must list pairs of policy names, e.g. [[\"topic\", \"length\"]]",
        )
    };
    let toml::Value::Array(pairs) = v else {
        return Err(err());
    };
    pairs
        .iter()
        .map(|p| match p.as_array().map(Vec::as_slice) {
            Some([toml::Value::String(a), toml::Value::String(b)]) if a != b => {
                Ok((a.clone(), b.clone()))
            }
            _ => Err(err()),
        })
        .collect()
}

/// Whether two runs differ at most in their name and `pg` (so they share every
/// stage before policy gradient).
fn same_before_pg(a: &RunConfig, b: &RunConfig) -> bool {
    let strip = |c: &RunConfig| RunConfig {
        name: String::new(),
        pg: Default::default(),
        ..c.clone()
    };
    strip(a) == strip(b)
}

/// Overlays `over` onto `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// What [`run_experiment`] did.
#[derive(Debug, Clone)]
pub struct ExperimentSummary {
    /// `<runs>/<name>`.
    pub dir: PathBuf,
    /// One summary per run, in order.
    pub runs: Vec<RunSummary>,
    /// Whether every run finished (else the report is not written).
    pub finished: bool,
}

/// Rewrites each `[[rm.external]]` `from_run` of a policy run (relative to `runs_root`)
/// for the runner, which runs the experiment's runs in `exp_dir`: a reward model the
/// experiment trains itself stays `from_run`, relative to `exp_dir`, so the
/// experiment's directory can be moved or copied and rerun; one of another run becomes
/// its `dir`. An entry that gives both `dir` and `from_run` is left for validation to
/// refuse.
fn relative_to_experiment(config: &mut RunConfig, runs_root: &Path, exp_dir: &Path) {
    for e in &mut config.rm.external {
        if e.dir.is_some() {
            continue;
        }
        if let Some(r) = e.from_run.take() {
            let path = runs_root.join(r);
            match path.strip_prefix(exp_dir) {
                Ok(inside) => e.from_run = Some(inside.to_path_buf()),
                Err(_) => e.dir = Some(path),
            }
        }
    }
}

/// Runs (or resumes) every run of `exp` under `<runs_root>/<name>/` and writes the
/// cross-policy report per algorithm into `<runs_root>/<name>/report/<algorithm>/`.
pub fn run_experiment(
    exp: &Checked<ExperimentConfig>,
    runs_root: &Path,
    opts: &RunOptions,
) -> Result<ExperimentSummary> {
    let exp: &ExperimentConfig = exp;
    let dir = runs_root.join(&exp.name);
    // The experiment and its runs were validated when made ([`Checked`]); every path a
    // run reads is checked before the first run writes anything (reward models this
    // experiment trains itself excepted).
    for r in &exp.runs {
        let label = format!(
            "<experiment {}> (policy `{}`, {})",
            exp.name, r.policy, r.algorithm
        );
        let mut outside = r.config.as_ref().clone();
        outside
            .rm
            .external
            .retain(|e| !e.resolve(&dir).starts_with(&dir));
        outside.check_paths(&label, runs_root)?;
    }
    // Every run's stages up to prefdata, then up to rms, then the rest: a run may train
    // a reward model on another run's pairs (`rm.union_with`) or use another run's
    // reward model (`[[rm.external]]` `from_run`). A run stopped on request skips this.
    let mut early_times: Vec<Vec<StageTime>> = vec![Vec::new(); exp.runs.len()];
    if opts.stop_after.is_none() {
        for stop in ["prefdata", "rms"] {
            let early = RunOptions {
                stop_after: Some(stop.into()),
                ..opts.clone()
            };
            for (i, times) in early_times.iter_mut().enumerate() {
                share_stages(exp, i, &dir)?;
                let s = run_with(&exp.runs[i].config, &dir, &early)?;
                times.extend(s.stages.into_iter().filter(|t| !t.skipped));
            }
        }
    }
    let mut summaries = Vec::new();
    for (i, r) in exp.runs.iter().enumerate() {
        share_stages(exp, i, &dir)?;
        let mut s = run_with(&r.config, &dir, opts)?;
        // Stages an earlier pass ran count as run, with their time.
        for t in &mut s.stages {
            if let Some(e) = early_times[i].iter().find(|e| e.stage == t.stage) {
                s.total_seconds += e.seconds;
                *t = e.clone();
            }
        }
        let finished = s.finished;
        summaries.push(s);
        if !finished {
            return Ok(ExperimentSummary {
                dir,
                runs: summaries,
                finished: false,
            });
        }
    }
    for algorithm in exp.algorithms() {
        let dirs: Vec<PathBuf> = exp
            .runs
            .iter()
            .filter(|r| r.algorithm == algorithm)
            .map(|r| dir.join(&r.config.name))
            .collect();
        let contrasts = exp.policy_contrasts(&algorithm);
        let out = dir.join("report").join(&algorithm);
        crate::rundir::rewrite_stage(&out, || {
            Ok(write_policies_report(&dirs, None, &contrasts, &out).map(drop)?)
        })?;
    }
    Ok(ExperimentSummary {
        dir,
        runs: summaries,
        finished: true,
    })
}

/// Links the finished shared stages of the first earlier run that differs from run
/// `i` only in `pg` into run `i`'s directory.
fn share_stages(exp: &ExperimentConfig, i: usize, dir: &Path) -> Result<()> {
    let r = &exp.runs[i];
    if let Some(first) = exp.runs[..i]
        .iter()
        .find(|f| same_before_pg(&f.config, &r.config))
    {
        for stage in SHARED_STAGES {
            let from = dir.join(&first.config.name).join(stage);
            let to = dir.join(&r.config.name).join(stage);
            if from.join(crate::rundir::DONE_FILE).exists() && !to.exists() {
                link_tree(&from, &to)?;
            }
        }
    }
    Ok(())
}

/// Recreates the tree `from` at `to` with hard links (copies where linking fails).
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { path, source }
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    for entry in std::fs::read_dir(from).map_err(io(from))? {
        let entry = entry.map_err(io(from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io(&src))?.is_dir() {
            link_tree(&src, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).map_err(io(&dst))?;
        }
    }
    Ok(())
}
