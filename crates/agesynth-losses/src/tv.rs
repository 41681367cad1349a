//! Total variation: the mean absolute difference between neighbouring
//! pixels, a smoothness prior on generated images.

use agesynth_core::{Error, Result};
use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::loss::{Loss, LossInput};

/// Anisotropic total variation of `(N, C, H, W)` images:
/// `mean |x[.., i+1, j] − x[.., i, j]| + mean |x[.., i, j+1] − x[.., i, j]|`
/// (each mean over its own differences), a scalar.
pub fn total_variation(x: &Tensor) -> Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    if h < 2 || w < 2 {
        return Err(Error::InvalidInput(format!(
            "total variation needs images of at least 2x2, got {h}x{w}"
        )));
    }
    let dy = (x.narrow(2, 1, h - 1)? - x.narrow(2, 0, h - 1)?)?;
    let dx = (x.narrow(3, 1, w - 1)? - x.narrow(3, 0, w - 1)?)?;
    Ok((dy.abs()?.mean_all()? + dx.abs()?.mean_all()?)?)
}

/// The total-variation term on the generated images.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TotalVariationLoss {
    /// Its weight.
    pub weight: f64,
}

impl Loss for TotalVariationLoss {
    fn name(&self) -> &str {
        "tv"
    }
    fn weight(&self) -> f64 {
        self.weight
    }
    /// Reads `output` only.
    fn compute(&self, input: &LossInput) -> Result<Tensor> {
        total_variation(input.output)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn total_variation_value() {
        // x = [[0, 1, 3],
        //      [2, 2, 2]]
        // vertical differences 2, 1, −1: mean |·| = 4/3;
        // horizontal differences 1, 2, 0, 0: mean |·| = 3/4;
        // TV = 4/3 + 3/4 = 2.083333; weighted 0.5: 1.041667.
        let x =
            Tensor::from_vec(vec![0f32, 1., 3., 2., 2., 2.], (1, 1, 2, 3), &Device::Cpu).unwrap();
        let v = total_variation(&x).unwrap().to_scalar::<f32>().unwrap();
        assert!((v - 2.083333).abs() < 1e-5, "{v}");
        let l = TotalVariationLoss { weight: 0.5 };
        let w = l
            .weighted(&LossInput::new(&x))
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!((w - 1.041667).abs() < 1e-5, "{w}");
        // A constant image has none.
        let c = Tensor::ones((2, 3, 4, 4), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert_eq!(
            total_variation(&c).unwrap().to_scalar::<f32>().unwrap(),
            0.0
        );
        assert!(total_variation(&x.narrow(2, 0, 1).unwrap()).is_err());
    }
}
