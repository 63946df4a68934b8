//! Seeded initialisation of trainable variables. candle's CPU random generator cannot
//! be seeded, so this [`SimpleBackend`] creates the missing variables of a [`VarMap`]
//! itself: each tensor is drawn from a ChaCha generator seeded from the run seed and
//! the tensor's name, so the values do not depend on construction order or device.

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// A [`VarMap`] whose missing variables are created from a seed.
#[derive(Clone)]
pub struct SeededVarMap {
    varmap: VarMap,
    seed: u64,
}

impl SeededVarMap {
    /// Wraps `varmap`; new variables are drawn with `seed`.
    pub fn new(varmap: VarMap, seed: u64) -> Self {
        Self { varmap, seed }
    }

    /// A [`VarBuilder`] at the root that creates variables in this map.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// The generator for the tensor `name`.
    fn rng(&self, name: &str) -> ChaCha8Rng {
        // FNV-1a over the name, mixed with the seed: stable across runs and platforms.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in name.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        ChaCha8Rng::seed_from_u64(h ^ self.seed.rotate_left(32))
    }

    /// Draws the initial value of `name`.
    fn draw(&self, shape: &Shape, name: &str, init: Init) -> candle_core::Result<Vec<f32>> {
        let n = shape.elem_count();
        let mut rng = self.rng(name);
        match init {
            Init::Const(c) => Ok(vec![c as f32; n]),
            Init::Randn { mean, stdev } => {
                let normal = Normal::new(mean, stdev).map_err(|e| {
                    candle_core::Error::Msg(format!("{name}: bad normal init: {e}"))
                })?;
                Ok((0..n).map(|_| normal.sample(&mut rng) as f32).collect())
            }
            Init::Uniform { lo, up } => {
                Ok((0..n).map(|_| rng.random_range(lo..up) as f32).collect())
            }
            Init::Kaiming { .. } => candle_core::bail!(
                "{name}: Kaiming initialisation is not supported by the seeded variable map"
            ),
        }
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        if let Some(var) = self
            .varmap
            .data()
            .lock()
            .ok()
            .and_then(|d| d.get(name).cloned())
        {
            if var.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", var.shape())
            }
            return Ok(var.as_tensor().clone());
        }
        let values = self.draw(&s, name, h)?;
        let tensor = Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?;
        let var = Var::from_tensor(&tensor)?;
        let out = var.as_tensor().clone();
        let mut data = self
            .varmap
            .data()
            .lock()
            .map_err(|_| candle_core::Error::Msg("variable map lock poisoned".into()))?;
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(
        &self,
        name: &str,
        _dtype: DType,
        _dev: &Device,
    ) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: a seeded variable map needs a shape and an initialisation")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}
