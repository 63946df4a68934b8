//! The AdamW case: two steps of [`AdamW`] (the first clipped, the second not, with
//! weight decay) on a matrix and a vector, from the same weights and gradients; the
//! results are the gradient norms, the weights, the updates (weights minus the
//! initial ones, on the f32 master for a bf16 model) and both moments.

use super::Sizes;
use crate::stages::optim::{AdamW, OptimConfig};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The inputs of the AdamW case (f32, on the CPU).
#[derive(Debug, Clone)]
pub struct AdamWCase {
    /// What the report calls it.
    pub label: String,
    /// `(name, initial weights, gradient of step 1, gradient of step 2)`.
    params: Vec<(String, Tensor, Tensor, Tensor)>,
    /// Hyperparameters (clipping at half the first step's gradient norm).
    config: OptimConfig,
}

impl AdamWCase {
    /// A `rows x cols` matrix and a `cols` vector, weights N(0, 0.02), gradients
    /// N(0, 1e-3) then N(0, 2.5e-4), drawn from `seed`.
    pub fn new(sizes: &Sizes, seed: u64) -> Result<Self> {
        let (rows, cols) = sizes.adamw;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut normal = |shape: &[usize], std: f32| -> Result<Tensor> {
            let dist = Normal::new(0.0, std)
                .map_err(|e| Error::Input(format!("kernel check: normal(0, {std}): {e}")))?;
            let v: Vec<f32> = (0..shape.iter().product())
                .map(|_| dist.sample(&mut rng))
                .collect();
            Ok(Tensor::from_vec(v, shape, &Device::Cpu)?)
        };
        let mut params = Vec::new();
        for (name, shape) in [("w", vec![rows, cols]), ("b", vec![cols])] {
            params.push((
                name.to_string(),
                normal(&shape, 0.02)?,
                normal(&shape, 1e-3)?,
                normal(&shape, 2.5e-4)?,
            ));
        }
        let first: Vec<&Tensor> = params.iter().map(|p| &p.2).collect();
        let norm1 = crate::stages::optim::global_norm(&first)?;
        let config = OptimConfig {
            weight_decay: 0.01,
            max_grad_norm: Some(0.5 * norm1),
            ..OptimConfig::new(1e-3)
        };
        Ok(Self {
            label: format!("adamw {rows}x{cols} + {cols}, 2 steps"),
            params,
            config,
        })
    }

    /// The case's tensors rounded to `dtype` (kept in f32): what the reference starts from.
    pub fn rounded(&self, dtype: DType) -> Result<Self> {
        let r = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(dtype)?.to_dtype(DType::F32)?) };
        let params = self
            .params
            .iter()
            .map(|(n, w, g1, g2)| Ok((n.clone(), r(w)?, r(g1)?, r(g2)?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            params,
            ..self.clone()
        })
    }

    /// Two steps on `device` with weights in `dtype` (f32 masters for bf16), under
    /// whatever kernel switches are set; every result f32 on the CPU.
    pub fn evaluate(&self, device: &Device, dtype: DType) -> Result<Vec<(String, Tensor)>> {
        let varmap = VarMap::new();
        let mut vars = Vec::new();
        {
            let mut data = varmap
                .data()
                .lock()
                .map_err(|_| Error::Input("variable map lock poisoned".into()))?;
            for (name, w, _, _) in &self.params {
                let var = Var::from_tensor(&w.to_device(device)?.to_dtype(dtype)?)?;
                data.insert(name.clone(), var.clone());
                vars.push(var);
            }
        }
        let mut opt = AdamW::new(&varmap, self.config)?;
        let host =
            |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(DType::F32)?.to_device(&Device::Cpu)?) };
        let mut out = Vec::new();
        for step in 1..=2 {
            let mut loss: Option<Tensor> = None;
            for (var, (_, _, g1, g2)) in vars.iter().zip(&self.params) {
                let g = if step == 1 { g1 } else { g2 };
                let term =
                    (var.as_tensor().to_dtype(DType::F32)? * g.to_device(device)?)?.sum_all()?;
                loss = Some(match loss {
                    Some(l) => (l + term)?,
                    None => term,
                });
            }
            let loss = loss.ok_or_else(|| Error::Input("kernel check: no parameters".into()))?;
            let stats = opt.step(&loss)?;
            out.push((
                format!("grad_norm step {step}"),
                Tensor::new(&[stats.grad_norm as f32], &Device::Cpu)?,
            ));
        }
        let masters = opt.master_varmap(&varmap)?;
        let masters = masters
            .data()
            .lock()
            .map_err(|_| Error::Input("variable map lock poisoned".into()))?
            .clone();
        let state = state_file();
        opt.save_state(&state)?;
        let saved = candle_core::safetensors::load(&state, &Device::Cpu);
        let _ = std::fs::remove_file(&state);
        let saved = saved.map_err(|e| Error::Weights {
            file: state.display().to_string(),
            message: format!("cannot read back the optimiser state: {e}"),
        })?;
        for (var, (name, w0, _, _)) in vars.iter().zip(&self.params) {
            out.push((format!("weights {name}"), host(var.as_tensor())?));
            let master = masters
                .get(name)
                .ok_or_else(|| Error::Input(format!("kernel check: no master for {name}")))?;
            // The update from the weights the run starts from (rounded to `dtype`).
            let start = w0.to_dtype(dtype)?.to_dtype(DType::F32)?;
            out.push((
                format!("update {name}"),
                (host(master.as_tensor())? - start)?,
            ));
            for moment in ["m", "v"] {
                let key = format!("{moment}.{name}");
                let t = saved
                    .get(&key)
                    .ok_or_else(|| Error::Input(format!("kernel check: no `{key}` saved")))?;
                out.push((format!("{moment} {name}"), host(t)?));
            }
        }
        Ok(out)
    }
}

/// A fresh path for one saved optimiser state.
fn state_file() -> std::path::PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "rmteach-kernel-check-{}-{}.safetensors",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}
