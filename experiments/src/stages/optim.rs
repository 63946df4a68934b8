//! AdamW with global-norm gradient clipping, the optimiser of every stage; policy
//! gradient may take plain SGD instead ([`Optimizer::Sgd`], `pg.optimizer = "sgd"`).
//!
//! ## What the learning rate means
//! - AdamW: each coordinate moves by about `lr` per step whatever the gradient's size
//!   (the update is the bias-corrected first moment over the root of the second), so a
//!   global scale of the loss cancels (up to `eps`).
//! - SGD: `theta <- theta (1 - lr wd) - lr g`, with `g` the clipped gradient: the step
//!   is proportional to the gradient, so a global scale `c` of the loss scales it by
//!   `c` (until clipping caps it): n steps follow the gradient flow for time n `lr`.
//!
//! The update is exactly `candle_nn::AdamW`'s (decoupled weight decay, bias-corrected
//! moments, `eps` outside the square root, as `torch.optim.AdamW`), re-implemented
//! because candle keeps the moments private: a resumable stage must save and restore
//! them ([`AdamW::save_state`], [`AdamW::load_state`]). candle has no gradient
//! clipping; [`AdamW::apply`] rescales all gradients by
//! `max_norm / (norm + 1e-6)` when their global L2 norm exceeds `max_norm`, as
//! `torch.nn.utils.clip_grad_norm_` does. The learning rate is constant.
//!
//! ## Precision
//! The optimiser's arithmetic is f32 whatever the model's dtype. For an f32 model
//! that is plain AdamW. For a bf16 (or f16) model it is mixed precision: the forward
//! and backward passes run in bf16, while the optimiser keeps an f32 *master copy* of
//! every such variable, accumulates gradients in f32, keeps both moments in f32, and
//! after each step writes the master rounded to bf16 back into the variable. Without
//! the master copy, bf16 weights could not train at the paper's learning rates: an
//! update of ~1e-6 relative to a weight is far below bf16's resolution (2^-8) and
//! would round away. Memory per bf16 parameter: 2 (weight) + 4 (master) + 8
//! (moments) + 4 (gradient) bytes. [`AdamW::master_varmap`] gives the f32 masters for
//! saving; [`AdamW::save_state`] stores them with the moments so a resumed run
//! continues from the same f32 weights.
//!
//! ## Host transfers
//! One per [`apply`](AdamW::apply): the global gradient norm (a single f32), which the
//! clipping factor and the finiteness check need. The sum of squares is formed on the
//! device.
//!
//! ## On CUDA
//! With the `cuda` feature and the AdamW kernel switched on
//! ([`CudaKernel::AdamW`](crate::ops::CudaKernel::AdamW), `RMTEACH_CUDA_KERNELS`), each
//! variable's update is one in-place kernel ([`crate::ops::adamw_update_cuda`]: master,
//! moments and bf16 weight written where they are, no allocation) and the gradient norm
//! comes from [`crate::ops::global_norm_cuda`]. SGD keeps the tensor-op path.

use crate::ops::{adamw_update_cpu, adamw_update_cuda, global_norm_cuda, AdamWStep};
use crate::{Error, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// The update rule of [`AdamW::apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// AdamW (the paper's and every stage's default).
    #[default]
    Adamw,
    /// Plain stochastic gradient descent, no momentum: `theta -= lr * g` (after the
    /// same clipping and decoupled weight decay as AdamW).
    Sgd,
}

impl Optimizer {
    /// Whether this is the default ([`Optimizer::Adamw`]); serde skips the default so
    /// records written before SGD existed stay byte-identical.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Hyperparameters of [`AdamW`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimConfig {
    /// The update rule (AdamW unless set).
    pub optimizer: Optimizer,
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
            optimizer: Optimizer::Adamw,
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

/// One trainable variable with its moments and accumulated gradient (all f32).
struct Slot {
    name: String,
    var: Var,
    /// The f32 master copy of a variable stored in another dtype (bf16, f16).
    master: Option<Tensor>,
    m: Tensor,
    v: Tensor,
    grad: Option<Tensor>,
}

impl Slot {
    /// The f32 weights the update applies to: the master copy, or the variable itself.
    fn weights(&self) -> Tensor {
        match &self.master {
            Some(w) => w.clone(),
            None => self.var.as_tensor().clone(),
        }
    }
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
    /// An optimiser over every float variable of `varmap`, moments at zero (f32); a
    /// variable that is not f32 gets an f32 master copy (see the module docs).
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
                let master = if var.dtype() == DType::F32 {
                    None
                } else {
                    Some(var.as_tensor().to_dtype(DType::F32)?.detach())
                };
                // Two buffers: the CUDA update writes m and v in place.
                let zeros = || Tensor::zeros(var.shape(), DType::F32, var.device());
                Ok(Slot {
                    name,
                    master,
                    v: zeros()?,
                    m: zeros()?,
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

    /// Whether any variable is kept in an f32 master copy (a bf16 / f16 model).
    pub fn has_master_weights(&self) -> bool {
        self.slots.iter().any(|s| s.master.is_some())
    }

    /// A variable map with the same names as `varmap` in which every variable this
    /// optimiser keeps a master copy of is replaced by that f32 master (the others are
    /// shared with `varmap`): what to save so a bf16 run's checkpoint keeps the weights
    /// at full precision.
    pub fn master_varmap(&self, varmap: &VarMap) -> Result<VarMap> {
        let out = VarMap::new();
        {
            let src = varmap
                .data()
                .lock()
                .map_err(|_| Error::Input("variable map lock poisoned".into()))?;
            let mut dst = out
                .data()
                .lock()
                .map_err(|_| Error::Input("variable map lock poisoned".into()))?;
            for (name, var) in src.iter() {
                let master = self
                    .slots
                    .iter()
                    .find(|s| &s.name == name)
                    .and_then(|s| s.master.as_ref());
                let var = match master {
                    Some(w) => Var::from_tensor(w)?,
                    None => var.clone(),
                };
                dst.insert(name.clone(), var);
            }
        }
        Ok(out)
    }

    /// Back-propagates `loss` and adds the gradients to those accumulated since the
    /// last [`apply`](Self::apply) (scale micro-batch losses so their sum is the loss).
    ///
    /// Each gradient is taken out of candle's store as it is converted to f32, so a
    /// bf16 model never holds the f32 copy of every gradient beside the bf16 one.
    pub fn backward(&mut self, loss: &Tensor) -> Result<()> {
        let mut grads = loss.backward()?;
        for slot in &mut self.slots {
            if let Some(g) = grads.remove(slot.var.as_tensor()) {
                let g = g.to_dtype(DType::F32)?;
                slot.grad = Some(match slot.grad.take() {
                    Some(acc) => (acc + g)?,
                    None => g,
                });
            }
        }
        Ok(())
    }

    /// Clips the accumulated gradients to the global norm and takes one AdamW (or SGD)
    /// step;
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
                "gradient norm is {grad_norm} at step {}: training diverged (the loss or \
                 the weights are no longer finite); lower the stage's `lr` in its config \
                 table ([sft], [rm], [pg]), or set its `max_grad_norm`",
                self.step + 1
            )));
        }
        let clip = match self.config.max_grad_norm {
            Some(max) => (max / (grad_norm + 1e-6)).min(1.0),
            None => 1.0,
        };
        self.step += 1;
        if self.config.optimizer == Optimizer::Sgd {
            self.sgd_step(clip)?;
            return Ok(StepStats {
                grad_norm,
                step: self.step,
            });
        }
        let c = &self.config;
        let t = i32::try_from(self.step).unwrap_or(i32::MAX);
        let (scale_m, scale_v) = (1.0 / (1.0 - c.beta1.powi(t)), 1.0 / (1.0 - c.beta2.powi(t)));
        let fused = AdamWStep {
            clip,
            beta1: c.beta1,
            beta2: c.beta2,
            scale_m,
            scale_v,
            eps: c.eps,
            lr: c.lr,
            weight_decay: c.weight_decay,
        };
        for slot in &mut self.slots {
            let Some(g) = slot.grad.take() else { continue };
            if slot.master.is_none() {
                let theta = slot.var.as_tensor();
                if let Some((theta, m, v)) = adamw_update_cpu(theta, &slot.m, &slot.v, &g, &fused)?
                {
                    slot.var.set(&theta)?;
                    (slot.m, slot.v) = (m, v);
                    continue;
                }
            }
            let (theta, weight) = match &slot.master {
                Some(master) => (master, Some(slot.var.as_tensor())),
                None => (slot.var.as_tensor(), None),
            };
            if adamw_update_cuda(theta, &slot.m, &slot.v, &g, weight, &fused)? {
                continue;
            }
            let g = if clip < 1.0 { (g * clip)? } else { g };
            slot.m = ((&slot.m * c.beta1)? + (&g * (1.0 - c.beta1))?)?;
            slot.v = ((&slot.v * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let update = ((&slot.m * scale_m)? / ((&slot.v * scale_v)?.sqrt()? + c.eps)?)?;
            let theta = (slot.weights() * (1.0 - c.lr * c.weight_decay))?;
            let theta = (theta - (update * c.lr)?)?;
            match &mut slot.master {
                Some(master) => {
                    slot.var.set(&theta.to_dtype(slot.var.dtype())?)?;
                    *master = theta;
                }
                None => slot.var.set(&theta)?,
            }
        }
        Ok(StepStats {
            grad_norm,
            step: self.step,
        })
    }

    /// One SGD step on the accumulated gradients scaled by `clip`: `theta (1 - lr wd) -
    /// lr clip g` (on the f32 master where there is one); the moments stay at zero.
    fn sgd_step(&mut self, clip: f64) -> Result<()> {
        let c = self.config;
        for slot in &mut self.slots {
            let Some(g) = slot.grad.take() else { continue };
            let theta = (slot.weights() * (1.0 - c.lr * c.weight_decay))?;
            let theta = (theta - (g * (c.lr * clip))?)?;
            match &mut slot.master {
                Some(master) => {
                    slot.var.set(&theta.to_dtype(slot.var.dtype())?)?;
                    *master = theta;
                }
                None => slot.var.set(&theta)?,
            }
        }
        Ok(())
    }

    /// [`backward`](Self::backward) then [`apply`](Self::apply): one full step on `loss`.
    pub fn step(&mut self, loss: &Tensor) -> Result<StepStats> {
        self.backward(loss)?;
        self.apply()
    }

    /// Writes the moments, the f32 master copies (if any) and the step count to the
    /// safetensors file `path`.
    pub fn save_state(&self, path: &Path) -> Result<()> {
        let step = i64::try_from(self.step)
            .map_err(|_| Error::Input("optimiser step overflows i64".into()))?;
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        tensors.insert(STEP_TENSOR.into(), Tensor::new(&[step], &Device::Cpu)?);
        for s in &self.slots {
            tensors.insert(format!("m.{}", s.name), s.m.contiguous()?);
            tensors.insert(format!("v.{}", s.name), s.v.contiguous()?);
            if let Some(w) = &s.master {
                tensors.insert(format!("w.{}", s.name), w.contiguous()?);
            }
        }
        candle_core::safetensors::save(&tensors, path).map_err(|e| Error::Weights {
            file: path.display().to_string(),
            message: format!("cannot write optimiser state: {e}"),
        })
    }

    /// Restores the moments and step count written by [`save_state`](Self::save_state)
    /// for the same variables (names and shapes must match; moments are f32). A
    /// variable with a master copy takes the saved master (and its rounding) when the
    /// file has one, else its current value.
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
                check_f32(t, &name, &slot.var).map_err(bad)?;
                *target = t.clone();
            }
            if let Some(master) = &mut slot.master {
                let name = format!("w.{}", slot.name);
                match tensors.get(&name) {
                    Some(t) => {
                        check_f32(t, &name, &slot.var).map_err(bad)?;
                        slot.var.set(&t.to_dtype(slot.var.dtype())?)?;
                        *master = t.clone();
                    }
                    None => *master = slot.var.as_tensor().to_dtype(DType::F32)?,
                }
            }
            slot.grad = None;
        }
        self.step = step;
        Ok(())
    }
}

/// Checks that a saved optimiser tensor is f32 with `var`'s shape.
fn check_f32(t: &Tensor, name: &str, var: &Var) -> std::result::Result<(), String> {
    if t.shape() != var.shape() || t.dtype() != DType::F32 {
        return Err(format!(
            "tensor `{name}` is {:?} {:?}, expected {:?} F32",
            t.dims(),
            t.dtype(),
            var.dims()
        ));
    }
    Ok(())
}

/// Global L2 norm of `grads`: the squares are summed on the gradients' device in f32
/// (one scalar per tensor, added there) and one number is copied to the host. On CUDA
/// with the AdamW kernel switched on, one kernel per gradient and one final sum
/// ([`global_norm_cuda`]) replace the per-tensor chain of tensor ops.
pub fn global_norm(grads: &[&Tensor]) -> Result<f64> {
    if let Some(norm) = global_norm_cuda(grads)? {
        return Ok(norm);
    }
    let mut sum: Option<Tensor> = None;
    for g in grads {
        let s = g.to_dtype(DType::F32)?.sqr()?.sum_all()?;
        sum = Some(match sum {
            Some(acc) => (acc + s)?,
            None => s,
        });
    }
    let total = match sum {
        Some(t) => f64::from(t.to_scalar::<f32>()?),
        None => 0.0,
    };
    Ok(total.sqrt())
}
