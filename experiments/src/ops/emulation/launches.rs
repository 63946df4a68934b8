//! The host code's kernel launches, for the emulation: one function per launch sequence
//! of a `cuda_fwd` (or of the AdamW update), with the launch shapes of
//! [`crate::ops::launch`] (the functions the host code calls, so shapes cannot diverge)
//! and the kernel arguments in the order the host code pushes them.
//!
//! The argument lists are MIRRORED from `ops/norm/cuda.rs`, `ops/picked_logprob.rs`,
//! `ops/activation.rs`, `ops/rotary.rs` and `ops/adamw/cuda.rs` (each launch site there
//! points here): a change to one must be made in the other. The driver checks every
//! argument's kind and element type against the kernel's C++ signature, so a mirror
//! that drifted from the kernel fails loudly; one that drifted from the host code does
//! not, hence this note.

use super::driver::{Arg, Elem, Request};
use crate::ops::launch;

/// `<root>_f32` or `<root>_bf16`, as candle's `kernel_name` names the kernels.
fn kernel(root: &str, elem: Elem) -> String {
    match elem {
        Elem::F32 => format!("{root}_f32"),
        Elem::Bf16 => format!("{root}_bf16"),
        Elem::U32 => format!("{root}_u32"),
    }
}

/// A row count or width as the kernels' `int` (the host's `int()` checks the range).
fn int(v: usize) -> Arg {
    Arg::I32(i32::try_from(v).unwrap_or(i32::MAX))
}

/// A count as `size_t`.
fn size(v: usize) -> Arg {
    Arg::U64(v as u64)
}

/// `row_norm_fwd` (ops/norm/cuda.rs): `<op>_fwd(x, params.., out, d, eps)`, one block
/// per row; the output buffer.
pub(super) fn row_norm_fwd(
    req: &mut Request,
    elem: Elem,
    op: &str,
    (x, params): (usize, &[usize]),
    (rows, d): (usize, usize),
    eps: f32,
) -> Result<usize, String> {
    let out = req.output(elem, rows * d);
    let mut args = vec![Arg::Buffer(x)];
    args.extend(params.iter().map(|&p| Arg::Buffer(p)));
    args.extend([Arg::Buffer(out), int(d), Arg::F32(eps)]);
    req.launch(
        &kernel(&format!("{op}_fwd"), elem),
        launch::per_row(rows, d)?,
        args,
    );
    Ok(out)
}

/// `norm_bwd` (ops/norm/cuda.rs) for `k` parameters (1: RMSNorm, 2: LayerNorm): the
/// rows kernel, the column partial sums and their finish, into one `(rows + k, d)`
/// buffer `[dx; params]` as the host's (dx and the parameters are views of it); the
/// buffer.
pub(super) fn norm_bwd(
    req: &mut Request,
    elem: Elem,
    k: usize,
    (x, w, g): (usize, usize, usize),
    (rows, d): (usize, usize),
    eps: f32,
) -> Result<usize, String> {
    let rows_kernel = if k == 1 {
        "rms_norm_bwd_rows"
    } else {
        "layer_norm_bwd_rows"
    };
    let out = req.output(elem, (rows + k) * d);
    let stats = req.output(Elem::F32, rows * 2);
    let (per_chunk, chunks) = launch::norm_param_chunks(rows);
    let partial = req.output(Elem::F32, chunks * k * d);
    req.launch(
        &kernel(rows_kernel, elem),
        launch::per_row(rows, d)?,
        vec![
            Arg::Buffer(x),
            Arg::Buffer(w),
            Arg::Buffer(g),
            Arg::View(out, 0),
            Arg::Buffer(stats),
            int(d),
            Arg::F32(eps),
        ],
    );
    req.launch(
        &kernel("norm_param_partials", elem),
        launch::norm_param_partials(d, chunks),
        vec![
            Arg::Buffer(x),
            Arg::Buffer(g),
            Arg::Buffer(stats),
            Arg::Buffer(partial),
            int(rows),
            int(d),
            int(k),
            int(per_chunk),
        ],
    );
    req.launch(
        &kernel("norm_param_finish", elem),
        launch::norm_param_finish(k * d),
        vec![
            Arg::Buffer(partial),
            Arg::View(out, rows * d),
            int(chunks),
            int(k * d),
        ],
    );
    Ok(out)
}

/// `gpu::forward` (ops/picked_logprob.rs): `picked_logprob_fwd(logits, targets, out,
/// vocab)`; the f32 output buffer.
pub(super) fn picked_logprob_fwd(
    req: &mut Request,
    elem: Elem,
    (logits, targets): (usize, usize),
    (rows, vocab): (usize, usize),
) -> Result<usize, String> {
    let out = req.output(Elem::F32, rows);
    req.launch(
        &kernel("picked_logprob_fwd", elem),
        launch::per_row(rows, vocab)?,
        vec![
            Arg::Buffer(logits),
            Arg::Buffer(targets),
            Arg::Buffer(out),
            int(vocab),
        ],
    );
    Ok(out)
}

/// `gpu::backward` (ops/picked_logprob.rs): `picked_logprob_bwd(logits, targets, coef,
/// grad, vocab)`; the gradient buffer.
pub(super) fn picked_logprob_bwd(
    req: &mut Request,
    elem: Elem,
    (logits, targets, coef): (usize, usize, usize),
    (rows, vocab): (usize, usize),
) -> Result<usize, String> {
    let grad = req.output(elem, rows * vocab);
    req.launch(
        &kernel("picked_logprob_bwd", elem),
        launch::per_row(rows, vocab)?,
        vec![
            Arg::Buffer(logits),
            Arg::Buffer(targets),
            Arg::Buffer(coef),
            Arg::Buffer(grad),
            int(vocab),
        ],
    );
    Ok(grad)
}

/// `gpu::Elementwise::launch` (ops/activation.rs): `<root>(inputs.., out, n)` over `n`
/// elements writing `outputs * n`; the output buffer. `shape` overrides the launch
/// shape (the host's is [`launch::elementwise`]).
pub(super) fn activation(
    req: &mut Request,
    elem: Elem,
    root: &str,
    inputs: &[usize],
    (n, outputs): (usize, usize),
    shape: Option<launch::LaunchShape>,
) -> usize {
    let out = req.output(elem, outputs * n);
    let mut args: Vec<Arg> = inputs.iter().map(|&i| Arg::Buffer(i)).collect();
    args.extend([Arg::Buffer(out), size(n)]);
    req.launch(
        &kernel(root, elem),
        shape.unwrap_or_else(|| launch::elementwise(n)),
        args,
    );
    out
}

/// `Rotary::cuda_fwd` (ops/rotary.rs): `rotary(x, cos, sin, out, n, h, t, d, rot,
/// transpose)` over x of `(b, h, t, d)`; the output buffer.
pub(super) fn rotary(
    req: &mut Request,
    elem: Elem,
    (x, cos, sin): (usize, usize, usize),
    (b, h, t, d): (usize, usize, usize, usize),
    rot: usize,
    transpose: bool,
) -> usize {
    let n = b * h * t * d;
    let out = req.output(elem, n);
    req.launch(
        &kernel("rotary", elem),
        launch::elementwise(n),
        vec![
            Arg::Buffer(x),
            Arg::Buffer(cos),
            Arg::Buffer(sin),
            Arg::Buffer(out),
            size(n),
            int(h),
            int(t),
            int(d),
            int(rot),
            Arg::I32(i32::from(transpose)),
        ],
    );
    out
}

/// `update` (ops/adamw/cuda.rs): `adamw_step_f32(theta, m, v, g, n, consts)` or, with a
/// bf16 weight, `adamw_step_bf16(theta, m, v, g, weight, n, consts)`, in place.
pub(super) fn adamw_step(
    req: &mut Request,
    (theta, m, v, g): (usize, usize, usize, usize),
    weight: Option<usize>,
    n: usize,
    consts: Vec<u8>,
) -> Result<(), String> {
    let mut args = vec![
        Arg::Buffer(theta),
        Arg::Buffer(m),
        Arg::Buffer(v),
        Arg::Buffer(g),
    ];
    args.extend(weight.map(Arg::Buffer));
    args.extend([size(n), Arg::Bytes(consts)]);
    let name = if weight.is_some() {
        "adamw_step_bf16"
    } else {
        "adamw_step_f32"
    };
    req.launch(name, launch::adamw_update(n)?, args);
    Ok(())
}

/// `global_norm` (ops/adamw/cuda.rs): `sq_norm_partials_f32(g, n, partial[i NORM_BLOCKS..])`
/// per gradient `(buffer, n)`, then `sq_norm_finish_f32(partial, count, total)`; the
/// one-value buffer of the sum of squares.
pub(super) fn global_sq_norm(req: &mut Request, grads: &[(usize, usize)]) -> usize {
    let partial = req.output(Elem::F32, grads.len() * launch::NORM_BLOCKS);
    let total = req.output(Elem::F32, 1);
    for (i, &(g, n)) in grads.iter().enumerate() {
        req.launch(
            "sq_norm_partials_f32",
            launch::sq_norm_partials(),
            vec![
                Arg::Buffer(g),
                size(n),
                Arg::View(partial, i * launch::NORM_BLOCKS),
            ],
        );
    }
    req.launch(
        "sq_norm_finish_f32",
        launch::sq_norm_finish(),
        vec![
            Arg::Buffer(partial),
            int(grads.len() * launch::NORM_BLOCKS),
            Arg::Buffer(total),
        ],
    );
    total
}
