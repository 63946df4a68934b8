//! Saving a model's variables to safetensors and loading them into a fresh model
//! reproduces the logits; sharded checkpoints and bad files give named errors.

use crate::common;

use candle_core::{DType, Device, Tensor};
use common::{all_tiny, batch, build, max_abs_diff};
use rmteach_experiments::hf::{checkpoint_files, load_into_varmap, save_varmap};
use rmteach_experiments::models::CausalLm;
use std::collections::HashMap;

#[test]
fn save_then_load_gives_the_same_logits() {
    let (ids, mask) = batch();
    let dir = tempfile::tempdir().unwrap();
    for (label, config) in all_tiny() {
        let (varmap, model) = build(&config, 21);
        let expected = model.forward(&ids, Some(&mask)).unwrap();
        let path = dir.path().join(format!("{label}.safetensors"));
        save_varmap(&varmap, &path).unwrap();

        // A different seed: the logits only match if the load overwrote every variable.
        let (fresh_map, fresh) = build(&config, 22);
        let before = fresh.forward(&ids, Some(&mask)).unwrap();
        assert!(
            max_abs_diff(&expected, &before) > 1e-3,
            "{label}: seeds collide"
        );
        let report = load_into_varmap(&fresh_map, std::slice::from_ref(&path)).unwrap();
        assert_eq!(report.loaded, varmap.all_vars().len(), "{label}");
        assert!(
            report.unexpected.is_empty(),
            "{label}: {:?}",
            report.unexpected
        );
        let after = fresh.forward(&ids, Some(&mask)).unwrap();
        assert_eq!(max_abs_diff(&expected, &after), 0.0, "{label}");
    }
}

#[test]
fn same_seed_gives_the_same_weights() {
    let (ids, _) = batch();
    let config = common::tiny_neox(true);
    let a = build(&config, 9).1.forward(&ids, None).unwrap();
    let b = build(&config, 9).1.forward(&ids, None).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn sharded_checkpoint_with_extra_buffers_and_bf16() {
    let config = common::tiny_llama(false, false);
    let (varmap, model) = build(&config, 31);
    let (ids, mask) = batch();
    let expected = model.forward(&ids, Some(&mask)).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Split the variables over two shards, stored as bf16 like real checkpoints, plus
    // a buffer the model does not use.
    let vars = varmap.data().lock().unwrap().clone();
    let mut shards: [Vec<(String, Tensor)>; 2] = [Vec::new(), Vec::new()];
    let mut weight_map = serde_json::Map::new();
    for (i, (name, var)) in vars.iter().enumerate() {
        let file = format!("model-0000{}-of-00002.safetensors", i % 2 + 1);
        weight_map.insert(name.clone(), file.into());
        shards[i % 2].push((name.clone(), var.as_tensor().to_dtype(DType::BF16).unwrap()));
    }
    shards[0].push((
        "model.rotary_emb.inv_freq".into(),
        Tensor::ones(4, DType::F32, &Device::Cpu).unwrap(),
    ));
    for (i, shard) in shards.iter().enumerate() {
        let path = dir
            .path()
            .join(format!("model-0000{}-of-00002.safetensors", i + 1));
        safetensors::tensor::serialize_to_file(shard.clone(), None, &path).unwrap();
    }
    let index = serde_json::json!({ "metadata": {}, "weight_map": weight_map });
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();

    let files = checkpoint_files(dir.path()).unwrap();
    assert_eq!(files.len(), 2);
    let (fresh_map, fresh) = build(&config, 32);
    let report = load_into_varmap(&fresh_map, &files).unwrap();
    assert_eq!(
        report.unexpected,
        vec!["model.rotary_emb.inv_freq".to_string()]
    );
    let got = fresh.forward(&ids, Some(&mask)).unwrap();
    // bf16 storage rounds the weights.
    let diff = max_abs_diff(&expected, &got);
    assert!(
        diff > 0.0 && diff < 0.05,
        "bf16 round trip differs by {diff}"
    );
}

#[test]
fn missing_and_misshapen_tensors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let (varmap, _) = build(&common::tiny_neox(true), 1);
    let mut tensors: HashMap<String, Tensor> = varmap
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
        .collect();
    tensors.remove("embed_out.weight");
    let path = dir.path().join("partial.safetensors");
    safetensors::tensor::serialize_to_file(tensors.clone(), None, &path).unwrap();
    let err = load_into_varmap(&varmap, std::slice::from_ref(&path))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("embed_out.weight") && err.contains("not found"),
        "{err}"
    );

    tensors.insert(
        "embed_out.weight".into(),
        Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap(),
    );
    safetensors::tensor::serialize_to_file(tensors.clone(), None, &path).unwrap();
    let err = load_into_varmap(&varmap, std::slice::from_ref(&path))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("embed_out.weight") && err.contains("shape"),
        "{err}"
    );

    // Non-finite and integer weights are refused, naming the file and the tensor.
    let good = varmap.data().lock().unwrap()["embed_out.weight"]
        .as_tensor()
        .clone();
    let dims = good.dims().to_vec();
    let n: usize = dims.iter().product();
    for (bad, what) in [(f32::NAN, "NaN"), (f32::INFINITY, "NaN or infinite")] {
        let mut v = vec![0.1f32; n];
        v[n / 2] = bad;
        tensors.insert(
            "embed_out.weight".into(),
            Tensor::from_vec(v, dims.as_slice(), &Device::Cpu).unwrap(),
        );
        safetensors::tensor::serialize_to_file(tensors.clone(), None, &path).unwrap();
        let err = load_into_varmap(&varmap, std::slice::from_ref(&path))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("partial.safetensors")
                && err.contains("embed_out.weight")
                && err.contains(what),
            "{err}"
        );
    }
    tensors.insert(
        "embed_out.weight".into(),
        Tensor::zeros(dims.as_slice(), DType::I64, &Device::Cpu).unwrap(),
    );
    safetensors::tensor::serialize_to_file(tensors.clone(), None, &path).unwrap();
    let err = load_into_varmap(&varmap, std::slice::from_ref(&path))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("embed_out.weight") && err.contains("not a float type"),
        "{err}"
    );

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a safetensors file").unwrap();
    let err = load_into_varmap(&varmap, &[garbage])
        .unwrap_err()
        .to_string();
    assert!(err.contains("garbage.safetensors"), "{err}");

    let err = checkpoint_files(dir.path()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors.index.json"), "{err}");
}
