//! A bounded fuzz campaign on the instance-file parser (`theory flow`'s input): mutated
//! valid instances (single, batch, named) must parse or fail with a named error, never
//! panic; what parses must also survive the cheap derived quantities a flow computes
//! first.

use rmteach::fuzz::campaign;
use rmteach_theory::instance::InstanceFile;

const SINGLE: &str = include_str!("../examples/instance.json");

const BATCH: &str = r#"[{"num_prompts": 1, "lambda": 0.0, "gamma": 0.1,
  "logits": [0.0, 1.0, -1.0, 2.0], "r_rm": [1.0, -1.0, 0.5, 0.0],
  "r_g": [0.9, -0.2, 0.3, -1.0], "horizon": 50, "name": "a"},
 {"num_prompts": 3, "lambda": 2.5, "gamma": 0.05, "logits": [0.1, 0.2, 0.3],
  "r_rm": [0.0, 0.5, 1.0], "r_g": [1.0, 0.5, 0.0], "horizon": 1e3}]"#;

#[test]
fn the_instance_parser_never_panics_on_mutated_instances() {
    let corpus: [&[u8]; 2] = [SINGLE.as_bytes(), BATCH.as_bytes()];
    let stats = campaign(0x1F_2026, &corpus, 20_000, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        match InstanceFile::parse(&text) {
            Ok(file) => {
                for inst in file.instances() {
                    let p = inst.initial_probs();
                    assert!(
                        p.iter().all(|x| x.is_finite()),
                        "non-finite pi_0 from {text}"
                    );
                    let _ = inst.prop3_bound();
                }
                true
            }
            Err(e) => {
                assert!(!e.to_string().trim().is_empty(), "empty error for {text}");
                false
            }
        }
    })
    .unwrap_or_else(|f| panic!("{f}"));
    // The campaign must exercise both paths, or it proves little.
    assert!(stats.accepted >= 2, "{stats:?}");
    assert!(
        stats.inputs - stats.accepted > stats.inputs / 2,
        "{stats:?}"
    );
}
