//! TF-style "same" padding, for networks converted from TensorFlow.

use candle_core::{Result, Tensor};

/// What fills the padding of [`pad_same`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadWith {
    /// Zeros (convolutions).
    Zeros,
    /// Copies of the edge (max pools: the edge value is in every padded
    /// window, so the maximum is that of the window's real values).
    Edge,
}

/// Pads the spatial dimensions of `x` `(N, C, H, W)` as TF's "same" padding
/// does for a `k`×`k` window with stride `s`: `max((⌈n/s⌉ − 1)·s + k − n, 0)`
/// in all, the odd one at the bottom and right.
pub fn pad_same(x: &Tensor, k: usize, s: usize, with: PadWith) -> Result<Tensor> {
    let mut x = x.clone();
    for dim in [2, 3] {
        let n = x.dim(dim)?;
        let total = ((n.div_ceil(s.max(1)) - 1) * s + k).saturating_sub(n);
        let (before, after) = (total / 2, total - total / 2);
        if total > 0 {
            x = match with {
                PadWith::Zeros => x.pad_with_zeros(dim, before, after)?,
                PadWith::Edge => x.pad_with_same(dim, before, after)?,
            };
        }
    }
    Ok(x)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn same_padding_matches_tf() {
        let x = Tensor::zeros((1, 1, 112, 112), DType::F32, &Device::Cpu).unwrap();
        // 3x3/2 on 112: one row and column at the bottom and right.
        let p = pad_same(&x, 3, 2, PadWith::Zeros).unwrap();
        assert_eq!(p.dims(), &[1, 1, 113, 113]);
        let ones = Tensor::ones((1, 1, 112, 112), DType::F32, &Device::Cpu).unwrap();
        let p = pad_same(&ones, 3, 2, PadWith::Zeros).unwrap();
        assert_eq!(
            p.sum_all().unwrap().to_scalar::<f32>().unwrap(),
            112.0 * 112.0
        );
        let first: f32 = p
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .get(0)
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(first, 1.0, "nothing is padded at the top left");
        // 1x1/2: none; 3x3/1: one on each side.
        assert_eq!(
            pad_same(&x, 1, 2, PadWith::Zeros).unwrap().dims(),
            &[1, 1, 112, 112]
        );
        assert_eq!(
            pad_same(&x, 3, 1, PadWith::Zeros).unwrap().dims(),
            &[1, 1, 114, 114]
        );
        // An odd size with stride 2 and a 3x3 window: one on each side,
        // copies of the edge.
        let y = Tensor::ones((1, 1, 7, 7), DType::F32, &Device::Cpu).unwrap();
        let e = pad_same(&y, 3, 2, PadWith::Edge).unwrap();
        assert_eq!(e.dims(), &[1, 1, 9, 9]);
        assert_eq!(e.sum_all().unwrap().to_scalar::<f32>().unwrap(), 81.0);
    }
}
