//! In-place optimiser updates on candle variables: the fused kernels of
//! [`crate::kernels::optim`] applied to a [`Var`]'s own storage.

use std::cell::RefCell;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, Device, InplaceOp2, Layout, Result, Tensor, Var};

use crate::kernels::optim::{self, AdamStep};

/// Whether [`adam_update`] and the fused path of [`ema_update`] can run on
/// `t`: an `f32` tensor on the CPU.
pub fn fused_update_supported(t: &Tensor) -> bool {
    matches!(t.device(), Device::Cpu) && t.dtype() == DType::F32
}

fn slice_mut<'a>(op: &str, s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{op}: the variable is not contiguous")
    };
    match s {
        CpuStorage::F32(v) => Ok(&mut v[a..b]),
        s => bail!("{op}: expected f32, got {:?}", s.dtype()),
    }
}

fn slice<'a>(op: &str, what: &str, s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let Some((a, b)) = l.contiguous_offsets() else {
        bail!("{op}: {what} is not contiguous")
    };
    match s {
        CpuStorage::F32(v) => Ok(&v[a..b]),
        s => bail!("{op}: expected f32 {what}, got {:?}", s.dtype()),
    }
}

struct AdamOp<'a> {
    m: RefCell<&'a mut [f32]>,
    v: RefCell<&'a mut [f32]>,
    step: AdamStep,
}

impl InplaceOp2 for AdamOp<'_> {
    fn name(&self) -> &'static str {
        "fused-adam"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let theta = slice_mut(self.name(), s1, l1)?;
        let grad = slice(self.name(), "gradient", s2, l2)?;
        let mut m = self.m.borrow_mut();
        let mut v = self.v.borrow_mut();
        if grad.len() != theta.len() || m.len() != theta.len() || v.len() != theta.len() {
            bail!(
                "fused-adam: {} parameters but {} gradients and {}/{} moments",
                theta.len(),
                grad.len(),
                m.len(),
                v.len()
            );
        }
        optim::adam_step(theta, grad, &mut m, &mut v, &self.step);
        Ok(())
    }
}

/// One Adam / AdamW update of `theta` in place (see [`AdamStep`]), with its
/// moments `m` and `v` (host buffers of the same length) updated in place:
/// one pass over the four buffers instead of a chain of tensor ops.
///
/// Only for `f32` variables on the CPU ([`fused_update_supported`]); the
/// gradient is made contiguous if it is not.
pub fn adam_update(
    theta: &Var,
    grad: &Tensor,
    m: &mut [f32],
    v: &mut [f32],
    step: &AdamStep,
) -> Result<()> {
    if !fused_update_supported(theta.as_tensor()) {
        bail!(
            "fused-adam runs on f32 CPU variables, got {:?} on {:?}",
            theta.dtype(),
            theta.device()
        );
    }
    if grad.dims() != theta.dims() {
        bail!(
            "fused-adam: gradient of shape {:?} for a parameter of shape {:?}",
            grad.dims(),
            theta.dims()
        );
    }
    let grad = grad.detach().to_dtype(DType::F32)?.contiguous()?;
    let op = AdamOp {
        m: RefCell::new(m),
        v: RefCell::new(v),
        step: *step,
    };
    theta.as_tensor().inplace_op2(&grad, &op)
}

struct EmaOp {
    decay: f64,
}

impl InplaceOp2 for EmaOp {
    fn name(&self) -> &'static str {
        "fused-ema"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let ema = slice_mut(self.name(), s1, l1)?;
        let live = slice(self.name(), "live weights", s2, l2)?;
        if ema.len() != live.len() {
            bail!(
                "fused-ema: {} values but {} live ones",
                ema.len(),
                live.len()
            );
        }
        optim::ema_step(ema, live, self.decay);
        Ok(())
    }
}

/// `ema ← decay · ema + (1 − decay) · live`, in place: one fused pass for
/// `f32` CPU variables, candle's ops elsewhere.
pub fn ema_update(ema: &Var, live: &Tensor, decay: f64) -> Result<()> {
    if ema.dims() != live.dims() {
        bail!(
            "EMA: shapes differ ({:?} and {:?})",
            ema.dims(),
            live.dims()
        );
    }
    if fused_update_supported(ema.as_tensor())
        && live.dtype() == DType::F32
        && matches!(live.device(), Device::Cpu)
    {
        let live = live.detach().contiguous()?;
        return ema.as_tensor().inplace_op2(&live, &EmaOp { decay });
    }
    let next = ((ema.as_tensor().detach() * decay)? + (live.detach() * (1.0 - decay))?)?;
    ema.set(&next)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ema_update_fused_matches_candle_ops() {
        let dev = Device::Cpu;
        let e0 = Tensor::arange(0f32, 40.0, &dev)
            .unwrap()
            .reshape((5, 8))
            .unwrap();
        let live = (e0.sin().unwrap() * 3.0).unwrap();
        let ema = Var::from_tensor(&e0).unwrap();
        ema_update(&ema, &live, 0.75).unwrap();
        let want = ((&e0 * 0.75).unwrap() + (&live * 0.25).unwrap()).unwrap();
        let d = (ema.as_tensor() - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-6, "{d}");
        // A non-contiguous live tensor is read correctly.
        let t = Var::from_tensor(&e0.t().unwrap().contiguous().unwrap()).unwrap();
        ema_update(&t, &e0.t().unwrap(), 0.0).unwrap();
        let d = (t.as_tensor() - e0.t().unwrap())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0);
        // Mismatched shapes are an error, not a panic.
        assert!(ema_update(&ema, &e0.flatten_all().unwrap(), 0.5).is_err());
    }

    #[test]
    fn adam_update_rejects_what_it_cannot_run() {
        let dev = Device::Cpu;
        let theta = Var::from_tensor(&Tensor::zeros(4, DType::F32, &dev).unwrap()).unwrap();
        let s = AdamStep {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            bc1: 0.1,
            bc2: 0.001,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
        };
        let (mut m, mut v) = (vec![0f32; 3], vec![0f32; 4]);
        let g = Tensor::ones(4, DType::F32, &dev).unwrap();
        assert!(adam_update(&theta, &g, &mut m, &mut v, &s).is_err());
        let mut m = vec![0f32; 4];
        assert!(adam_update(&theta, &g.reshape((2, 2)).unwrap(), &mut m, &mut v, &s).is_err());
        let t64 = Var::from_tensor(&Tensor::zeros(4, DType::F64, &dev).unwrap()).unwrap();
        assert!(adam_update(&t64, &g, &mut m, &mut v, &s).is_err());
        adam_update(&theta, &g, &mut m, &mut v, &s).unwrap();
        // Step 1 with g = 1: m̂ = v̂ = 1, θ = −lr.
        let got = theta.as_tensor().to_vec1::<f32>().unwrap();
        assert!(got.iter().all(|&x| (x + 0.1).abs() < 1e-6), "{got:?}");
    }
}
