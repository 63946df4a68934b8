//! The right-hand sides of the paper's inequalities, with every constant
//! (restated in `shared/THEORY.md`; numbering follows the paper's appendix).

/// Proposition 2: `||grad phi(theta;x)|| <= 6 M^(1/3) L J_x Var_{y~pi}[r_KL]^(1/3)`.
pub fn prop2_gradient_bound(m: f64, len: usize, jac: f64, var_kl: f64) -> f64 {
    6.0 * m.cbrt() * len as f64 * jac * var_kl.max(0.0).cbrt()
}

/// Theorem 4: `t_gamma >= min{1 - e^(-gamma/9), 1 - e^(-7/(3 lambda))} / (8 L^2 J^2) * E_x Var_{pi_0}[r_RM]^(-1/3)`,
/// with `e^(-7/(3 lambda)) = 0` when `lambda = 0`.
pub fn thm4_time_bound(gamma: f64, lambda: f64, len: usize, jac: f64, mean_var: f64) -> f64 {
    let kl_term = if lambda == 0.0 {
        1.0
    } else {
        1.0 - (-7.0 / (3.0 * lambda)).exp()
    };
    let c = (1.0 - (-gamma / 9.0).exp()).min(kl_term);
    c / (8.0 * (len as f64).powi(2) * jac * jac) * mean_var.powf(-1.0 / 3.0)
}

/// Lemma 8: `||grad_{theta[:,x]} phi(theta;x)||_1 <= sqrt(Var_{y~pi}[r_KL])`.
pub fn lemma8_gradient_bound(var_kl: f64) -> f64 {
    var_kl.max(0.0).sqrt()
}

/// Lemma 10: `pi_T(A|x) <= pi_0(A|x) exp((4 + 2 lambda ln(1/min_y pi_0(y|x))) T / |S|)`.
pub fn lemma10_mass_bound(
    pi0_a: f64,
    lambda: f64,
    min_pi0: f64,
    t: f64,
    num_prompts: usize,
) -> f64 {
    pi0_a * ((4.0 + 2.0 * lambda * (1.0 / min_pi0).ln()) * t / num_prompts as f64).exp()
}

/// Proposition 3: `t_gamma >= 2|S| (1 - e^(-gamma/2)) / sqrt(Var_{pi_0}[r_RM])`.
pub fn prop3_time_bound(gamma: f64, num_prompts: usize, var0: f64) -> f64 {
    2.0 * num_prompts as f64 * (1.0 - (-gamma / 2.0).exp()) / var0.sqrt()
}

/// `rho = (V + gamma + 1) / (r + 1)` of Proposition 4 and Theorems 5-6.
pub fn rho(v_g0: f64, gamma: f64, r_top: f64) -> f64 {
    (v_g0 + gamma + 1.0) / (r_top + 1.0)
}

/// `1/(2e) + 2 ln(1/min_y pi_0(y))`, the entropy-like constant in the lambda conditions.
pub fn lambda_denominator(min_pi0: f64) -> f64 {
    1.0 / (2.0 * std::f64::consts::E) + 2.0 * (1.0 / min_pi0).ln()
}

/// Theorem 5, slow side: `t_gamma >= 2|S| (1 - e^(-gamma/2)) T`.
pub fn thm5_slow_bound(gamma: f64, num_prompts: usize, t_big: f64) -> f64 {
    2.0 * num_prompts as f64 * (1.0 - (-gamma / 2.0).exp()) * t_big
}

/// Theorem 5, fast side: `t_gamma <= 4|S| / (1-rho)^4 (1/pi_0(y_g) - 1/rho)`.
pub fn thm5_fast_bound(num_prompts: usize, rho: f64, pi0_yg: f64) -> f64 {
    4.0 * num_prompts as f64 / (1.0 - rho).powi(4) * (1.0 / pi0_yg - 1.0 / rho)
}

/// Theorem 5's condition on lambda for the fast side:
/// `lambda <= pi_0(y_g) (1-rho)^4 / (8 (1/(2e) + 2 ln(1/min pi_0)))`.
pub fn thm5_lambda_max(pi0_yg: f64, rho: f64, min_pi0: f64) -> f64 {
    pi0_yg * (1.0 - rho).powi(4) / (8.0 * lambda_denominator(min_pi0))
}

/// Theorem 6, fast side: `t_gamma <= 2|S| / (1-rho)^3 (1/c - 1/rho)`.
pub fn thm6_fast_bound(num_prompts: usize, rho: f64, c: f64) -> f64 {
    2.0 * num_prompts as f64 / (1.0 - rho).powi(3) * (1.0 / c - 1.0 / rho)
}

/// Theorem 6's condition on lambda: `lambda <= c (1-rho)^3 / (16 (1/(2e) + 2 ln(1/min pi_0)))`.
pub fn thm6_lambda_max(c: f64, rho: f64, min_pi0: f64) -> f64 {
    c * (1.0 - rho).powi(3) / (16.0 * lambda_denominator(min_pi0))
}

/// Theorem 6, slow side: `t_gamma >= |S|/sqrt(2) (1 - e^(-gamma/2)) T`.
pub fn thm6_slow_bound(gamma: f64, num_prompts: usize, t_big: f64) -> f64 {
    num_prompts as f64 / std::f64::consts::SQRT_2 * (1.0 - (-gamma / 2.0).exp()) * t_big
}

/// The quantities of Proposition 4 for one instance.
#[derive(Debug, Clone, Copy)]
pub struct Prop4Terms {
    /// `rho = (V_G(0) + gamma + 1) / (min_{Y+} r_G + 1)`.
    pub rho: f64,
    /// `delta = (1-rho)(max_{Y+} r_RM - V_RM(0)) - max_{y,y' in Y+} |r_RM(y) - r_RM(y')|`.
    pub delta: f64,
    /// Right-hand side of condition (ii): the largest admissible lambda.
    pub lambda_max: f64,
    /// Right-hand side of condition (iii): the largest admissible `pi_0(Y_bad)`.
    pub bad_mass_max: f64,
    /// The bound `4|S||Y+| / ((1-rho) delta) (1/pi_0(Y+) - 1/rho)`.
    pub time_bound: f64,
}

/// Evaluates Proposition 4's constants for `Y+` (indices) under `pi_0`.
pub fn prop4_terms(
    pi0: &[f64],
    r_g: &[f64],
    r_rm: &[f64],
    y_plus: &[usize],
    gamma: f64,
    num_prompts: usize,
) -> Prop4Terms {
    let v_g0: f64 = pi0.iter().zip(r_g).map(|(p, r)| p * r).sum();
    let v_rm0: f64 = pi0.iter().zip(r_rm).map(|(p, r)| p * r).sum();
    let min_rg = y_plus.iter().map(|&y| r_g[y]).fold(f64::INFINITY, f64::min);
    let rm_plus: Vec<f64> = y_plus.iter().map(|&y| r_rm[y]).collect();
    let max_rm = rm_plus.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let spread = max_rm - rm_plus.iter().copied().fold(f64::INFINITY, f64::min);
    let rho = rho(v_g0, gamma, min_rg);
    let delta = (1.0 - rho) * (max_rm - v_rm0) - spread;
    let n_plus = y_plus.len() as f64;
    let pi0_plus: f64 = y_plus.iter().map(|&y| pi0[y]).sum();
    let min_pi0 = pi0.iter().copied().fold(f64::INFINITY, f64::min);
    let lambda_max = pi0_plus * (1.0 - rho) * delta
        / (8.0 * n_plus * (2.0 * (1.0 / min_pi0).ln() + 1.0 / (2.0 * std::f64::consts::E)));
    let inner = 1.0 / pi0_plus - 1.0 / rho;
    let bad_mass_max = pi0_plus * pi0_plus * (1.0 - rho) * delta / (16.0 * n_plus)
        * (-20.0 * n_plus / ((1.0 - rho) * delta) * inner).exp();
    let time_bound = 4.0 * num_prompts as f64 * n_plus / ((1.0 - rho) * delta) * inner;
    Prop4Terms {
        rho,
        delta,
        lambda_max,
        bad_mass_max,
        time_bound,
    }
}
