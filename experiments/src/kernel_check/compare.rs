//! How far a result is from the reference: the largest absolute difference, and the
//! largest difference relative to the scale of its row (the largest reference value
//! of the row), so that an error is judged against the size of what it is in.

use crate::Result;
use candle_core::{DType, Device, Tensor};
use serde::Serialize;

/// The error of one tensor against its reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ErrorStats {
    /// `max |got - reference|`.
    pub max_abs: f64,
    /// `max over rows of max |got - reference| / max |reference|` (rows: the last
    /// dimension; a rank <= 1 tensor is one row; an all-zero reference row counts its
    /// absolute difference).
    pub max_rel: f64,
}

/// The errors of `got` against `reference` (same shape, any dtype and device); a
/// non-finite value anywhere in `got` where the reference is finite is an infinite
/// error.
pub fn errors(reference: &Tensor, got: &Tensor) -> Result<ErrorStats> {
    if reference.dims() != got.dims() {
        return Err(crate::Error::Input(format!(
            "kernel check: a result of shape {:?} against a reference of shape {:?}",
            got.dims(),
            reference.dims()
        )));
    }
    let width = if reference.rank() <= 1 {
        reference.elem_count().max(1)
    } else {
        reference.dims()[reference.rank() - 1].max(1)
    };
    let flat = |t: &Tensor| -> Result<Vec<f32>> {
        Ok(t.to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    };
    let (r, g) = (flat(reference)?, flat(got)?);
    let mut stats = ErrorStats {
        max_abs: 0.0,
        max_rel: 0.0,
    };
    for (rr, gr) in r.chunks(width).zip(g.chunks(width)) {
        let scale = rr.iter().fold(0f64, |m, &v| m.max(f64::from(v).abs()));
        let diff = rr.iter().zip(gr).fold(0f64, |m, (&a, &b)| {
            let d = (f64::from(a) - f64::from(b)).abs();
            if d.is_nan() {
                f64::INFINITY
            } else {
                m.max(d)
            }
        });
        stats.max_abs = stats.max_abs.max(diff);
        let rel = if scale > 0.0 { diff / scale } else { diff };
        stats.max_rel = stats.max_rel.max(rel);
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_is_taken_per_row() -> Result<()> {
        let dev = Device::Cpu;
        let r = Tensor::new(&[[100f32, 1.0], [1.0, 0.5]], &dev)?;
        let g = Tensor::new(&[[100.5f32, 1.0], [1.0, 0.4]], &dev)?;
        let e = errors(&r, &g)?;
        assert!((e.max_abs - 0.5).abs() < 1e-6, "{e:?}");
        // Row 0: 0.5 / 100; row 1: 0.1 / 1.
        assert!((e.max_rel - 0.1).abs() < 1e-6, "{e:?}");
        let nan = Tensor::new(&[[f32::NAN, 1.0], [1.0, 0.5]], &dev)?;
        assert!(errors(&r, &nan)?.max_rel.is_infinite());
        assert!(errors(&r, &Tensor::zeros(3, DType::F32, &dev)?).is_err());
        Ok(())
    }
}
