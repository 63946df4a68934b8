//! The TOML run config: the presets parse, defaults are the paper's, and every bad
//! field is an error naming the field.

use rmteach_experiments::pipeline::config::{
    parse_toml, LowVarianceOrder, PgAlgorithm, RunConfig, GROUND_TRUTH, LOW_VARIANCE,
};
use rmteach_experiments::runtime::{DTypeSpec, DeviceSpec};
use rmteach_experiments::stages::optim::Optimizer;
use rmteach_experiments::stages::pg::GrpoKl;
use rmteach_experiments::stages::pg::{upgrade_options, PgConfig};
use std::path::Path;

const MINIMAL: &str = "name = \"x\"\n[world.toy]\n";

fn err(text: &str) -> String {
    match RunConfig::from_toml_str(text, "test.toml") {
        Ok(c) => panic!("accepted: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// `text` with `extra` appended is refused with a message naming `field`.
fn refused(extra: &str, field: &str) {
    let message = err(&format!("{MINIMAL}{extra}"));
    assert!(
        message.contains(field) && message.contains("test.toml"),
        "error for {extra:?} should name `{field}`: {message}"
    );
}

#[test]
fn presets_parse() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let toy = RunConfig::from_file(&dir.join("toy-4.1.toml")).unwrap();
    assert_eq!(toy.name, "toy-4.1");
    assert!(toy.world.toy.is_some());
    let paper = RunConfig::from_file(&dir.join("paper-4.1.toml")).unwrap();
    let p = paper.world.paper.as_ref().unwrap();
    assert!(p.model.starts_with(&dir), "relative to the config file");
    assert_eq!(
        (
            paper.pg.k,
            paper.pg.lr,
            paper.rm.lr,
            paper.sft.lr,
            paper.pg.epochs
        ),
        (2, 1e-7, 5e-7, 1e-6, 6.0)
    );
}

#[test]
fn defaults_are_the_papers() {
    let c = RunConfig::from_toml_str(MINIMAL, "m.toml").unwrap();
    assert_eq!((c.device, c.dtype), (DeviceSpec::Cpu, DTypeSpec::F32));
    assert_eq!(c.rm.mixes, [100, 75, 50, 25, 0]);
    assert_eq!((c.pg.k, c.pg.batch_size, c.pg.mini_batches), (2, 32, 2));
    assert_eq!((c.pg.beta, c.pg.lr, c.pg.epochs), (0.05, 1e-7, 6.0));
    assert_eq!(c.pg.seeds, [0, 1, 2]);
    assert_eq!((c.normalize.prompts, c.normalize.samples), (500, 10));
    assert_eq!(
        (c.eval.top_k, c.data.max_tokens, c.data.rm_fraction),
        (50, 512, 0.8)
    );
    assert_eq!((c.low_variance.fraction, c.low_variance.scale), (0.5, 1e-3));
    // The authors' orders: scale before normalising, GRPO's KL without gradient.
    assert_eq!(c.low_variance.order, LowVarianceOrder::ScaleThenNormalize);
    assert_eq!(c.pg.grpo_kl, GrpoKl::Rollout);
    assert_eq!(c.world.toy.as_ref().unwrap().offpolicy_gap, 0.0);
    let names = c.reward_names();
    assert_eq!(names.first().map(String::as_str), Some("rm-100"));
    assert_eq!(names[5..], [LOW_VARIANCE, GROUND_TRUTH]);
    assert_eq!((c.pg.batch_size, c.pg.max_new_tokens), (32, 512));
    // AdamW unless set, and the default is not written (records stay as they were).
    assert_eq!(c.pg.optimizer, Optimizer::Adamw);
    let json = serde_json::to_string(&c).unwrap();
    assert!(!json.contains("optimizer"), "{json}");
    let sgd =
        RunConfig::from_toml_str(&format!("{MINIMAL}[pg]\noptimizer = \"sgd\"\n"), "s").unwrap();
    assert_eq!(sgd.pg.optimizer, Optimizer::Sgd);
    assert!(serde_json::to_string(&sgd)
        .unwrap()
        .contains("\"optimizer\":\"sgd\""));
}

#[test]
fn bad_fields_are_named() {
    // Unknown fields, at the top level and in tables.
    refused("[pg]\nlrr = 1e-7\n", "pg.lrr");
    refused("[sft]\nbatch = 4\n", "sft.batch");
    let top = err("name = \"x\"\nsede = 3\n[world.toy]\n");
    assert!(top.contains("sede"), "{top}");
    refused("[world.toy.extra]\n", "extra");
    // Wrong types.
    refused("[pg]\nk = \"two\"\n", "pg.k");
    refused("[rm]\nmixes = 50\n", "rm.mixes");
    // Bad values.
    refused("[pg]\nk = 1\n", "pg.k");
    refused("[pg]\nk = 4\nbatch = 6\n", "pg.batch");
    refused("[pg]\nmini_batches = 3\n", "pg.mini_batches");
    refused("[pg]\nalgorithm = \"ppo\"\n", "pg.algorithm");
    refused("[pg]\nseeds = []\n", "pg.seeds");
    refused("[pg]\nepochs = -1.0\n", "pg.epochs");
    refused("[pg]\nrewards = [\"rm-33\"]\n", "pg.rewards");
    refused("[rm]\nmixes = [150]\n", "rm.mixes");
    refused("[rm]\nmixes = [50, 50]\n", "rm.mixes");
    refused(
        "[rm]\nbatch_size = 4\nmicro_batch_size = 8\n",
        "rm.micro_batch_size",
    );
    refused("[sft]\nlr = -1.0\n", "sft.lr");
    refused("[sft]\nmax_grad_norm = -1.0\n", "sft.max_grad_norm");
    refused("[sft]\nmax_grad_norm = nan\n", "sft.max_grad_norm");
    refused("[data]\nmax_sft_examples = 0\n", "data.max_sft_examples");
    refused("[normalize]\nsamples = 1\n", "normalize.samples");
    refused("[eval]\nprompts = 0\n", "eval.prompts");
    refused("[data]\nrm_fraction = 1.0\n", "data.rm_fraction");
    refused("[low_variance]\nscale = 0.0\n", "low_variance.scale");
    refused(
        "[low_variance]\norder = \"scale_first\"\n",
        "low_variance.order",
    );
    refused("[pg]\ngrpo_kl = \"k3\"\n", "pg.grpo_kl");
    refused("[pg]\noptimizer = \"adam\"\n", "pg.optimizer");
    refused("[rm]\nmargin = -1.0\n", "rm.margin");
    refused("[pg]\nselect_quantile = 1.0\n", "pg.select_quantile");
    refused("[pg]\nreward_scale = 0.0\n", "pg.reward_scale");
    // An out-of-range value is quoted as given, not confused with the paper's value.
    for (toml, field, given) in [
        (
            "[low_variance]\nfraction = 1.5\n",
            "low_variance.fraction",
            "1.5 is out of range",
        ),
        (
            "[data]\nrm_fraction = 1.25\n",
            "data.rm_fraction",
            "1.25 is out of range",
        ),
        ("[pg]\nepochs = -2.0\n", "pg.epochs", "-2 is out of range"),
        ("[pg]\nlr = -3.0\n", "pg.lr", "-3 is out of range"),
    ] {
        let e = err(&format!("name = \"x\"\n[world.toy]\n{toml}"));
        assert!(e.contains(field) && e.contains(given), "{e}");
    }
    for gap in ["1.0", "-0.1"] {
        let e = err(&format!(
            "name = \"x\"\n[world.toy]\noffpolicy_gap = {gap}\n"
        ));
        assert!(
            e.contains("world.toy.offpolicy_gap") && e.contains("[0, 1)"),
            "{e}"
        );
    }
    refused("[world.toy]\narch = \"gpt2\"\n", "world");
    let e = err("name = \"x\"\n[world.toy]\nhidden_size = 30\n");
    assert!(e.contains("world.toy.hidden_size"), "{e}");
    let e = err("name = \"x\"\ndtype = \"f16\"\n[world.toy]\n");
    assert!(e.contains("`dtype`") && e.contains("bf16"), "{e}");
    let e = err("name = \"x\"\ndevice = \"tpu\"\n[world.toy]\n");
    assert!(e.contains("`device`"), "{e}");
    let e = err("name = \"../up\"\n[world.toy]\n");
    assert!(e.contains("`name`"), "{e}");
    let e = err("[world.toy]\n");
    assert!(e.contains("name"), "missing name: {e}");
    let e = err("name = \"x\"\n");
    assert!(e.contains("world"), "missing world: {e}");
    let e = err("name = \"x\"\n[world]\n");
    assert!(e.contains("world"), "empty world: {e}");
    let both = "name = \"x\"\n[world.toy]\n[world.paper]\nmodel = \"m\"\nsft_data = \"s\"\n\
                train_prefs = \"t\"\nground_truth = \"g\"\n";
    let e = err(both);
    assert!(e.contains("exactly one"), "{e}");
    assert!(err("not toml at all = = ").contains("test.toml"));
    assert!(RunConfig::from_file(Path::new("/nonexistent/run.toml")).is_err());
}

#[test]
fn a_config_changed_in_code_is_refused_where_it_is_validated() {
    // `run_with` takes only a `Checked<RunConfig>` (see the compile_fail examples of
    // `pipeline::config::Checked`): an edit goes through `into_inner`, and the edited
    // config reaches the runner only through `validate`, which names the field.
    let edit = |f: &dyn Fn(&mut RunConfig)| {
        let mut c = RunConfig::from_toml_str(MINIMAL, "m.toml")
            .unwrap()
            .into_inner();
        f(&mut c);
        c.validate("m.toml (edited)").map_err(|e| e.to_string())
    };
    // Values a stage would refuse only later, set past the parser.
    let e = edit(&|c| c.sft.max_grad_norm = Some(-1.0)).unwrap_err();
    assert!(
        e.contains("m.toml (edited)") && e.contains("sft.max_grad_norm") && e.contains("> 0"),
        "{e}"
    );
    let e = edit(&|c| c.data.max_sft_examples = Some(0)).unwrap_err();
    assert!(e.contains("data.max_sft_examples"), "{e}");
    let e = edit(&|c| c.pg.k = 1).unwrap_err();
    assert!(e.contains("pg.k") && e.contains("at least 2"), "{e}");
    // A valid edit passes and is what the runner reads.
    let ok = edit(&|c| c.pg.k = 4).unwrap();
    assert_eq!(ok.pg.k, 4);
}

#[test]
fn a_missing_path_writes_nothing() {
    use rmteach_experiments::pipeline::{run::run_with, RunOptions};
    let tmp = tempfile::tempdir().unwrap();
    let runs = tmp.path().join("runs");
    let opts = RunOptions::default();
    // A paper world whose files are missing (relative to the config's directory).
    let text = "name = \"p\"\n[world.paper]\nmodel = \"no-model\"\nsft_data = \"s.jsonl\"\n\
                train_prefs = \"t.jsonl\"\nground_truth = \"gt\"\n";
    let c =
        RunConfig::from_table(parse_toml(text, "p.toml").unwrap(), "p.toml", tmp.path()).unwrap();
    let e = run_with(&c, &runs, &opts).unwrap_err().to_string();
    assert!(
        e.contains("world.paper.model") && e.contains("no-model"),
        "{e}"
    );
    // An external reward model that is not there.
    let text = format!("{MINIMAL}[[rm.external]]\nname = \"a\"\nfrom_run = \"other/rms/rm-100\"\n");
    let c = RunConfig::from_toml_str(&text, "x.toml").unwrap();
    let e = run_with(&c, &runs, &opts).unwrap_err().to_string();
    assert!(e.contains("rm.external[0].from_run"), "{e}");
    assert!(!runs.exists(), "nothing written before the checks pass");
}

#[test]
fn a_toy_model_too_short_for_the_toy_world_is_refused_naming_the_minimum() {
    let longest = rmteach_experiments::toy::longest_exchange_tokens().unwrap();
    // The toy world's longest prompt and response: a handful of words and markers.
    assert!((10..48).contains(&longest), "{longest}");
    let key = "world.toy.max_position_embeddings";
    let e = err(&format!(
        "{MINIMAL}max_position_embeddings = {}\n",
        longest - 1
    ));
    assert!(
        e.contains(key) && e.contains(&format!("at least {longest}")),
        "{e}"
    );
    let ok = format!("{MINIMAL}max_position_embeddings = {longest}\n");
    RunConfig::from_toml_str(&ok, "m.toml").unwrap();
}

#[test]
fn algorithm_and_order_keep_their_spellings_and_old_records_load() {
    let c = RunConfig::from_toml_str(
        &format!("{MINIMAL}[pg]\nalgorithm = \"grpo\"\n[low_variance]\norder = \"normalize_then_scale\"\n"),
        "test.toml",
    )
    .unwrap();
    assert_eq!(c.pg.algorithm, PgAlgorithm::Grpo);
    assert_eq!(c.low_variance.order, LowVarianceOrder::NormalizeThenScale);
    // A run directory's config.json is written and read in the TOML spelling.
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["pg"]["algorithm"], "grpo");
    assert_eq!(json["low_variance"]["order"], "normalize_then_scale");
    let back: RunConfig = serde_json::from_value(json).unwrap();
    assert_eq!(&back, &*c);
    // Checkpoint options written before the TOML spelling named the variant.
    for (old, new) in [("Rloo", PgAlgorithm::Rloo), ("Grpo", PgAlgorithm::Grpo)] {
        let options = PgConfig {
            algorithm: new,
            ..PgConfig::default()
        };
        let now = options.checkpoint_options(0).unwrap();
        let mut stored = now.clone();
        stored["algorithm"] = old.into();
        assert_ne!(stored, now);
        assert_eq!(upgrade_options(stored.clone()), now, "{old}");
    }
}

#[test]
fn checkpoint_options_keep_the_spelling_of_checkpoints_written_before() {
    // The options of a toy-4.1 checkpoint (`pg/gt/seed4/ckpt/LATEST.json`) as written
    // when the stage had its own options type (`PgOptions`, `batch_size`, the fixed
    // clip range, clipping and temperature, the run's seed).
    let old = serde_json::json!({
        "algorithm": "rloo", "batch_size": 16, "beta": 0.05, "checkpoint_every": 10,
        "clip_range": 0.2, "epochs": 2.0, "grpo_kl": "rollout", "k": 2, "lr": 0.0001,
        "max_grad_norm": 1.0, "max_new_tokens": 16, "micro_batch_size": null,
        "mini_batches": 2, "seed": 4, "temperature": 1.0
    });
    let text = format!(
        "{MINIMAL}[pg]\nbatch = 16\nepochs = 2.0\nlr = 1e-4\nmax_new_tokens = 16\n\
         rewards = [\"gt\"]\nseeds = [3, 4]\n"
    );
    let c = RunConfig::from_toml_str(&text, "t.toml").unwrap();
    let now = c.pg.checkpoint_options(4).unwrap();
    assert_eq!(now, old);
    assert_eq!(
        serde_json::to_string(&now).unwrap(),
        serde_json::to_string(&old).unwrap()
    );
    // The levers, written only when set (as before).
    let text = format!("{text}optimizer = \"sgd\"\nreward_scale = 0.5\nselect_quantile = 0.25\n");
    let c = RunConfig::from_toml_str(&text, "t.toml").unwrap();
    let mut levers = old.clone();
    levers["optimizer"] = "sgd".into();
    levers["reward_scale"] = 0.5.into();
    levers["select_quantile"] = 0.25.into();
    assert_eq!(c.pg.checkpoint_options(4).unwrap(), levers);
    // The run's config.json keeps the TOML spelling.
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(
        (json["pg"]["batch"].as_u64(), json["pg"].get("batch_size")),
        (Some(16), None)
    );
}
