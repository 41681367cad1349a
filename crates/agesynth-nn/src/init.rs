//! Reproducible initialisation: a `VarBuilder` whose new variables are drawn
//! from a seeded generator (candle's CPU generator cannot be seeded), with
//! every `candle_nn::Init` (constant, normal, uniform and Kaiming, as our
//! conv layers use).

use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, Var};
use candle_nn::{init::NormalOrUniform, var_builder::SimpleBackend, Init, VarBuilder, VarMap};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

struct Seeded {
    varmap: VarMap,
    rng: Mutex<ChaCha8Rng>,
}

use agesynth_core::random::standard_normal as normal;

impl SimpleBackend for Seeded {
    fn get(
        &self,
        s: Shape,
        name: &str,
        h: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        let mut data =
            self.varmap.data().lock().map_err(|_| {
                candle_core::Error::Msg("the variable map's lock is poisoned".into())
            })?;
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!(
                    "variable `{name}` has shape {:?}, expected {:?}",
                    v.shape(),
                    s
                );
            }
            return Ok(v.as_tensor().clone());
        }
        let n = s.elem_count();
        let mut rng = self
            .rng
            .lock()
            .map_err(|_| candle_core::Error::Msg("the init generator's lock is poisoned".into()))?;
        let uniform = |rng: &mut ChaCha8Rng, lo: f64, up: f64| -> Vec<f64> {
            (0..n)
                .map(|_| lo + (up - lo) * rng.random::<f64>())
                .collect()
        };
        let values: Vec<f64> = match h {
            Init::Const(c) => vec![c; n],
            Init::Randn { mean, stdev } => {
                (0..n).map(|_| mean + stdev * normal(&mut rng)).collect()
            }
            Init::Uniform { lo, up } => uniform(&mut rng, lo, up),
            Init::Kaiming {
                dist,
                fan,
                non_linearity,
            } => {
                let std = non_linearity.gain() / (fan.for_shape(&s) as f64).sqrt();
                match dist {
                    NormalOrUniform::Normal => (0..n).map(|_| std * normal(&mut rng)).collect(),
                    NormalOrUniform::Uniform => {
                        let b = 3f64.sqrt() * std;
                        uniform(&mut rng, -b, b)
                    }
                }
            }
        };
        let var = Var::from_tensor(&Tensor::from_vec(values, s, dev)?.to_dtype(dtype)?)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("`get_unchecked` is not supported for seeded init (`{name}`)")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.varmap
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

/// A `VarBuilder` creating the model's variables in `varmap` with initial
/// values drawn from a generator seeded with `seed` (in the order the model
/// asks for them, so the same seed and config give the same weights).
/// Variables already in the map are reused.
pub fn seeded_var_builder(
    varmap: &VarMap,
    seed: u64,
    dtype: DType,
    device: &Device,
) -> VarBuilder<'static> {
    let backend: Box<dyn SimpleBackend> = Box::new(Seeded {
        varmap: varmap.clone(),
        rng: Mutex::new(ChaCha8Rng::seed_from_u64(seed)),
    });
    VarBuilder::from_backend(backend, dtype, device.clone())
}
