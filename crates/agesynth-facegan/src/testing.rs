//! Test doubles.

use agesynth_core::{FaceEmbedder, Result};
use agesynth_nn::{Activation, Conv2d, Conv2dConfig};
use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};

/// A small randomly initialised convolutional network implementing
/// [`FaceEmbedder`]: two stride-2 convolutions, a global average and a
/// linear layer to `dim` values. It is differentiable with respect to its
/// input like the real embedder, which makes it a legitimate stand-in for
/// testing that the identity loss backpropagates into a generator; its
/// embeddings mean nothing about identity.
#[derive(Clone, Debug)]
pub struct RandomEmbedder {
    conv1: Conv2d,
    conv2: Conv2d,
    head: Linear,
    dim: usize,
}

impl RandomEmbedder {
    /// Builds the network with `dim` outputs from `vb` (names `conv1`,
    /// `conv2`, `head`).
    pub fn new(dim: usize, vb: VarBuilder) -> Result<Self> {
        let c = |cin, cout| Conv2dConfig {
            stride: 2,
            padding: 1,
            activation: Activation::LeakyRelu(0.2),
            ..Conv2dConfig::new(cin, cout, 3)
        };
        Ok(RandomEmbedder {
            conv1: Conv2d::new(&c(3, 8), vb.pp("conv1"))?,
            conv2: Conv2d::new(&c(8, 16), vb.pp("conv2"))?,
            head: candle_nn::linear(16, dim, vb.pp("head"))?,
            dim,
        })
    }
}

impl FaceEmbedder for RandomEmbedder {
    fn embed(&self, images: &Tensor) -> Result<Tensor> {
        let h = self.conv2.forward(&self.conv1.forward(images)?)?;
        Ok(self.head.forward(&h.mean((2, 3))?)?)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn threshold(&self) -> f32 {
        0.6
    }
}
