//! Adam and AdamW over candle [`Var`]s, with state that can be checkpointed.
//!
//! candle's own `AdamW` keeps its moments private, so a resumed run would
//! restart them from zero. [`Adam`] exposes its state (the step count and the
//! first and second moments of every parameter) as named tensors for the
//! checkpoint, and groups parameters so that each group has its own learning
//! rate.
//!
//! The update for a parameter θ with gradient g at step t (1-based) is
//! PyTorch's:
//! ```text
//! g  ← g + λθ                      (Adam with weight decay λ, coupled)
//! θ  ← θ (1 − lr λ)                (AdamW: decoupled decay)
//! m  ← β₁ m + (1 − β₁) g
//! v  ← β₂ v + (1 − β₂) g²
//! θ  ← θ − lr · (m / (1 − β₁ᵗ)) / (√(v / (1 − β₂ᵗ)) + ε)
//! ```

use std::collections::HashMap;

use candle_core::{backprop::GradStore, DType, Tensor, Var};
use candle_nn::VarMap;
use serde::{Deserialize, Serialize};

use crate::{Result, TrainError};

/// Hyper-parameters of [`Adam`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Base learning rate (each group may scale it).
    pub lr: f64,
    /// Decay of the first moment (StyleGAN2 uses 0).
    pub beta1: f64,
    /// Decay of the second moment (StyleGAN2 uses 0.99).
    pub beta2: f64,
    /// Added to the denominator for stability.
    pub eps: f64,
    /// Weight decay λ (0 disables it).
    pub weight_decay: f64,
    /// `true`: AdamW (decay applied to the weights, decoupled from the
    /// gradient); `false`: Adam with L2 decay added to the gradient.
    pub decoupled: bool,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }
}

impl AdamConfig {
    /// StyleGAN2's setting: β = (0, 0.99), ε = 1e-8, no decay.
    pub fn stylegan2(lr: f64) -> Self {
        AdamConfig {
            lr,
            beta1: 0.0,
            beta2: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        }
    }

    /// AdamW with PyTorch's defaults and decay `weight_decay`.
    pub fn adamw(lr: f64, weight_decay: f64) -> Self {
        AdamConfig {
            lr,
            weight_decay,
            decoupled: true,
            ..AdamConfig::default()
        }
    }

    fn validate(&self) -> Result<()> {
        let ok = self.lr.is_finite()
            && self.lr >= 0.0
            && (0.0..1.0).contains(&self.beta1)
            && (0.0..1.0).contains(&self.beta2)
            && self.eps.is_finite()
            && self.eps > 0.0
            && self.weight_decay.is_finite()
            && self.weight_decay >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(agesynth_core::Error::Config(format!("invalid Adam settings {self:?}")).into())
        }
    }
}

/// A named set of parameters sharing a learning-rate multiplier.
#[derive(Clone, Debug)]
pub struct ParamGroup {
    /// The group's name (a prefix of its parameters' state names).
    pub name: String,
    /// The group's learning rate is `lr_scale × AdamConfig::lr`.
    pub lr_scale: f64,
    /// The parameters, by name.
    pub params: Vec<(String, Var)>,
}

impl ParamGroup {
    /// Every variable of `varmap`, sorted by name.
    pub fn from_varmap(name: impl Into<String>, varmap: &VarMap, lr_scale: f64) -> Self {
        Self::from_varmap_filtered(name, varmap, lr_scale, |_| true)
    }

    /// The variables of `varmap` whose name passes `keep`, sorted by name.
    pub fn from_varmap_filtered(
        name: impl Into<String>,
        varmap: &VarMap,
        lr_scale: f64,
        keep: impl Fn(&str) -> bool,
    ) -> Self {
        let data = varmap.data().lock().unwrap_or_else(|p| p.into_inner());
        let mut params: Vec<(String, Var)> = data
            .iter()
            .filter(|(k, _)| keep(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        ParamGroup {
            name: name.into(),
            lr_scale,
            params,
        }
    }

    /// The number of scalar parameters in the group.
    pub fn numel(&self) -> usize {
        self.params.iter().map(|(_, v)| v.elem_count()).sum()
    }
}

/// A parameter's moments: host buffers updated by the fused kernel for
/// `f32` CPU parameters, tensors on the parameter's device otherwise.
enum Moments {
    Host { m: Vec<f32>, v: Vec<f32> },
    Device { m: Tensor, v: Tensor },
}

impl Moments {
    fn zeros(var: &Var) -> Result<Self> {
        if agesynth_nn::ops::fused_update_supported(var.as_tensor()) {
            let n = var.elem_count();
            return Ok(Moments::Host {
                m: vec![0.0; n],
                v: vec![0.0; n],
            });
        }
        let m = var.as_tensor().zeros_like()?.to_dtype(DType::F32)?;
        Ok(Moments::Device { v: m.clone(), m })
    }

    /// From checkpointed tensors `m`, `v` (already of the parameter's shape).
    fn from_tensors(var: &Var, m: Tensor, v: Tensor) -> Result<Self> {
        let (m, v) = (m.to_dtype(DType::F32)?, v.to_dtype(DType::F32)?);
        if agesynth_nn::ops::fused_update_supported(var.as_tensor()) {
            return Ok(Moments::Host {
                m: m.flatten_all()?.to_vec1()?,
                v: v.flatten_all()?.to_vec1()?,
            });
        }
        Ok(Moments::Device {
            m: m.to_device(var.device())?,
            v: v.to_device(var.device())?,
        })
    }

    /// The moments as tensors of the parameter's shape.
    fn tensors(&self, var: &Var) -> Result<(Tensor, Tensor)> {
        Ok(match self {
            Moments::Host { m, v } => (
                Tensor::from_slice(m, var.shape(), &candle_core::Device::Cpu)?,
                Tensor::from_slice(v, var.shape(), &candle_core::Device::Cpu)?,
            ),
            Moments::Device { m, v } => (m.clone(), v.clone()),
        })
    }
}

struct Slot {
    key: String,
    var: Var,
    moments: Moments,
}

struct Group {
    name: String,
    lr_scale: f64,
    slots: Vec<Slot>,
}

/// Adam / AdamW whose state is saved and restored with checkpoints.
pub struct Adam {
    cfg: AdamConfig,
    groups: Vec<Group>,
    step: u64,
}

/// Metadata stored in the optimizer's safetensors header.
const STEP_KEY: &str = "adam_step";

impl Adam {
    /// An optimizer over `groups` with moments at zero. Group names must be
    /// unique and no parameter may be in two groups.
    pub fn new(groups: Vec<ParamGroup>, cfg: AdamConfig) -> Result<Self> {
        cfg.validate()?;
        let mut seen_groups = std::collections::HashSet::new();
        let mut seen_vars = std::collections::HashSet::new();
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            if !seen_groups.insert(g.name.clone()) {
                return Err(agesynth_core::Error::Config(format!(
                    "two optimizer groups are named `{}`",
                    g.name
                ))
                .into());
            }
            if !(g.lr_scale.is_finite() && g.lr_scale >= 0.0) {
                return Err(agesynth_core::Error::Config(format!(
                    "optimizer group `{}` has learning-rate scale {}",
                    g.name, g.lr_scale
                ))
                .into());
            }
            let mut slots = Vec::with_capacity(g.params.len());
            for (name, var) in g.params {
                if !seen_vars.insert(var.as_tensor().id()) {
                    return Err(agesynth_core::Error::Config(format!(
                        "parameter `{name}` is in two optimizer groups"
                    ))
                    .into());
                }
                let moments = Moments::zeros(&var)?;
                slots.push(Slot {
                    key: format!("{}/{}", g.name, name),
                    var,
                    moments,
                });
            }
            out.push(Group {
                name: g.name,
                lr_scale: g.lr_scale,
                slots,
            });
        }
        Ok(Adam {
            cfg,
            groups: out,
            step: 0,
        })
    }

    /// Chooses how updates run: `true` (the default) runs the fused one-pass
    /// update on every parameter that supports it (`f32` on the CPU), `false`
    /// composes every update from candle's tensor ops, as on other devices.
    /// The two take the same steps (to rounding); the choice is for
    /// comparisons and benchmarks. The moments are kept.
    pub fn set_fused(&mut self, fused: bool) -> Result<()> {
        for g in &mut self.groups {
            for s in &mut g.slots {
                let host = matches!(s.moments, Moments::Host { .. });
                if fused && !host && agesynth_nn::ops::fused_update_supported(s.var.as_tensor()) {
                    let (m, v) = s.moments.tensors(&s.var)?;
                    s.moments = Moments::from_tensors(&s.var, m, v)?;
                } else if !fused && host {
                    let (m, v) = s.moments.tensors(&s.var)?;
                    s.moments = Moments::Device { m, v };
                }
            }
        }
        Ok(())
    }

    /// The hyper-parameters.
    pub fn config(&self) -> &AdamConfig {
        &self.cfg
    }

    /// The number of updates taken so far (the `t` of the bias correction).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Sets the base learning rate (for schedules).
    pub fn set_lr(&mut self, lr: f64) {
        self.cfg.lr = lr;
    }

    /// The learning rate of group `name`, if there is one.
    pub fn group_lr(&self, name: &str) -> Option<f64> {
        self.groups
            .iter()
            .find(|g| g.name == name)
            .map(|g| g.lr_scale * self.cfg.lr)
    }

    /// The variables this optimizer updates, in order.
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.groups
            .iter()
            .flat_map(|g| g.slots.iter().map(|s| &s.var))
    }

    /// Computes the gradients of `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// Takes one step with `grads`. Parameters without a gradient (not used
    /// by the loss) keep their values and moments, as in PyTorch.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (self.cfg.beta1, self.cfg.beta2);
        let bc1 = 1.0 - b1.powi(t);
        let bc2 = 1.0 - b2.powi(t);
        for g in &mut self.groups {
            let lr = self.cfg.lr * g.lr_scale;
            for s in &mut g.slots {
                let Some(grad) = grads.get(s.var.as_tensor()) else {
                    continue;
                };
                let (m, v) = match &mut s.moments {
                    Moments::Host { m, v } => {
                        let step = agesynth_nn::kernels::optim::AdamStep {
                            lr,
                            beta1: b1,
                            beta2: b2,
                            bc1,
                            bc2,
                            eps: self.cfg.eps,
                            weight_decay: self.cfg.weight_decay,
                            decoupled: self.cfg.decoupled,
                        };
                        agesynth_nn::ops::adam_update(&s.var, grad, m, v, &step)?;
                        continue;
                    }
                    Moments::Device { m, v } => (m, v),
                };
                let dtype = s.var.dtype();
                let theta = s.var.as_tensor().detach().to_dtype(DType::F32)?;
                let mut grad = grad.detach().to_dtype(DType::F32)?;
                if self.cfg.weight_decay > 0.0 && !self.cfg.decoupled {
                    grad = (grad + (&theta * self.cfg.weight_decay)?)?;
                }
                let theta = if self.cfg.weight_decay > 0.0 && self.cfg.decoupled {
                    (&theta * (1.0 - lr * self.cfg.weight_decay))?
                } else {
                    theta
                };
                *m = ((&*m * b1)? + (&grad * (1.0 - b1))?)?;
                *v = ((&*v * b2)? + (grad.sqr()? * (1.0 - b2))?)?;
                let denom = ((&*v / bc2)?.sqrt()? + self.cfg.eps)?;
                let update = ((&*m / bc1)? / denom)?;
                let next = (theta - (update * lr)?)?;
                s.var.set(&next.to_dtype(dtype)?)?;
            }
        }
        Ok(())
    }

    /// The state as named tensors: `GROUP/PARAM.m` and `GROUP/PARAM.v`, plus
    /// the step count as string metadata (see [`Adam::metadata`]).
    pub fn state_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = HashMap::new();
        for g in &self.groups {
            for s in &g.slots {
                let (m, v) = s.moments.tensors(&s.var)?;
                out.insert(format!("{}.m", s.key), m);
                out.insert(format!("{}.v", s.key), v);
            }
        }
        Ok(out)
    }

    /// The metadata saved in the state file's header: the step count.
    pub fn metadata(&self) -> HashMap<String, String> {
        HashMap::from([(STEP_KEY.to_string(), self.step.to_string())])
    }

    /// Restores the state from tensors and metadata made by
    /// [`Adam::state_tensors`] and [`Adam::metadata`] for the same groups.
    /// `source` names the file in errors. Nothing changes unless every
    /// moment is present with the right shape.
    pub fn load_state(
        &mut self,
        mut tensors: HashMap<String, Tensor>,
        metadata: &HashMap<String, String>,
        source: &std::path::Path,
    ) -> Result<()> {
        let step: u64 = metadata
            .get(STEP_KEY)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                TrainError::checkpoint(source, format!("optimizer state lacks `{STEP_KEY}`"))
            })?;
        let mut new = Vec::new();
        for g in &self.groups {
            for s in &g.slots {
                let mut take = |suffix: &str| -> Result<Tensor> {
                    let name = format!("{}.{suffix}", s.key);
                    Ok(agesynth_core::io::take_tensor(
                        &mut tensors,
                        source,
                        &name,
                        s.var.dims(),
                    )?)
                };
                new.push(Moments::from_tensors(&s.var, take("m")?, take("v")?)?);
            }
        }
        if let Some(extra) = tensors.keys().min() {
            return Err(TrainError::checkpoint(
                source,
                format!(
                    "optimizer state has `{extra}`, which belongs to no parameter of this model"
                ),
            ));
        }
        let mut it = new.into_iter();
        for g in &mut self.groups {
            for s in &mut g.slots {
                if let Some(moments) = it.next() {
                    s.moments = moments;
                }
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn scalar_var(x: f32) -> Var {
        Var::from_tensor(&Tensor::new(&[x], &Device::Cpu).unwrap()).unwrap()
    }

    fn value(v: &Var) -> f32 {
        v.as_tensor().to_vec1::<f32>().unwrap()[0]
    }

    /// f(θ) = θ², so g = 2θ. θ₀ = 1, lr = 0.1, β = (0.9, 0.999), ε = 1e-8.
    ///
    /// Step 1: g = 2; m = 0.1·2 = 0.2; v = 0.001·4 = 0.004;
    ///   m̂ = 0.2/0.1 = 2; v̂ = 0.004/0.001 = 4; θ = 1 − 0.1·2/(2+1e-8) = 0.9.
    /// Step 2: g = 1.8; m = 0.9·0.2 + 0.1·1.8 = 0.36; v = 0.999·0.004 + 0.001·3.24
    ///   = 0.007236; m̂ = 0.36/0.19 = 1.894737; v̂ = 0.007236/0.001999 = 3.619810,
    ///   √v̂ = 1.902580; θ = 0.9 − 0.1·1.894737/1.902580 = 0.9 − 0.0995878 = 0.8004122.
    #[test]
    fn adam_matches_two_worked_steps() {
        let theta = scalar_var(1.0);
        let group = ParamGroup {
            name: "g".into(),
            lr_scale: 1.0,
            params: vec![("theta".into(), theta.clone())],
        };
        let mut opt = Adam::new(
            vec![group],
            AdamConfig {
                lr: 0.1,
                ..AdamConfig::default()
            },
        )
        .unwrap();
        opt.backward_step(&theta.as_tensor().sqr().unwrap().sum_all().unwrap())
            .unwrap();
        assert!((value(&theta) - 0.9).abs() < 1e-6, "{}", value(&theta));
        opt.backward_step(&theta.as_tensor().sqr().unwrap().sum_all().unwrap())
            .unwrap();
        assert!(
            (value(&theta) - 0.800_412_2).abs() < 1e-5,
            "{}",
            value(&theta)
        );
        assert_eq!(opt.step_count(), 2);
    }

    /// StyleGAN2's β₁ = 0 makes m = g, so the first step is θ − lr·sign(g)
    /// (|g|/√(g²) = 1): θ = 3, g = 6 ⇒ θ = 3 − 0.5 = 2.5. The group's lr scale
    /// 0.01 gives the other parameter 3 − 0.005 = 2.995.
    #[test]
    fn stylegan2_betas_and_group_learning_rates() {
        let a = scalar_var(3.0);
        let b = scalar_var(3.0);
        let mut opt = Adam::new(
            vec![
                ParamGroup {
                    name: "main".into(),
                    lr_scale: 1.0,
                    params: vec![("a".into(), a.clone())],
                },
                ParamGroup {
                    name: "mapping".into(),
                    lr_scale: 0.01,
                    params: vec![("b".into(), b.clone())],
                },
            ],
            AdamConfig::stylegan2(0.5),
        )
        .unwrap();
        let loss = (a.as_tensor().sqr().unwrap() + b.as_tensor().sqr().unwrap())
            .unwrap()
            .sum_all()
            .unwrap();
        opt.backward_step(&loss).unwrap();
        assert!((value(&a) - 2.5).abs() < 1e-6);
        assert!((value(&b) - 2.995).abs() < 1e-6);
        assert_eq!(opt.group_lr("mapping"), Some(0.005));
    }

    /// AdamW: θ = 2, lr = 0.1, λ = 0.5, loss = θ (g = 1):
    /// θ ← 2·(1 − 0.05) = 1.9, then Adam's first step subtracts lr·1 = 0.1: 1.8.
    /// Coupled Adam adds λθ = 1 to g = 1 (g = 2); the first step is still
    /// θ − lr·sign(g) = 1.9.
    #[test]
    fn adamw_decays_weights_and_adam_decays_gradients() {
        let w = scalar_var(2.0);
        let mut opt = Adam::new(
            vec![ParamGroup {
                name: "g".into(),
                lr_scale: 1.0,
                params: vec![("w".into(), w.clone())],
            }],
            AdamConfig::adamw(0.1, 0.5),
        )
        .unwrap();
        opt.backward_step(&w.as_tensor().sum_all().unwrap())
            .unwrap();
        assert!((value(&w) - 1.8).abs() < 1e-6, "{}", value(&w));

        let w = scalar_var(2.0);
        let mut opt = Adam::new(
            vec![ParamGroup {
                name: "g".into(),
                lr_scale: 1.0,
                params: vec![("w".into(), w.clone())],
            }],
            AdamConfig {
                lr: 0.1,
                weight_decay: 0.5,
                ..AdamConfig::default()
            },
        )
        .unwrap();
        opt.backward_step(&w.as_tensor().sum_all().unwrap())
            .unwrap();
        assert!((value(&w) - 1.9).abs() < 1e-6, "{}", value(&w));
    }

    /// The fused one-pass update (f32 parameters on the CPU) and the chain of
    /// tensor ops (any other parameter, here f64, or on request) take the
    /// same steps, with each kind of weight decay.
    #[test]
    fn fused_update_matches_tensor_ops() {
        for cfg in [
            AdamConfig::stylegan2(0.01),
            AdamConfig::adamw(0.01, 0.1),
            AdamConfig {
                lr: 0.01,
                beta1: 0.5,
                weight_decay: 0.05,
                ..AdamConfig::default()
            },
        ] {
            let init: Vec<f64> = (0..300).map(|i| ((i as f64) * 0.37).sin()).collect();
            let run = |dtype: DType, fused: bool| -> Vec<f64> {
                let t = Tensor::new(init.as_slice(), &Device::Cpu)
                    .unwrap()
                    .reshape((3, 100))
                    .unwrap()
                    .to_dtype(dtype)
                    .unwrap();
                let w = Var::from_tensor(&t).unwrap();
                let mut opt = Adam::new(
                    vec![ParamGroup {
                        name: "g".into(),
                        lr_scale: 1.0,
                        params: vec![("w".into(), w.clone())],
                    }],
                    cfg.clone(),
                )
                .unwrap();
                opt.set_fused(fused).unwrap();
                for _ in 0..5 {
                    let loss = (w.as_tensor().powf(3.0).unwrap() - w.as_tensor())
                        .unwrap()
                        .sqr()
                        .unwrap()
                        .sum_all()
                        .unwrap();
                    opt.backward_step(&loss).unwrap();
                }
                w.as_tensor()
                    .flatten_all()
                    .unwrap()
                    .to_dtype(DType::F64)
                    .unwrap()
                    .to_vec1()
                    .unwrap()
            };
            let (fused, chain) = (run(DType::F32, true), run(DType::F64, true));
            let chain32 = run(DType::F32, false);
            for (a, b) in fused.iter().zip(&chain32) {
                assert!((a - b).abs() < 2e-5, "{cfg:?}: {a} vs {b}");
            }
            for (a, b) in fused.iter().zip(&chain) {
                assert!((a - b).abs() < 2e-5, "{cfg:?}: {a} vs {b}");
            }
            // Both moved away from the start.
            assert!(fused.iter().zip(&init).any(|(a, b)| (a - b).abs() > 1e-3));
        }
    }

    /// Saving after 3 steps and loading into a fresh optimizer gives the same
    /// fourth step as continuing without the round trip.
    #[test]
    fn state_round_trip_continues_identically() {
        let make = |x: f32| {
            let v = Var::from_tensor(
                &Tensor::new(&[x, -2.0 * x, 0.5], &Device::Cpu)
                    .unwrap()
                    .reshape((3, 1))
                    .unwrap(),
            )
            .unwrap();
            let opt = Adam::new(
                vec![ParamGroup {
                    name: "g".into(),
                    lr_scale: 1.0,
                    params: vec![("p".into(), v.clone())],
                }],
                AdamConfig::stylegan2(0.05),
            )
            .unwrap();
            (v, opt)
        };
        let loss = |v: &Var| {
            (v.as_tensor().powf(3.0).unwrap() - v.as_tensor())
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let (a, mut opt_a) = make(1.5);
        for _ in 0..3 {
            opt_a.backward_step(&loss(&a)).unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("optim.safetensors");
        agesynth_core::io::save_tensors(
            &path,
            &opt_a.state_tensors().unwrap(),
            Some(opt_a.metadata()),
        )
        .unwrap();

        let (b, mut opt_b) = make(0.0);
        b.set(a.as_tensor()).unwrap();
        let (tensors, meta) = crate::checkpoint::load_tensors_with_metadata(&path).unwrap();
        opt_b.load_state(tensors, &meta, &path).unwrap();
        assert_eq!(opt_b.step_count(), 3);

        opt_a.backward_step(&loss(&a)).unwrap();
        opt_b.backward_step(&loss(&b)).unwrap();
        assert_eq!(
            a.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            b.as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap()
        );

        // A state made for another shape is refused, naming the file.
        let other =
            Var::from_tensor(&Tensor::zeros((2, 1), DType::F32, &Device::Cpu).unwrap()).unwrap();
        let mut opt_c = Adam::new(
            vec![ParamGroup {
                name: "g".into(),
                lr_scale: 1.0,
                params: vec![("p".into(), other)],
            }],
            AdamConfig::default(),
        )
        .unwrap();
        let (tensors, meta) = crate::checkpoint::load_tensors_with_metadata(&path).unwrap();
        let msg = opt_c
            .load_state(tensors, &meta, &path)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("optim.safetensors") && msg.contains("g/p.m"),
            "{msg}"
        );
        assert_eq!(opt_c.step_count(), 0);
    }

    #[test]
    fn bad_settings_are_errors() {
        assert!(Adam::new(
            vec![],
            AdamConfig {
                beta2: 1.0,
                ..AdamConfig::default()
            }
        )
        .is_err());
        let v = scalar_var(1.0);
        let g = ParamGroup {
            name: "g".into(),
            lr_scale: 1.0,
            params: vec![("a".into(), v.clone())],
        };
        let mut g2 = g.clone();
        g2.name = "h".into();
        assert!(Adam::new(vec![g, g2], AdamConfig::default()).is_err());
    }
}
