//! `log_softmax(logits)[target]` per row in one pass, with a one-pass backward: the
//! log-probabilities of the scored tokens without materialising the `(rows, vocab)`
//! log-softmax, its exponentials and the scatter of `gather`'s backward.
//!
//! On the CPU with f32 logits this is a custom op (forward: max, then `sum exp` per
//! row; backward: `g (onehot - softmax)` per row); with the `cuda` feature the same op
//! runs `kernels/picked_logprob.cu` when switched on ([`CudaKernel::PickedLogprob`]).
//! Elsewhere (other dtypes and devices) it is the same function written with
//! differentiable tensor ops.

use super::kernel::{
    f32_slice, for_each_row, fused, log_sum_exp, scaled_exp, u32_slice, Precomputed,
};
use super::switch::CudaKernel;
use crate::Result;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, D};

/// `out[..] = log_softmax(logits[.., :])[targets[..]]`: `logits` `(..., vocab)` f32,
/// `targets` u32 with the leading shape of `logits`; differentiable in `logits`. A
/// target outside the vocabulary is an error on the CPU and gives NaN from the CUDA
/// kernel (checking there would copy the targets to the host and stall the stream).
pub fn picked_logprob(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let vocab = logits.dim(D::Minus1)?;
    let lead = &logits.dims()[..logits.rank() - 1];
    if targets.dims() != lead {
        return Err(crate::Error::Input(format!(
            "picked_logprob: targets of shape {:?} for logits of shape {:?}",
            targets.dims(),
            logits.dims()
        )));
    }
    // f32 logits only: the tensor ops compute the log-softmax of bf16 logits in bf16.
    if fused(CudaKernel::PickedLogprob, &[logits]) && logits.dtype() == DType::F32 {
        let rows: usize = lead.iter().product();
        let flat = logits.reshape((rows, vocab))?;
        let t = targets.flatten_all()?.to_dtype(DType::U32)?;
        let out = flat.apply_op2(&t, PickedLogprob)?;
        return Ok(out.reshape(lead)?);
    }
    let logp = crate::ops::log_softmax(logits)?;
    Ok(logp
        .gather(&targets.contiguous()?.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)?)
}

/// `picked_logprob(hidden W^T, targets)`: the log-probabilities of `targets` under the
/// linear output head `weight` `(vocab, d)` applied to `hidden` `(..., d)`;
/// differentiable in `hidden` and `weight`.
///
/// On the CPU with f32 operands the `(rows, vocab)` logits never enter the autograd
/// graph: the op keeps them for its backward pass, which forms `g (onehot - softmax)`
/// once and multiplies it into both gradients, instead of the graph's chain of
/// full-size temporaries (cast, log-softmax, gather and their gradients, each zeroed
/// and accumulated). The same on a CUDA device with the kernel switched on, in f32 or
/// bf16 (bf16 logits read as f32, exactly as the tensor ops' cast; log-probabilities in
/// f32; an out-of-vocabulary target gives NaN there instead of an error). Elsewhere it is
/// `picked_logprob(hidden.matmul(weight^T).to_dtype(f32), targets)`.
pub fn linear_picked_logprob(hidden: &Tensor, weight: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let d = hidden.dim(D::Minus1)?;
    let (_, wd) = weight.dims2()?;
    if wd != d {
        return Err(crate::Error::Input(format!(
            "linear_picked_logprob: hidden size {d} but a weight of shape {:?}",
            weight.dims()
        )));
    }
    let lead = hidden.dims()[..hidden.rank() - 1].to_vec();
    let rows: usize = lead.iter().product();
    let h2 = hidden.reshape((rows, d))?;
    if !fused(CudaKernel::PickedLogprob, &[hidden, weight]) {
        let logits = h2.matmul(&weight.t()?)?.to_dtype(DType::F32)?;
        return Ok(picked_logprob(&logits, &targets.reshape(rows)?)?.reshape(lead)?);
    }
    if targets.dims() != lead.as_slice() {
        return Err(crate::Error::Input(format!(
            "linear_picked_logprob: targets of shape {:?} for hidden states of shape {:?}",
            targets.dims(),
            hidden.dims()
        )));
    }
    let targets = targets.flatten_all()?.to_dtype(DType::U32)?;
    let logits = h2.detach().matmul(&weight.detach().t()?)?;
    let picked = logits.apply_op2_no_bwd(&targets, &PickedLogprob)?;
    if !(h2.track_op() || weight.track_op()) {
        return Ok(picked.reshape(lead)?);
    }
    let op = LinearPicked {
        logits,
        targets,
        result: Precomputed::new(picked),
    };
    Ok(h2.apply_op2(weight, op)?.reshape(lead)?)
}

/// The differentiable face of [`linear_picked_logprob`]: arguments `(hidden, weight)`;
/// the forward result and what the backward pass needs were computed beforehand.
struct LinearPicked {
    logits: Tensor,
    targets: Tensor,
    result: Precomputed,
}

impl CustomOp2 for LinearPicked {
    fn name(&self) -> &'static str {
        "linear-picked-logprob"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.result.take(self.name())
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        self.result.take_cuda(self.name())
    }

    fn bwd(
        &self,
        hidden: &Tensor,
        weight: &Tensor,
        picked: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let coef = Tensor::stack(&[&picked.detach(), &grad_res.detach()], 1)?;
        let g = self
            .logits
            .apply_op3_no_bwd(&self.targets, &coef, &PickedLogprobGrad)?;
        let grad_hidden = g.matmul(&weight.detach())?;
        let grad_weight = g.t()?.matmul(&hidden.detach())?;
        Ok((Some(grad_hidden), Some(grad_weight)))
    }
}

/// The forward op: `(rows, vocab)` f32 logits and `(rows,)` u32 targets to `(rows,)`.
struct PickedLogprob;

/// The backward op: `(rows, vocab)` logits, `(rows,)` targets and `(rows, 2)` =
/// `[log-prob, upstream gradient]` to the logits' gradient.
struct PickedLogprobGrad;

/// Checks the target ids against the vocabulary.
fn check_targets(targets: &[u32], vocab: usize) -> candle_core::Result<()> {
    match targets.iter().find(|t| **t as usize >= vocab) {
        Some(t) => Err(candle_core::Error::Msg(format!(
            "picked_logprob: target id {t} outside a vocabulary of {vocab}"
        ))),
        None => Ok(()),
    }
}

impl CustomOp2 for PickedLogprob {
    fn name(&self) -> &'static str {
        "picked-logprob"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, vocab) = l1.shape().dims2()?;
        let logits = f32_slice(s1, l1)?;
        let targets = u32_slice(s2, l2)?;
        check_targets(targets, vocab)?;
        let mut out = vec![0f32; rows];
        for_each_row(&mut out, 1, |r, o| {
            let row = &logits[r * vocab..(r + 1) * vocab];
            o[0] = row[targets[r] as usize] - log_sum_exp(row);
        });
        Ok((CpuStorage::F32(out), Shape::from(rows)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let rows = l1.shape().dims2()?.0;
        Ok((gpu::forward(s1, l1, s2, l2)?, Shape::from(rows)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let coef = Tensor::stack(&[res, grad_res], 1)?;
        let grad = logits.apply_op3_no_bwd(targets, &coef, &PickedLogprobGrad)?;
        Ok((Some(grad), None))
    }
}

impl CustomOp3 for PickedLogprobGrad {
    fn name(&self) -> &'static str {
        "picked-logprob-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, vocab) = l1.shape().dims2()?;
        let logits = f32_slice(s1, l1)?;
        let targets = u32_slice(s2, l2)?;
        let coef = f32_slice(s3, l3)?;
        let mut grad = vec![0f32; rows * vocab];
        for_each_row(&mut grad, vocab, |r, g| {
            let row = &logits[r * vocab..(r + 1) * vocab];
            let t = targets[r] as usize;
            let (logp, up) = (coef[2 * r], coef[2 * r + 1]);
            // lse = logits[t] - logp; d logp / d x_v = [v = t] - exp(x_v - lse).
            scaled_exp(g, row, row[t] - logp, -up);
            g[t] += up;
        });
        Ok((CpuStorage::F32(grad), Shape::from((rows, vocab))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        Ok((gpu::backward(s1, l1, s2, l2, s3, l3)?, l1.shape().clone()))
    }
}

/// The CUDA side: the kernels of `kernels/picked_logprob.cu` on f32 or bf16 logits, u32
/// targets and f32 log-probabilities (mixed dtypes, so no candle `Map` dispatch).
#[cfg(feature = "cuda")]
mod gpu {
    use super::super::cuda::{contiguous, int, kernel_name, per_row, PICKED_LOGPROB};
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, DeviceRepr, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, CudaStorageSlice, WrapErr};
    use candle_core::{CudaStorage, Layout, WithDType};

    /// `(rows, vocab)` of the logits, checked against the targets' (and `coef`'s) length.
    fn shape(l: &Layout, targets: &Layout) -> candle_core::Result<(usize, usize)> {
        let (rows, vocab) = l.shape().dims2()?;
        let n = targets.shape().elem_count();
        if n != rows {
            candle_core::bail!("picked_logprob: {n} targets for {rows} rows of logits");
        }
        Ok((rows, vocab))
    }

    /// The forward kernel: `(rows,)` f32 log-probabilities.
    pub(super) fn forward(
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
    ) -> candle_core::Result<CudaStorage> {
        fn run<T: DeviceRepr + WithDType>(
            x: &CudaSlice<T>,
            lx: &Layout,
            t: &CudaStorage,
            lt: &Layout,
        ) -> candle_core::Result<CudaStorage> {
            let (rows, vocab) = shape(lx, lt)?;
            let dev = t.device();
            let x = contiguous("picked_logprob", x, lx)?;
            let t = contiguous("picked_logprob", t.as_cuda_slice::<u32>()?, lt)?;
            let func = dev.get_or_load_custom_func(
                &kernel_name::<T>("picked_logprob_fwd"),
                PICKED_LOGPROB.name,
                PICKED_LOGPROB.ptx,
            )?;
            // SAFETY: every row's value is written by the kernel.
            let out = unsafe { dev.alloc::<f32>(rows)? };
            let width = int("picked_logprob vocabulary", vocab)?;
            // Argument order mirrored in ops/emulation/launches.rs.
            let mut b = func.builder();
            b.arg(&x).arg(&t).arg(&out).arg(&width);
            // SAFETY: the kernel reads rows x vocab logits and rows targets, writes rows.
            unsafe { b.launch(per_row(rows, vocab)?) }.w()?;
            Ok(f32::wrap_cuda_slice(out, dev.clone()))
        }
        match &s1.slice {
            CudaStorageSlice::F32(x) => run(x, l1, s2, l2),
            CudaStorageSlice::BF16(x) => run(x, l1, s2, l2),
            _ => candle_core::bail!("picked_logprob: {:?} logits (f32 or bf16)", s1.dtype()),
        }
    }

    /// The backward kernel: the logits' gradient, in the logits' dtype.
    pub(super) fn backward(
        s1: &CudaStorage,
        l1: &Layout,
        s2: &CudaStorage,
        l2: &Layout,
        s3: &CudaStorage,
        l3: &Layout,
    ) -> candle_core::Result<CudaStorage> {
        fn run<T: DeviceRepr + WithDType + CudaDType>(
            x: &CudaSlice<T>,
            lx: &Layout,
            (t, lt): (&CudaStorage, &Layout),
            (c, lc): (&CudaStorage, &Layout),
        ) -> candle_core::Result<CudaStorage> {
            let (rows, vocab) = shape(lx, lt)?;
            if lc.shape().elem_count() != 2 * rows {
                candle_core::bail!(
                    "picked_logprob_grad: coefficients {:?} for {rows} rows",
                    lc.shape()
                );
            }
            let dev = t.device();
            let x = contiguous("picked_logprob_grad", x, lx)?;
            let t = contiguous("picked_logprob_grad", t.as_cuda_slice::<u32>()?, lt)?;
            let c = contiguous("picked_logprob_grad", c.as_cuda_slice::<f32>()?, lc)?;
            let func = dev.get_or_load_custom_func(
                &kernel_name::<T>("picked_logprob_bwd"),
                PICKED_LOGPROB.name,
                PICKED_LOGPROB.ptx,
            )?;
            // SAFETY: every element is written by the kernel.
            let grad = unsafe { dev.alloc::<T>(rows * vocab)? };
            let width = int("picked_logprob vocabulary", vocab)?;
            // Argument order mirrored in ops/emulation/launches.rs.
            let mut b = func.builder();
            b.arg(&x).arg(&t).arg(&c).arg(&grad).arg(&width);
            // SAFETY: the kernel reads rows x vocab logits, rows targets, 2 rows
            // coefficients, and writes rows x vocab.
            unsafe { b.launch(per_row(rows, vocab)?) }.w()?;
            Ok(T::wrap_cuda_slice(grad, dev.clone()))
        }
        match &s1.slice {
            CudaStorageSlice::F32(x) => run(x, l1, (s2, l2), (s3, l3)),
            CudaStorageSlice::BF16(x) => run(x, l1, (s2, l2), (s3, l3)),
            _ => candle_core::bail!("picked_logprob_grad: {:?} logits (f32 or bf16)", s1.dtype()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The reference: differentiable ops.
    fn reference(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
        let logp = crate::ops::log_softmax(logits)?;
        Ok(logp
            .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
            .squeeze(D::Minus1)?)
    }

    #[test]
    fn matches_log_softmax_gather_with_gradients() -> Result<()> {
        let dev = Device::Cpu;
        let (b, t, v) = (3, 5, 37);
        let data: Vec<f32> = (0..b * t * v)
            .map(|i| ((i * 7919) % 101) as f32 * 0.13 - 6.0)
            .collect();
        let ids: Vec<u32> = (0..b * t).map(|i| ((i * 13) % v) as u32).collect();
        let targets = Tensor::from_vec(ids, (b, t), &dev)?;
        let weights = Tensor::from_vec(
            (0..b * t).map(|i| (i % 4) as f32 - 1.5).collect::<Vec<_>>(),
            (b, t),
            &dev,
        )?;
        let x = Var::from_vec(data, (b, t, v), &dev)?;
        let ours = picked_logprob(x.as_tensor(), &targets)?;
        let theirs = reference(x.as_tensor(), &targets)?;
        let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "forward differs by {diff}");
        let g1 = (ours * &weights)?.sum_all()?.backward()?;
        let g2 = (theirs * &weights)?.sum_all()?.backward()?;
        let (g1, g2) = (g1.get(&x).unwrap(), g2.get(&x).unwrap());
        let diff = (g1 - g2)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "gradients differ by {diff}");
        Ok(())
    }

    #[test]
    fn linear_head_matches_matmul_then_picked_logprob() -> Result<()> {
        let dev = Device::Cpu;
        let (b, t, d, v) = (2, 7, 5, 29);
        let h = Var::from_vec(
            (0..b * t * d)
                .map(|i| ((i * 37) % 19) as f32 * 0.11 - 1.0)
                .collect::<Vec<_>>(),
            (b, t, d),
            &dev,
        )?;
        let w = Var::from_vec(
            (0..v * d)
                .map(|i| ((i * 53) % 23) as f32 * 0.07 - 0.8)
                .collect::<Vec<_>>(),
            (v, d),
            &dev,
        )?;
        let ids: Vec<u32> = (0..b * (t - 2)).map(|i| ((i * 11) % v) as u32).collect();
        let targets = Tensor::from_vec(ids, (b, t - 2), &dev)?;
        // A narrowed (non-contiguous) input, as the response positions are.
        let hn = h.as_tensor().narrow(1, 1, t - 2)?;
        let ours = linear_picked_logprob(&hn, w.as_tensor(), &targets)?;
        let logits = hn.broadcast_matmul(&w.as_tensor().t()?)?;
        let theirs = reference(&logits, &targets)?;
        let diff = (&ours - &theirs)?.abs()?.max_all()?.to_scalar::<f32>()?;
        assert!(diff < 1e-5, "forward differs by {diff}");
        let g1 = ours.sum_all()?.backward()?;
        let g2 = theirs.sum_all()?.backward()?;
        for var in [&h, &w] {
            let (a, b) = (g1.get(var).unwrap(), g2.get(var).unwrap());
            let diff = (a - b)?.abs()?.max_all()?.to_scalar::<f32>()?;
            assert!(diff < 1e-5, "gradients differ by {diff}");
        }
        Ok(())
    }

    #[test]
    fn rejects_out_of_vocabulary_targets() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 4), DType::F32, &dev)?;
        let t = Tensor::new(&[1u32, 4], &dev)?;
        let err = picked_logprob(&x, &t).unwrap_err().to_string();
        assert!(err.contains("target id 4"), "{err}");
        Ok(())
    }
}
