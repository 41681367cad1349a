//! # agesynth-nn
//!
//! Fast CPU kernels for agesynth's networks, plugged into candle as custom
//! ops (`CustomOp1/2/3`) with their own backward passes, and the layers the
//! GAN code builds on them.
//!
//! - [`ops`]: `conv2d`, `conv_transpose2d` (any stride, padding, dilation,
//!   groups; fused bias and leaky ReLU), StyleGAN2's modulated convolution
//!   (fused on the Winograd path), activations (leaky ReLU, tanh, sigmoid,
//!   softplus) and per-channel scale-and-bias. On a CPU with `f32` or `f64`
//!   tensors they run our kernels; on CUDA or in half precision they fall
//!   back to candle's own ops, so model code is device-agnostic.
//! - [`layers`]: [`Conv2d`], [`ConvTranspose2d`] and [`Activation`], built
//!   like `candle_nn`'s (`new(&cfg, vb)`, weights named `weight` and `bias`).
//! - [`kernels`]: the slice-level kernels themselves (im2col / col2im + GEMM
//!   with the `gemm` crate's AVX-512 micro-kernels, parallel over the batch;
//!   Winograd F(2×2, 3×3) for 3×3 stride-1 layers; vectorised elementwise
//!   maps).
//! - [`mobilenet`]: MobileNet v1 (TF layout and padding), the backbone of
//!   the imported FaceRes identity network and of the critic fine-tuned
//!   from it.
//! - [`runtime`]: the process settings a CPU training binary applies at
//!   start-up (allocator, thread pools).
//!
//! Every backward pass is written through the same custom ops, so a gradient
//! of a gradient (e.g. an R1 penalty) can be taken where candle allows it;
//! the one exception is the fused modulated convolution, whose backward
//! reports an error if differentiated (`ops::modulated_conv2d_unfused` is the
//! twice-differentiable form).
//!
//! Binaries that train on a CPU should also install a fast global allocator
//! (for example `mimalloc`) and keep freed memory mapped: large tensors are
//! otherwise returned to the OS and page-faulted back in on every step (with
//! mimalloc: `mi_option_set(mi_option_purge_delay, -1)` at start-up, or
//! `MIMALLOC_PURGE_DELAY=-1` in the environment), and call
//! [`runtime::quiet_candle_pool`] first thing in `main`, which stops candle's
//! own worker threads from spinning while these kernels run on rayon's. The
//! `agesynth` binary and the benches do both; see BENCHMARKS.md for what
//! each saves.
#![deny(missing_docs)]

pub mod init;
pub mod kernels;
pub mod layers;
pub mod mobilenet;
pub mod ops;
pub mod runtime;
pub mod vars;

pub use layers::{Activation, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
pub use ops::{ConvParams, ConvTransposeParams};
