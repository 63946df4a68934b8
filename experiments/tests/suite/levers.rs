//! The levers experiment: its plan and configs, and its report on hand-made outcomes
//! (the sentences follow the intervals; the results file reloads).

use rmteach_experiments::levers::{
    base_config, lever_rows, plan, sgd_lr, variant_config, write_report, Lever, LeverResults,
    SeedOutcome, VariantOutcome, REFERENCE, RESULTS_FILE,
};
use rmteach_experiments::pipeline::config::LOW_VARIANCE;
use rmteach_experiments::stages::optim::Optimizer;

#[test]
fn the_plan_runs_each_variant_once_and_every_lever_has_its_reference() {
    let v = plan();
    let mut names: Vec<&str> = v.iter().map(|x| x.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), v.len(), "a run appears twice");
    assert_eq!(v.len(), 12 + 2 + 2 + 1);
    let names = |lever| -> Vec<String> {
        lever_rows(&v, lever)
            .iter()
            .map(|x| x.name.clone())
            .collect()
    };
    assert_eq!(names(Lever::SamplesPerPrompt), [REFERENCE, "k4", "k8"]);
    assert_eq!(names(Lever::Selection), [REFERENCE, "select-q0.5"]);
    assert_eq!(names(Lever::Margin), ["rm-0-margin0", "rm-0-margin1"]);
    assert_eq!(names(Lever::OptimizerScale).len(), 12);
    assert!(names(Lever::OptimizerScale).contains(&REFERENCE.to_string()));
    // The configs: the budget changes, each variant's own lever, all valid.
    let base = base_config().unwrap();
    assert_eq!((base.rm.mixes.clone(), base.pg.epochs), (vec![0], 1.0));
    let lr = sgd_lr(base.pg.lr, 10_000);
    assert!((lr - 100.0 * base.pg.lr).abs() < 1e-12);
    for x in &v {
        let c = variant_config(&base, x, lr).validate("levers").unwrap();
        assert_eq!(c.pg.rewards.as_deref(), Some(&[x.reward.clone()][..]));
        assert_eq!(
            c.pg.lr,
            if x.optimizer == Optimizer::Sgd {
                lr
            } else {
                base.pg.lr
            }
        );
        assert_eq!((c.pg.k, c.pg.beta, c.rm.margin), (x.k, x.beta, x.margin));
        assert_eq!(c.pg.select_quantile, x.select_quantile);
    }
    let sgd = v.iter().find(|x| x.name == "sgd-scale0.001-beta0").unwrap();
    assert_eq!(
        (sgd.reward.as_str(), sgd.reward_scale),
        (LOW_VARIANCE, 0.001)
    );
}

/// Five seeds of `gt` increase (plus a small seed-dependent wobble).
fn outcome(v: &rmteach_experiments::levers::Variant, gt: f64) -> VariantOutcome {
    let seeds = (0..5)
        .map(|seed| SeedOutcome {
            seed,
            train_std: 0.3,
            initial_variance: 0.5,
            accuracy: 1.0,
            proxy_increase: gt + 0.01,
            gt_increase: gt + 0.002 * seed as f64,
            kl: 0.1,
        })
        .collect();
    VariantOutcome::new(v.clone(), seeds)
}

#[test]
fn the_report_says_what_the_intervals_show_and_the_results_reload() {
    let dir = tempfile::tempdir().unwrap();
    // Adam scale-free at beta 0, SGD proportional to the scale: the predicted pattern.
    let predicted = |x: &rmteach_experiments::levers::Variant| match x.optimizer {
        Optimizer::Sgd => 0.15 * x.reward_scale,
        Optimizer::Adamw if x.beta > 0.0 => 0.15 * x.reward_scale.powf(0.1),
        Optimizer::Adamw => 0.15,
    };
    let results = |f: &dyn Fn(&rmteach_experiments::levers::Variant) -> f64| LeverResults {
        parameters: 10_000,
        sgd_lr: 0.01,
        variants: plan().iter().map(|x| outcome(x, f(x))).collect(),
    };
    let r = results(&predicted);
    write_report(&r, dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("levers.md")).unwrap();
    for lever in Lever::ALL {
        assert!(md.contains(lever.title()), "{}", lever.title());
    }
    assert_eq!(md.matches("**What it shows:**").count(), 4);
    assert!(
        md.contains("AdamW cancels a global reward scale and SGD does not"),
        "{md}"
    );
    assert!(md.contains("(no difference detected) at k = 4"), "{md}");
    assert!(dir
        .path()
        .join("levers_optimizer_scale_increase.png")
        .exists());
    assert!(dir.path().join("levers_other_increase.png").exists());
    // The results reload (floats to within JSON's last-digit parsing).
    let back = LeverResults::read(&dir.path().join(RESULTS_FILE)).unwrap();
    assert_eq!(
        (back.parameters, back.variants.len()),
        (r.parameters, r.variants.len())
    );
    for (x, y) in back.variants.iter().zip(&r.variants) {
        assert_eq!((&x.variant, x.seeds.len()), (&y.variant, y.seeds.len()));
        assert!((x.gt_increase.mean - y.gt_increase.mean).abs() < 1e-12);
    }
    // AdamW slowed by the scale at beta 0 too: the pattern is not claimed.
    let other = tempfile::tempdir().unwrap();
    write_report(&results(&|x| 0.15 * x.reward_scale), other.path()).unwrap();
    let md = std::fs::read_to_string(other.path().join("levers.md")).unwrap();
    assert!(md.contains("does not appear in full"), "{md}");
}
