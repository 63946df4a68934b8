//! The AdamW kernels emulated: the update against the CPU kernel's bits, the gradient
//! norm against the exact sum.

use super::compare::{tensor, values};
use super::driver::{self, Driver, Elem, Request};
use super::launches;
use crate::kernel_check::F32_TOLERANCE;
use crate::ops::adamw::{adamw_update_cpu, AdamWStep, Consts};

/// AdamW: two steps (clipped, then not) of `adamw_step` on an odd-sized tensor give the
/// CPU kernel's bits (the kernel's claim: the same operations in the same order), the
/// bf16 weight the nearest-even rounding of the master; the gradient norm's two-stage
/// sum (one gradient longer than 256 x 256, so threads loop) is within the f32
/// tolerance of the exact sum.
pub(super) fn emulated_adamw_kernels_match_the_cpu_update(driver: &Driver) {
    let n = 37 * 41;
    let wave = |k: f32, s: f32| -> Vec<f32> { (0..n).map(|i| (i as f32 * k).sin() * s).collect() };
    let (theta0, g1, g2) = (wave(0.71, 0.02), wave(1.37, 1e-3), wave(0.23, 2.5e-4));
    let cpu = |v: &[f32]| tensor(v.to_vec(), &[n]);
    let steps = [(0.4, 1), (1.0, 2)]; // (clip, step)
    for weight in [false, true] {
        let mut req = Request::default();
        let theta = req.input(Elem::F32, &theta0);
        let m = req.input(Elem::F32, &vec![0.0; n]);
        let v = req.input(Elem::F32, &vec![0.0; n]);
        let w = weight.then(|| req.output(Elem::Bf16, n));
        let (mut th_c, mut m_c, mut v_c) = (cpu(&theta0), cpu(&vec![0.0; n]), cpu(&vec![0.0; n]));
        for ((clip, t), g) in steps.into_iter().zip([&g1, &g2]) {
            let k = AdamWStep {
                clip,
                beta1: 0.9,
                beta2: 0.999,
                scale_m: 1.0 / (1.0 - 0.9f64.powi(t)),
                scale_v: 1.0 / (1.0 - 0.999f64.powi(t)),
                eps: 1e-8,
                lr: 1e-3,
                weight_decay: 0.01,
            };
            let gb = req.input(Elem::F32, g);
            launches::adamw_step(&mut req, (theta, m, v, gb), w, n, Consts::kernel_bytes(&k))
                .expect("the launch");
            (th_c, m_c, v_c) = adamw_update_cpu(&th_c, &m_c, &v_c, &cpu(g), &k)
                .expect("the CPU update")
                .expect("f32 on the CPU");
        }
        let r = driver.run(&req).expect("the launches");
        for (name, buf, want) in [("theta", theta, &th_c), ("m", m, &m_c), ("v", v, &v_c)] {
            let (got, want) = (r.f32s(buf), values(want));
            let same = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "adamw {name} (bf16 weight: {weight}) differs from the CPU kernel"
            );
        }
        if let Some(w) = w {
            let rounded: Vec<u16> = values(&th_c)
                .iter()
                .map(|&x| driver::bf16_bits(x))
                .collect();
            let got: Vec<u16> = r
                .f32s(w)
                .iter()
                .map(|x| (x.to_bits() >> 16) as u16)
                .collect();
            assert_eq!(got, rounded, "the bf16 weight is not the rounded master");
        }
    }
    // The gradient norm over three gradients, one of 70001 values (> 256 x 256 threads).
    let grads: Vec<Vec<f32>> = [70_001usize, 1517, 41]
        .iter()
        .enumerate()
        .map(|(j, &len)| {
            (0..len)
                .map(|i| ((i * 7 + j) as f32 * 0.013).cos() * 1e-2)
                .collect()
        })
        .collect();
    let mut req = Request::default();
    let bufs: Vec<(usize, usize)> = grads
        .iter()
        .map(|g| (req.input(Elem::F32, g), g.len()))
        .collect();
    let total = launches::global_sq_norm(&mut req, &bufs);
    let got = f64::from(driver.run(&req).expect("the launches").f32s(total)[0]);
    let exact: f64 = grads.iter().flatten().map(|&x| f64::from(x).powi(2)).sum();
    let rel = (got - exact).abs() / exact;
    println!("sum of squares: emulated {got:e}, exact {exact:e}, relative error {rel:.1e}");
    assert!(
        rel <= F32_TOLERANCE,
        "sum of squares {got} vs {exact}: {rel:e}"
    );
}
