//! AdamW with global-norm gradient clipping, the one optimiser of every stage.
//!
//! The update is exactly `candle_nn::AdamW`'s (decoupled weight decay, bias-corrected
//! moments, `eps` outside the square root, as `torch.optim.AdamW`), re-implemented
//! because candle keeps the moments private: a resumable stage must save and restore
//! them ([`AdamW::save_state`], [`AdamW::load_state`]). candle has no gradient
//! clipping; [`AdamW::apply`] rescales all gradients by
//! `max_norm / (norm + 1e-6)` when their global L2 norm exceeds `max_norm`, as
//! `torch.nn.utils.clip_grad_norm_` does. The learning rate is constant.

use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use std::collections::HashMap;
use std::path::Path;

/// Hyperparameters of [`AdamW`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimConfig {
    /// Learning rate (constant).
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay (Hugging Face's Trainer default: 0).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this value; `None` disables clipping.
    pub max_grad_norm: Option<f64>,
}

impl OptimConfig {
    /// Learning rate `lr`, betas (0.9, 0.999), eps 1e-8, no weight decay, clip at 1.0.
    pub fn new(lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: Some(1.0),
        }
    }

    /// Checks every field: finite, `lr >= 0`, betas in [0, 1), `eps > 0`, clip `> 0`.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, v: f64| {
            Error::Input(format!("optimiser `{field}` = {v} is out of range"))
        };
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(bad("lr", self.lr));
        }
        for (field, b) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(bad(field, b));
            }
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return Err(bad("eps", self.eps));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(bad("weight_decay", self.weight_decay));
        }
        match self.max_grad_norm {
            Some(c) if !(c.is_finite() && c > 0.0) => Err(bad("max_grad_norm", c)),
            _ => Ok(()),
        }
    }
}

/// What one optimiser step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepStats {
    /// Global L2 norm of the gradients before clipping.
    pub grad_norm: f64,
    /// The optimiser's step count after this step.
    pub step: u64,
}

/// One trainable variable with its moments and accumulated gradient.
struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
    grad: Option<Tensor>,
}

/// AdamW over the float variables of a [`VarMap`] (in name order), with gradient
/// accumulation ([`backward`](Self::backward)) and clipping ([`apply`](Self::apply)).
pub struct AdamW {
    slots: Vec<Slot>,
    step: u64,
    config: OptimConfig,
}

/// Name of the step counter in a saved optimiser state.
const STEP_TENSOR: &str = "__step__";

impl AdamW {
    /// An optimiser over every float variable of `varmap`, moments at zero.
    pub fn new(varmap: &VarMap, config: OptimConfig) -> Result<Self> {
        config.validate()?;
        let data = varmap
            .data()
            .lock()
            .map_err(|_| Error::Input("variable map lock poisoned".into()))?;
        let mut named: Vec<(String, Var)> = data
            .iter()
            .filter(|(_, v)| v.dtype().is_float())
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let slots = named
            .into_iter()
            .map(|(name, var)| {
                let m = var.as_tensor().zeros_like()?;
                Ok(Slot {
                    name,
                    v: m.clone(),
                    m,
                    var,
                    grad: None,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            slots,
            step: 0,
            config,
        })
    }

    /// Steps taken so far.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// The hyperparameters.
    pub fn config(&self) -> &OptimConfig {
        &self.config
    }

    /// Back-propagates `loss` and adds the gradients to those accumulated since the
    /// last [`apply`](Self::apply) (scale micro-batch losses so their sum is the loss).
    pub fn backward(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        for slot in &mut self.slots {
            if let Some(g) = grads.get(slot.var.as_tensor()) {
                slot.grad = Some(match slot.grad.take() {
                    Some(acc) => (acc + g)?,
                    None => g.clone(),
                });
            }
        }
        Ok(())
    }

    /// Clips the accumulated gradients to the global norm and takes one AdamW step;
    /// variables without a gradient are left alone (as candle and torch do). Fails
    /// when no variable has a gradient or the norm is not finite.
    pub fn apply(&mut self) -> Result<StepStats> {
        let grads: Vec<&Tensor> = self.slots.iter().filter_map(|s| s.grad.as_ref()).collect();
        if grads.is_empty() {
            return Err(Error::Input(
                "optimiser step without gradients (call backward first)".into(),
            ));
        }
        let grad_norm = global_norm(&grads)?;
        if !grad_norm.is_finite() {
            self.slots.iter_mut().for_each(|s| s.grad = None);
            return Err(Error::Input(format!(
                "gradient norm is {grad_norm} at step {}",
                self.step + 1
            )));
        }
        let clip = match self.config.max_grad_norm {
            Some(max) => (max / (grad_norm + 1e-6)).min(1.0),
            None => 1.0,
        };
        self.step += 1;
        let c = &self.config;
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        let (scale_m, scale_v) = (1.0 / (1.0 - c.beta1.powi(t)), 1.0 / (1.0 - c.beta2.powi(t)));
        for slot in &mut self.slots {
            let Some(g) = slot.grad.take() else { continue };
            let g = if clip < 1.0 { (g * clip)? } else { g };
            slot.m = ((&slot.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            slot.v = ((&slot.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&slot.m * scale_m)? / ((&slot.v * scale_v)?.sqrt()? + c.eps)?)?;
            let theta = (slot.var.as_tensor() * (1.0 - c.lr * c.weight_decay))?;
            slot.var.set(&(theta - (update * c.lr)?)?)?;
        }
        Ok(StepStats {
            grad_norm,
            step: self.step,
        })
    }

    /// [`backward`](Self::backward) then [`apply`](Self::apply): one full step on `loss`.
    pub fn step(&mut self, loss: &Tensor) -> Result<StepStats> {
        self.backward(loss)?;
        self.apply()
    }

    /// Writes the moments and step count to the safetensors file `path`.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        let step = i64::try_from(self.step)
            .map_err(|_| Error::Input("optimiser step overflows i64".into()))?;
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        tensors.insert(STEP_TENSOR.into(), Tensor::new(&[step], &Device::Cpu)?);
        for s in &self.slots {
            tensors.insert(format!("m.{}", s.name), s.m.contiguous()?);
            tensors.insert(format!("v.{}", s.name), s.v.contiguous()?);
        }
        candle_core::safetensors::save(&tensors, path).map_err(|e| Error::Weights {
            file: path.display().to_string(),
            message: format!("cannot write optimiser state: {e}"),
        })
    }

    /// Restores the moments and step count written by [`save_state`](Self::save_state)
    /// for the same variables (names, shapes and dtypes must match).
    pub fn load_state(&mut self, path: &Path) -> Result<()> {
        let file = path.display().to_string();
        let bad = |message: String| Error::Weights {
            file: file.clone(),
            message,
        };
        let device = self
            .slots
            .first()
            .map(|s| s.var.device().clone())
            .unwrap_or(Device::Cpu);
        let tensors = candle_core::safetensors::load(path, &device)
            .map_err(|e| bad(format!("cannot read optimiser state: {e}")))?;
        let step = tensors
            .get(STEP_TENSOR)
            .ok_or_else(|| bad(format!("tensor `{STEP_TENSOR}` missing")))?;
        let step = step.to_dtype(DType::I64)?.to_vec1::<i64>()?;
        let step = step
            .first()
            .and_then(|&s| u64::try_from(s).ok())
            .ok_or_else(|| bad("bad step counter".into()))?;
        for slot in &mut self.slots {
            for (key, target) in [("m", &mut slot.m), ("v", &mut slot.v)] {
                let name = format!("{key}.{}", slot.name);
                let t = tensors
                    .get(&name)
                    .ok_or_else(|| bad(format!("tensor `{name}` missing")))?;
                if t.shape() != slot.var.shape() || t.dtype() != slot.var.dtype() {
                    return Err(bad(format!(
                        "tensor `{name}` is {:?} {:?}, expected {:?} {:?}",
                        t.dims(),
                        t.dtype(),
                        slot.var.dims(),
                        slot.var.dtype()
                    )));
                }
                *target = t.clone();
            }
            slot.grad = None;
        }
        self.step = step;
        Ok(())
    }
}

/// Global L2 norm of `grads` (accumulated in f64 on the host).
pub fn global_norm(grads: &[&Tensor]) -> Result<f64> {
    let mut sum = 0.0f64;
    for g in grads {
        sum += f64::from(
            g.to_dtype(DType::F32)?
                .sqr()?
                .sum_all()?
                .to_scalar::<f32>()?,
        );
    }
    Ok(sum.sqrt())
}
