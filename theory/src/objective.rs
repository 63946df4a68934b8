//! The KL-regularised RLHF objective (Eq. 1), optionally with an entropy bonus, its
//! exact gradient, and the flows it defines: the gradient flow (Eq. 4) and, for the
//! tabular policy, the natural-gradient flow ([`Update`]).

use crate::flow::{TabularKlField, TabularNpgField, VectorField};
use crate::policy::{Policy, TabularPolicy};
use crate::{Result, TheoryError};

/// How the policy's parameters follow the objective.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    /// The gradient flow `theta' = grad phi` (Eq. 4): the paper's.
    #[default]
    Pg,
    /// The natural policy gradient flow `theta' = F^+ grad phi`, with `F` the Fisher
    /// information averaged over prompts as the gradient is. For the tabular softmax it
    /// is `theta'[:, x] = r_KL(x, .) - E_pi r_KL(x, .)` per prompt (no `1/|S|`: the
    /// average's factor cancels), i.e. `ln pi` moves by the centred regularised reward.
    Npg,
}

impl std::str::FromStr for Update {
    type Err = TheoryError;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "pg" => Ok(Update::Pg),
            "npg" => Ok(Update::Npg),
            other => Err(TheoryError::invalid(
                "update",
                format!("unknown update `{other}`: use pg or npg"),
            )),
        }
    }
}

/// `phi(theta) = E_{x~S}[ E_{y~pi(.|x)} r_RM(x,y) - lambda KL(pi(.|x) || pi_ref(.|x))
/// + tau H(pi(.|x)) ]` with prompts uniform over `S`, `pi_ref = pi_{theta_0}` and the
/// entropy bonus `tau >= 0` (0 unless [`KlObjective::with_entropy`]: the paper's Eq. 1).
pub struct KlObjective<'a, P: Policy> {
    policy: &'a P,
    /// `r_RM[x][y]`.
    reward: Vec<Vec<f64>>,
    lambda: f64,
    /// `ln pi_ref(y|x)`.
    ref_log_probs: Vec<Vec<f64>>,
    /// The prompt weight `1/|S|` of the full objective.
    prompt_weight: f64,
    /// The entropy bonus `tau`.
    entropy: f64,
}

/// One prompt's view of the policy at some `theta`: what the bounds are stated in.
#[derive(Debug, Clone)]
pub struct PromptState {
    /// `pi(.|x)`.
    pub probs: Vec<f64>,
    /// `r_KL(x, .; theta) = r_RM - lambda ln(pi/pi_ref)` (`- tau ln pi` with an entropy
    /// bonus `tau`): the per-output reward whose centred value the gradient weighs.
    pub kl_reward: Vec<f64>,
    /// `KL(pi(.|x) || pi_ref(.|x))`.
    pub kl: f64,
}

impl<'a, P: Policy> KlObjective<'a, P> {
    /// The objective for `policy` trained on `reward[x][y]`, regularised towards the
    /// policy at `theta0` with coefficient `lambda >= 0`.
    pub fn new(policy: &'a P, reward: Vec<Vec<f64>>, lambda: f64, theta0: &[f64]) -> Result<Self> {
        if !(lambda >= 0.0 && lambda.is_finite()) {
            return Err(TheoryError::invalid(
                "lambda",
                format!("must be a finite number >= 0, got {lambda}"),
            ));
        }
        if theta0.len() != policy.num_params() {
            return Err(TheoryError::invalid(
                "theta0",
                format!(
                    "has {} entries, the policy has {} parameters",
                    theta0.len(),
                    policy.num_params()
                ),
            ));
        }
        if reward.len() != policy.num_prompts() {
            return Err(TheoryError::invalid(
                "reward",
                format!(
                    "has {} prompts, the policy has {}",
                    reward.len(),
                    policy.num_prompts()
                ),
            ));
        }
        for (x, r) in reward.iter().enumerate() {
            if r.len() != policy.num_outputs() {
                return Err(TheoryError::invalid(
                    format!("reward[{x}]"),
                    format!(
                        "has {} outputs, the policy has {}",
                        r.len(),
                        policy.num_outputs()
                    ),
                ));
            }
            if let Some(y) = r.iter().position(|v| !v.is_finite()) {
                return Err(TheoryError::invalid(
                    format!("reward[{x}][{y}]"),
                    "is not a finite number",
                ));
            }
        }
        let ref_log_probs = (0..policy.num_prompts())
            .map(|x| {
                let mut lp = vec![0.0; policy.num_outputs()];
                policy.log_probs(theta0, x, &mut lp);
                lp
            })
            .collect();
        Ok(Self {
            policy,
            reward,
            lambda,
            ref_log_probs,
            prompt_weight: 1.0 / policy.num_prompts() as f64,
            entropy: 0.0,
        })
    }

    /// Adds the entropy bonus `tau H(pi(.|x))` to every prompt's objective: the
    /// regularised reward becomes `r_RM - lambda ln(pi/pi_ref) - tau ln pi`, whose
    /// maximiser is `pi* ∝ (pi_ref^lambda exp(r_RM))^(1/(lambda+tau))`.
    pub fn with_entropy(mut self, tau: f64) -> Result<Self> {
        if !(tau >= 0.0 && tau.is_finite()) {
            return Err(TheoryError::invalid(
                "entropy",
                format!("must be a finite number >= 0, got {tau}"),
            ));
        }
        self.entropy = tau;
        Ok(self)
    }

    /// Treats the policy's prompts as `total_prompts` of a larger tabular policy: each
    /// column then flows with the factor `1/total_prompts` (Lemma 7), so simulating one
    /// prompt's column alone is exact.
    pub fn with_total_prompts(mut self, total_prompts: usize) -> Result<Self> {
        if total_prompts < self.policy.num_prompts() {
            return Err(TheoryError::invalid(
                "num_prompts",
                format!(
                    "must be at least the {} simulated prompts",
                    self.policy.num_prompts()
                ),
            ));
        }
        self.prompt_weight = 1.0 / total_prompts as f64;
        Ok(self)
    }

    /// The policy.
    pub fn policy(&self) -> &P {
        self.policy
    }
    /// The KL coefficient.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }
    /// The entropy bonus `tau`.
    pub fn entropy(&self) -> f64 {
        self.entropy
    }
    /// `r_RM[x]`.
    pub fn reward(&self, x: usize) -> &[f64] {
        &self.reward[x]
    }
    /// `ln pi_ref(.|x)`.
    pub fn ref_log_probs(&self, x: usize) -> &[f64] {
        &self.ref_log_probs[x]
    }

    /// Probabilities, KL-regularised rewards and KL of prompt `x` at `theta`.
    pub fn prompt_state(&self, theta: &[f64], x: usize) -> PromptState {
        let mut lp = vec![0.0; self.policy.num_outputs()];
        self.policy.log_probs(theta, x, &mut lp);
        let mut kl = 0.0;
        let mut kl_reward = Vec::with_capacity(lp.len());
        let mut probs = Vec::with_capacity(lp.len());
        for ((l, l0), r) in lp.iter().zip(&self.ref_log_probs[x]).zip(&self.reward[x]) {
            let p = l.exp();
            let log_ratio = l - l0;
            if p > 0.0 {
                kl += p * log_ratio;
            }
            probs.push(p);
            if self.entropy > 0.0 {
                kl_reward.push(r - self.lambda * log_ratio - self.entropy * l);
            } else {
                kl_reward.push(r - self.lambda * log_ratio);
            }
        }
        PromptState {
            probs,
            kl_reward,
            kl: kl.max(0.0),
        }
    }

    /// Adds `scale * grad phi(theta; x)` (the single-prompt objective, no `1/|S|`) to `grad`:
    /// `grad phi(theta;x) = E_{y~pi}[ (r_KL(y) - E_pi r_KL) grad ln pi(y|x) ]`.
    pub fn add_prompt_gradient(&self, theta: &[f64], x: usize, scale: f64, grad: &mut [f64]) {
        let st = self.prompt_state(theta, x);
        let mean: f64 = st.probs.iter().zip(&st.kl_reward).map(|(p, r)| p * r).sum();
        let w: Vec<f64> = st
            .probs
            .iter()
            .zip(&st.kl_reward)
            .map(|(p, r)| p * (r - mean))
            .collect();
        self.policy.add_score_gradient(theta, x, &w, scale, grad);
    }

    /// `grad phi(theta; x)` for one prompt.
    pub fn prompt_gradient(&self, theta: &[f64], x: usize) -> Vec<f64> {
        let mut g = vec![0.0; theta.len()];
        self.add_prompt_gradient(theta, x, 1.0, &mut g);
        g
    }

    /// `grad phi(theta)`, the full objective averaged over prompts, written into `out`.
    pub fn gradient(&self, theta: &[f64], out: &mut [f64]) {
        out.iter_mut().for_each(|v| *v = 0.0);
        for x in 0..self.policy.num_prompts() {
            self.add_prompt_gradient(theta, x, self.prompt_weight, out);
        }
    }

    /// `phi(theta)` over the simulated prompts (their mean).
    pub fn value(&self, theta: &[f64]) -> f64 {
        let n = self.policy.num_prompts();
        (0..n)
            .map(|x| {
                let st = self.prompt_state(theta, x);
                let er: f64 = st
                    .probs
                    .iter()
                    .zip(&self.reward[x])
                    .map(|(p, r)| p * r)
                    .sum();
                let entropy: f64 = if self.entropy > 0.0 {
                    -st.probs
                        .iter()
                        .filter(|p| **p > 0.0)
                        .map(|p| p * p.ln())
                        .sum::<f64>()
                } else {
                    0.0
                };
                er - self.lambda * st.kl + self.entropy * entropy
            })
            .sum::<f64>()
            / n as f64
    }
}

/// Gradient flow in parameter space (Eq. 4): `d theta/dt = grad phi(theta)`.
impl<P: Policy> VectorField for KlObjective<'_, P> {
    fn dim(&self) -> usize {
        self.policy().num_params()
    }
    fn eval(&self, y: &[f64], dy: &mut [f64]) {
        self.gradient(y, dy);
    }
}

impl KlObjective<'_, TabularPolicy> {
    /// The gradient field of this objective as one fused kernel ([`TabularKlField`]):
    /// what the tabular flows integrate. Equal to `self.gradient` up to rounding.
    ///
    /// With an entropy bonus `tau` the regularised reward
    /// `r - lambda ln(pi/pi_ref) - tau ln pi` equals, up to a constant per prompt (which
    /// the centred gradient drops), `r - (lambda+tau) ln(pi/pi_ref')` with
    /// `ln pi_ref' = lambda/(lambda+tau) ln pi_ref`: the same field with coefficient
    /// `lambda + tau` and that reference.
    pub fn tabular_field(&self) -> TabularKlField {
        let rewards: Vec<&[f64]> = self.reward.iter().map(Vec::as_slice).collect();
        let (refs, coef) = self.effective_reference();
        let refs: Vec<&[f64]> = refs.iter().map(Vec::as_slice).collect();
        TabularKlField::new(&rewards, &refs, coef, self.prompt_weight)
    }

    /// The natural-gradient field ([`Update::Npg`]) of this objective: per prompt,
    /// `theta' = r_tau - E_pi r_tau` with `r_tau` the regularised reward.
    pub fn natural_field(&self) -> TabularNpgField {
        let rewards: Vec<&[f64]> = self.reward.iter().map(Vec::as_slice).collect();
        let (refs, coef) = self.effective_reference();
        let refs: Vec<&[f64]> = refs.iter().map(Vec::as_slice).collect();
        TabularNpgField::new(&rewards, &refs, coef)
    }

    /// The flow of this objective under `update`.
    pub fn field(&self, update: Update) -> Box<dyn VectorField> {
        match update {
            Update::Pg => Box::new(self.tabular_field()),
            Update::Npg => Box::new(self.natural_field()),
        }
    }

    /// `(ln pi_ref', lambda + tau)`: the reference and coefficient of the KL-only
    /// objective with the same field (`pi_ref` itself when `tau = 0`).
    fn effective_reference(&self) -> (std::borrow::Cow<'_, [Vec<f64>]>, f64) {
        let coef = self.lambda + self.entropy;
        if self.entropy > 0.0 {
            let shrink = self.lambda / coef;
            let refs = self
                .ref_log_probs
                .iter()
                .map(|l| l.iter().map(|v| shrink * v).collect())
                .collect();
            (std::borrow::Cow::Owned(refs), coef)
        } else {
            (std::borrow::Cow::Borrowed(&self.ref_log_probs), self.lambda)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_tabular_field_equals_the_objective_gradient() {
        let (n, s) = (9, 3);
        let policy = TabularPolicy::new(n, s);
        let theta0: Vec<f64> = (0..n * s)
            .map(|i| ((i * 37) % 11) as f64 * 0.3 - 1.5)
            .collect();
        let reward: Vec<Vec<f64>> = (0..s)
            .map(|x| {
                (0..n)
                    .map(|y| (((x + 2) * (y + 5)) % 7) as f64 / 3.5 - 1.0)
                    .collect()
            })
            .collect();
        let obj = KlObjective::new(&policy, reward, 0.08, &theta0)
            .unwrap()
            .with_total_prompts(5)
            .unwrap();
        let field = obj.tabular_field();
        let theta: Vec<f64> = theta0
            .iter()
            .enumerate()
            .map(|(i, t)| t + 0.1 * (i % 4) as f64)
            .collect();
        let (mut a, mut b) = (vec![0.0; n * s], vec![0.0; n * s]);
        obj.gradient(&theta, &mut a);
        field.eval(&theta, &mut b);
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() <= 1e-15, "{u} vs {v}");
        }
    }
}
