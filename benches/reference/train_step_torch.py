#!/usr/bin/env python3
"""PyTorch reference for the two GAN training-step benches (issues 5 and 6).

Re-implements, in plain PyTorch, the same architectures as our Rust code at the
`cpu64` presets, with the same parameter names and counts (checked below), and
times the same training steps as our criterion benches, so that the ratio
ours / PyTorch can be measured in one sitting on the same machine.

cStyleGAN (crates/agesynth-cstylegan, crates/agesynth-train/src/cstylegan.rs):
  G: mapping network (pixel-normalised z ++ pixel-normalised learned age
  embedding, 4 equalised-lr linear layers with lr multiplier 0.01, leaky ReLU
  0.2 with gain sqrt 2), learned 4x4 constant, StyleGAN2 modulated /
  demodulated 3x3 convolutions in the input-scaling form (x*s, one shared
  conv, output * d), per-pixel noise with a learned strength, bias + scaled
  leaky ReLU, modulated 1x1 to-RGB per level summed through bilinear
  upsampling (skip generator); widths 128-128-64-32-16 from 4x4 to 64x64.
  D: 1x1 from-RGB, residual down blocks (3x3 conv, 2x2 average pool, 3x3 conv;
  skip = pool + 1x1 conv, sum / sqrt 2), minibatch stddev (group 4), 3x3 conv,
  fully connected layer to phi, logit = out(phi) + <embed(group), phi>/sqrt(C4).
  Losses: non-saturating logistic; lazy R1 every 16 steps with the trainer's
  default gamma = max(0.1, 0.0002 * 64^2 / batch) = 0.1 at batch 16 and 32,
  weighted gamma/2 * 16. Adam as the trainer: lr 0.0025, betas (0, 0.99),
  eps 1e-8; D's lr and betas scaled by c = 16/17 for lazy regularisation.
  Timed exactly like crates/agesynth-cstylegan/benches/step.rs:
    g_plus_d_step = D step (G forward, detach, D on real and fake, logistic
                    loss, backward) + G step (G forward, D on fake, loss,
                    backward); forward and backward passes only, no optimiser
                    update, fixed latents, fresh noise, groups i % 6, no style
                    mixing -- the row to compare with ours;
    d_step, g_step: its two halves;
    r1_step       = the R1 penalty on the real batch (double backward:
                    autograd.grad(create_graph=True), then backward), the
                    PyTorch idiom for what our r1_step does with a
                    forward-mode JVP;
    adam          = both optimisers' updates (all gradients present);
    full          = g_plus_d_step + adam + r1_step / 16 (amortised lazy R1).
  As in our bench, the G step's backward also computes D's parameter
  gradients (candle computes every variable's gradient; D is not frozen here
  either), and the D step's G forward records its graph before the detach.

FaceGAN (crates/agesynth-facegan, crates/agesynth-train/src/facegan.rs):
  G: U-Net, input = image ++ 6 one-hot age planes, 3x3 stem (32), three 4x4
  stride-2 convs (64-128-256, down to 8x8), 2 residual blocks at 8x8 with FiLM
  from a learned 32-d age embedding (h + conv2(lrelu(conv1(h)*(1+gamma)+beta))),
  three 4x4 stride-2 transposed convs up, each concatenated with its skip and
  fused by a 3x3 conv, 3x3 to-RGB, residual output tanh(atanh(x) + d); leaky
  ReLU 0.2 everywhere. D: PatchGAN 32-64-128 (4x4 stride-2 convs, 3x3 conv),
  1x1 patch logits + projection <embed(group), f>, auxiliary age head (linear
  on the spatial mean of f).
  One step = FaceGanTask::step with the trainer's defaults, identity term off
  (as in crates/agesynth-facegan/benches/step.rs): batch 16 = 8 real + 8
  synthetic inputs, random targets, one G pass for the batch; D step:
  logistic loss (real faces at their groups, all 16 fakes at their targets)
  + age cross-entropy of the real faces (weight 1), R1 (gamma 1, every 16
  steps, weight gamma/2 * 16), Adam update; G step: adversarial + age CE of
  the targets (weight 1) + synthetic L1 (10) + cycle L1 through a second G
  pass on the real half (10) + self-reconstruction L1 on real rows whose
  target is their own group (10), Adam update (lr 2e-4, betas (0.5, 0.999));
  EMA update of G (half-life 10k images). Our bench runs the real step, so R1
  is in 1 step of 16 there; here plain steps and R1 steps are timed
  separately and combined as (15 * plain + r1) / 16.

Data: random tensors of the right shapes (the bench's "real" and synthetic
images are generated patterns too); drawing a batch is an index into tensors
held in memory plus a random left-right flip, so data loading costs ~nothing.
Parameter counts are asserted equal to ours (the counts pinned in
crates/agesynth-cstylegan/tests/model.rs; for FaceGAN, those of the cpu64
weights and checkpoints our trainer writes), and every parameter has the
name and shape of ours; `--check-weights` also compares names and shapes
with safetensors files written by our code. Buffers (cStyleGAN's running mean
of w) are not parameters on either side. Initialisation follows ours where it
matters for the loss scale (equalised learning rate for cStyleGAN); FaceGAN
uses PyTorch's default init (the timing does not depend on it). As a check of
the forward passes, our shipped weights/cstylegan-cpu64.safetensors and
weights/facegan-cpu64.safetensors load into these modules with
`load_state_dict(strict=True)` and render the same kind of faces as our code
(coherent faces at every age group; FaceGAN changes a face least at its own
group).

    python3 -m venv venv-torch && venv-torch/bin/pip install torch==2.15.0
    venv-torch/bin/python benches/reference/train_step_torch.py \\
        [--model cstylegan|facegan|all] [--batch 16 32] [--threads 2] [--runs 7]
    venv-torch/bin/python benches/reference/train_step_torch.py --validate

(PyPI's Linux torch wheel is the CUDA build: it does not import without the
nvidia-* / cuda-* wheels it depends on, about 5 GB installed in all, and then
runs on the CPU without a GPU. Nothing in the workspace needs it.)
"""

import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

SQRT2 = math.sqrt(2.0)
SLOPE = 0.2
GROUPS = 6  # the paper's age groups 0-9, ..., 50+

# Our parameter counts (trainable scalars), cpu64 presets.
CSTYLEGAN_G_PARAMS = 801_992
CSTYLEGAN_D_PARAMS = 879_761
FACEGAN_G_PARAMS = 4_162_019
FACEGAN_D_PARAMS = 314_855


# --------------------------------------------------------------------------
# cStyleGAN (StyleGAN2 form), cpu64
# --------------------------------------------------------------------------

CSTYLEGAN_CPU64 = dict(
    image_size=64,
    z_dim=128,
    w_dim=128,
    age_embed_dim=32,
    mapping_layers=4,
    mapping_lr_mul=0.01,
    g_channels=[128, 128, 64, 32, 16],
    d_channels=[128, 128, 64, 32, 16],
    mbstd_group=4,
    mbstd_features=1,
)


def lrelu_gain(x):
    return F.leaky_relu(x, SLOPE) * SQRT2


def pixel_norm(x):
    return x * (x.square().mean(1, keepdim=True) + 1e-8).rsqrt()


def up2(x):
    # Half-pixel centres, clamped edges: the same filter as ours.
    return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


class EqualLinear(nn.Module):
    def __init__(self, din, dout, bias_init=0.0, lr_mul=1.0, act=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dout, din) / lr_mul)
        self.bias = None if bias_init is None else nn.Parameter(torch.full((dout,), bias_init / lr_mul))
        self.scale = lr_mul / math.sqrt(din)
        self.lr_mul = lr_mul
        self.act = act

    def forward(self, x):
        b = None if self.bias is None else self.bias * self.lr_mul
        y = F.linear(x, self.weight * self.scale, b)
        return lrelu_gain(y) if self.act else y


class EqualConv2d(nn.Module):
    def __init__(self, cin, cout, k, bias=True, act=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.act = act

    def forward(self, x):
        y = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)
        return lrelu_gain(y) if self.act else y


class ModulatedConv2d(nn.Module):
    """Input-scaling form: conv(x * s, W) * d, one shared-weight conv."""

    def __init__(self, cin, cout, k, w_dim, demodulate=True, upsample=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.modulation = EqualLinear(w_dim, cin, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.demodulate = demodulate
        self.upsample = upsample

    def forward(self, x, w):
        s = self.modulation(w)  # (N, cin)
        wt = self.weight * self.scale
        x = x * s[:, :, None, None]
        if self.upsample:
            x = up2(x)
        y = F.conv2d(x, wt, padding=wt.shape[-1] // 2)
        if self.demodulate:
            d = (s.square() @ wt.square().sum((2, 3)).t() + 1e-8).rsqrt()  # (N, cout)
            y = y * d[:, :, None, None]
        return y


class StyledConv(nn.Module):
    def __init__(self, cin, cout, w_dim, upsample=False):
        super().__init__()
        self.noise_strength = nn.Parameter(torch.zeros(1))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.conv = ModulatedConv2d(cin, cout, 3, w_dim, True, upsample)

    def forward(self, x, w):
        y = self.conv(x, w)
        n, _, h, ww = y.shape
        y = y + torch.randn(n, 1, h, ww) * self.noise_strength
        return lrelu_gain(y + self.bias[None, :, None, None])


class ToRgb(nn.Module):
    def __init__(self, cin, w_dim):
        super().__init__()
        self.conv = ModulatedConv2d(cin, 3, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(3))

    def forward(self, x, w):
        return self.conv(x, w) + self.bias[None, :, None, None]


class MappingNetwork(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.age_embed = nn.Parameter(torch.randn(GROUPS, c["age_embed_dim"]))
        dims = [c["z_dim"] + c["age_embed_dim"]] + [c["w_dim"]] * c["mapping_layers"]
        self.layers = nn.ModuleList(
            [EqualLinear(dims[i], dims[i + 1], 0.0, c["mapping_lr_mul"], act=True) for i in range(c["mapping_layers"])]
        )

    def forward(self, z, idx):
        x = torch.cat([pixel_norm(z), pixel_norm(self.age_embed[idx])], 1)
        for layer in self.layers:
            x = layer(x)
        return x


class SynthesisBlock(nn.Module):
    def __init__(self, cprev, c, w_dim, first):
        super().__init__()
        self.conv0 = None if first else StyledConv(cprev, c, w_dim, upsample=True)
        self.conv1 = StyledConv(c, c, w_dim)
        self.to_rgb = ToRgb(c, w_dim)


class SynthesisNetwork(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch = c["g_channels"]
        self.const_input = nn.Parameter(torch.randn(1, ch[0], 4, 4))
        self.blocks = nn.ModuleList(
            [SynthesisBlock(ch[max(l - 1, 0)], ch[l], c["w_dim"], l == 0) for l in range(len(ch))]
        )

    def forward(self, ws):
        n = ws.shape[0]
        x = self.const_input.expand(n, -1, -1, -1)
        img = None
        for l, b in enumerate(self.blocks):
            if b.conv0 is not None:
                x = b.conv0(x, ws[:, 2 * l - 1])
            x = b.conv1(x, ws[:, 2 * l])
            rgb = b.to_rgb(x, ws[:, 2 * l + 1])
            img = rgb if img is None else up2(img) + rgb
        return img


class CStyleGenerator(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.mapping = MappingNetwork(c)
        self.synthesis = SynthesisNetwork(c)
        self.register_buffer("w_avg", torch.zeros(GROUPS, c["w_dim"]))  # not a parameter
        self.num_ws = 2 * len(c["g_channels"])

    def forward(self, z, idx):
        w = self.mapping(z, idx)  # truncation 1 (off), no style mixing
        return self.synthesis(w[:, None, :].expand(-1, self.num_ws, -1))


class DBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3, True, True)
        self.conv1 = EqualConv2d(cin, cout, 3, True, True)
        self.skip = EqualConv2d(cin, cout, 1, False, False)

    def forward(self, x):
        y = self.conv1(F.avg_pool2d(self.conv0(x), 2))
        s = self.skip(F.avg_pool2d(x, 2))
        return (y + s) * (1.0 / SQRT2)


class CStyleDiscriminator(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch = c["d_channels"]
        top = len(ch) - 1
        self.from_rgb = EqualConv2d(3, ch[top], 1, True, True)
        self.blocks = nn.ModuleList([DBlock(ch[top - i], ch[top - i - 1]) for i in range(top)])
        c4 = ch[0]
        self.mbstd_group = c["mbstd_group"]
        self.mbstd_features = c["mbstd_features"]
        self.final_conv = EqualConv2d(c4 + self.mbstd_features, c4, 3, True, True)
        self.final_fc = EqualLinear(c4 * 16, c4, 0.0, 1.0, act=True)
        self.out = EqualLinear(c4, 1, 0.0, 1.0)
        self.age_embed = nn.Parameter(torch.randn(GROUPS, c4))

    def minibatch_stddev(self, x):
        n, c, h, w = x.shape
        g = next(g for g in range(min(self.mbstd_group, n), 0, -1) if n % g == 0)
        f = self.mbstd_features
        m = n // g
        y = x.reshape(g, m, f, c // f, h, w)
        y = y - y.mean(0, keepdim=True)
        y = (y.square().mean(0) + 1e-8).sqrt().mean((2, 3, 4))  # (m, f)
        y = y.reshape(1, m, f, 1, 1).expand(g, m, f, h, w).reshape(n, f, h, w)
        return torch.cat([x, y], 1)

    def forward(self, x, idx):
        x = self.from_rgb(x)
        for b in self.blocks:
            x = b(x)
        x = self.final_conv(self.minibatch_stddev(x))
        phi = self.final_fc(x.flatten(1))
        proj = (self.age_embed[idx] * phi).sum(1) / math.sqrt(phi.shape[1])
        return self.out(phi).reshape(-1) + proj


# --------------------------------------------------------------------------
# FaceGAN, cpu64
# --------------------------------------------------------------------------

FACEGAN_CPU64 = dict(
    image_size=64, g_channels=[32, 64, 128, 256], g_res_blocks=2, age_embed_dim=32, d_channels=[32, 64, 128]
)


def conv(cin, cout, k, stride=1, pad=0):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=pad)


def lrelu(x):
    return F.leaky_relu(x, SLOPE)


class ResBlock(nn.Module):
    def __init__(self, c, e):
        super().__init__()
        self.conv1 = conv(c, c, 3, 1, 1)
        self.conv2 = conv(c, c, 3, 1, 1)
        self.film = nn.Linear(e, 2 * c)

    def forward(self, h, e):
        y = self.conv1(h)
        gamma, beta = self.film(e).chunk(2, 1)
        y = lrelu(y * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None])
        return h + self.conv2(y)


class UpBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.up = nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1)
        self.fuse = conv(2 * cout, cout, 3, 1, 1)

    def forward(self, h, skip):
        return lrelu(self.fuse(torch.cat([lrelu(self.up(h)), skip], 1)))


def atanh_input(x):
    lim = 1.0 - 1e-3
    x = x.detach().clamp(-lim, lim)
    return 0.5 * torch.log((1.0 + x) / (1.0 - x))


class FaceGenerator(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch = c["g_channels"]
        self.stem = conv(3 + GROUPS, ch[0], 3, 1, 1)
        self.down = nn.ModuleList([conv(ch[i], ch[i + 1], 4, 2, 1) for i in range(len(ch) - 1)])
        self.age_embed = nn.Embedding(GROUPS, c["age_embed_dim"])
        self.res = nn.ModuleList([ResBlock(ch[-1], c["age_embed_dim"]) for _ in range(c["g_res_blocks"])])
        # Named up.{i} like ours, run from the deepest level (i = L-1) up.
        self.up = nn.ModuleDict({str(i): UpBlock(ch[i + 1], ch[i]) for i in reversed(range(len(ch) - 1))})
        self.to_rgb = conv(ch[0], 3, 3, 1, 1)

    def forward(self, x, idx):
        n, _, s, _ = x.shape
        planes = F.one_hot(idx, GROUPS).to(x.dtype)[:, :, None, None].expand(n, GROUPS, s, s)
        h = lrelu(self.stem(torch.cat([x, planes], 1)))
        skips = []
        for d in self.down:
            skips.append(h)
            h = lrelu(d(h))
        e = self.age_embed(idx)
        for r in self.res:
            h = r(h, e)
        for u in self.up.values():
            h = u(h, skips.pop())
        return torch.tanh(atanh_input(x) + self.to_rgb(h))


class FaceDiscriminator(nn.Module):
    def __init__(self, c):
        super().__init__()
        ch = [3] + c["d_channels"]
        self.down = nn.ModuleList([conv(ch[i], ch[i + 1], 4, 2, 1) for i in range(len(ch) - 1)])
        cl = ch[-1]
        self.out = conv(cl, cl, 3, 1, 1)
        self.patch = conv(cl, 1, 1)
        self.embed = nn.Embedding(GROUPS, cl)
        self.classes = nn.Linear(cl, GROUPS)

    def forward(self, x, idx):
        h = x
        for d in self.down:
            h = lrelu(d(h))
        f = lrelu(self.out(h))
        proj = (f * self.embed(idx)[:, :, None, None]).sum(1, keepdim=True)
        return self.patch(f) + proj, self.classes(f.mean((2, 3)))


# --------------------------------------------------------------------------
# Training steps
# --------------------------------------------------------------------------


def d_logistic(real, fake):
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def g_logistic(fake):
    return F.softplus(-fake).mean()


def r1_penalty(d, real, idx):
    """(1/N) sum_i |grad_x D(x_i)|^2 on the real batch, differentiable in D's parameters."""
    x = real.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(d(x, idx).sum(), x, create_graph=True)
    return g.square().sum() / x.shape[0]


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def zero_grads(*models):
    for m in models:
        for p in m.parameters():
            p.grad = None


class CStyleGanSetup:
    def __init__(self, batch):
        c = CSTYLEGAN_CPU64
        self.g = CStyleGenerator(c)
        self.d = CStyleDiscriminator(c)
        self.batch = batch
        s = c["image_size"]
        self.z = torch.randn(batch, c["z_dim"])
        self.real = torch.randn(batch, 3, s, s) * 0.5
        self.idx = torch.arange(batch) % GROUPS
        gamma = max(0.0002 * s * s / batch, 0.1)  # CStyleGanTrainConfig::new
        self.r1_weight = gamma / 2 * 16
        k = 16 / 17  # lazy-regularisation scaling of D's Adam
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=0.0025, betas=(0.0, 0.99), eps=1e-8)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=0.0025 * k, betas=(0.0, 0.99**k), eps=1e-8)

    def d_step(self):
        fake = self.g(self.z, self.idx).detach()
        loss = d_logistic(self.d(self.real, self.idx), self.d(fake, self.idx))
        loss.backward()
        return loss

    def g_step(self):
        loss = g_logistic(self.d(self.g(self.z, self.idx), self.idx))
        loss.backward()
        return loss

    def r1_step(self):
        r1 = r1_penalty(self.d, self.real, self.idx)
        (r1 * self.r1_weight).backward()
        return r1

    def adam(self):
        self.opt_d.step()
        self.opt_g.step()


class FaceGanSetup:
    def __init__(self, batch, pool=32):
        c = FACEGAN_CPU64
        self.g = FaceGenerator(c)
        self.g_ema = FaceGenerator(c)
        self.g_ema.load_state_dict(self.g.state_dict())
        self.g_ema.requires_grad_(False)
        self.d = FaceDiscriminator(c)
        s = c["image_size"]
        self.n_syn = round(batch * 0.5)
        self.n_real = batch - self.n_syn
        self.batch = batch
        # Random stand-ins for the data: `pool` real faces with their groups,
        # `pool` synthetic identities at every group.
        self.real_pool = torch.rand(pool, 3, s, s) * 1.6 - 0.8
        self.real_groups = torch.randint(0, GROUPS, (pool,))
        self.syn_pool = torch.rand(pool, GROUPS, 3, s, s) * 1.6 - 0.8
        self.opt_g = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
        self.opt_d = torch.optim.Adam(self.d.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
        self.ema_decay = 0.5 ** (batch / 10_000.0)
        self.r1_weight = 1.0 / 2 * 16  # gamma 1, every 16 steps

    def draw(self):
        ri = torch.randint(0, self.real_pool.shape[0], (self.n_real,))
        real = self.real_pool[ri]
        flip = torch.rand(self.n_real) < 0.5
        real = torch.where(flip[:, None, None, None], real.flip(3), real)
        src_r = self.real_groups[ri]
        tgt_r = torch.randint(0, GROUPS, (self.n_real,))
        ids = torch.randint(0, self.syn_pool.shape[0], (self.n_syn,))
        src_s = torch.randint(0, GROUPS, (self.n_syn,))
        tgt_s = torch.randint(0, GROUPS, (self.n_syn,))
        inputs = torch.cat([real, self.syn_pool[ids, src_s]], 0)
        return inputs, torch.cat([src_r, src_s]), torch.cat([tgt_r, tgt_s]), self.syn_pool[ids, tgt_s]

    def step(self, with_r1):
        inputs, sources, targets, syn_targets = self.draw()
        nr = self.n_real
        fake = self.g(inputs, targets)
        # D step.
        real = inputs[:nr]
        if with_r1:
            real = real.detach().requires_grad_(True)
        real_logits, real_cls = self.d(real, sources[:nr])
        fake_logits, _ = self.d(fake.detach(), targets)
        d_loss = d_logistic(real_logits, fake_logits) + F.cross_entropy(real_cls, sources[:nr])
        if with_r1:
            (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
            d_loss = d_loss + grad.square().sum() / nr * self.r1_weight
        zero_grads(self.d)
        d_loss.backward()
        self.opt_d.step()
        # G step.
        out_logits, out_cls = self.d(fake, targets)
        total = g_logistic(out_logits) + F.cross_entropy(out_cls, targets)
        total = total + 10.0 * (fake[nr:] - syn_targets).abs().mean()
        back = self.g(fake[:nr], sources[:nr])
        total = total + 10.0 * (back - inputs[:nr]).abs().mean()
        same = (sources[:nr] == targets[:nr]).nonzero().flatten()
        if same.numel() > 0:
            total = total + 10.0 * (fake[same] - inputs[same]).abs().mean()
        zero_grads(self.g, self.d)
        total.backward()
        self.opt_g.step()
        with torch.no_grad():
            for pe, p in zip(self.g_ema.parameters(), self.g.parameters()):
                pe.lerp_(p, 1.0 - self.ema_decay)
        return d_loss, total


# --------------------------------------------------------------------------
# Checks and timing
# --------------------------------------------------------------------------


def safetensors_shapes(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return {k: tuple(v["shape"]) for k, v in header.items()}


def check_names(model, path, buffers=()):
    """Every parameter of `model` has the name and shape of a tensor in our
    safetensors file `path`, and vice versa (buffers excluded)."""
    ours = {k: v for k, v in safetensors_shapes(path).items() if k not in buffers}
    mine = {k: tuple(p.shape) for k, p in model.named_parameters()}
    if ours != mine:
        only_ours = sorted(set(ours.items()) - set(mine.items()))
        only_mine = sorted(set(mine.items()) - set(ours.items()))
        raise SystemExit(f"{path}: names/shapes differ\n  only ours: {only_ours}\n  only PyTorch: {only_mine}")
    print(f"  {path}: all {len(mine)} parameter names and shapes match")


def check_counts(check_weights):
    c = CStyleGanSetup(4)
    f = FaceGanSetup(4)
    rows = [
        ("cStyleGAN G", n_params(c.g), CSTYLEGAN_G_PARAMS),
        ("cStyleGAN D", n_params(c.d), CSTYLEGAN_D_PARAMS),
        ("FaceGAN G", n_params(f.g), FACEGAN_G_PARAMS),
        ("FaceGAN D", n_params(f.d), FACEGAN_D_PARAMS),
    ]
    for name, got, want in rows:
        print(f"  {name}: {got:,} parameters (ours {want:,})")
        assert got == want, f"{name}: {got} parameters, ours has {want}"
    for spec in check_weights or []:
        kind, path = spec.split("=", 1)
        model = {"cstylegan-g": c.g, "cstylegan-d": c.d, "facegan-g": f.g, "facegan-d": f.d}[kind]
        check_names(model, path, buffers=("w_avg",))


def timeit(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def report(name, times, batch):
    med = statistics.median(times)
    print(
        f"| {name} | {med * 1e3:.1f} | {min(times) * 1e3:.1f}-{max(times) * 1e3:.1f} | {batch / med:.1f} |",
        flush=True,
    )
    return med


def bench_cstylegan(batch, runs, warmup):
    s = CStyleGanSetup(batch)
    print(f"\ncStyleGAN cpu64, batch {batch} (R1 weight gamma/2*16 = {s.r1_weight:g})")
    print("| row | median ms | min-max ms | images/s |")
    print("|---|---|---|---|")

    def gd():
        zero_grads(s.g, s.d)
        s.d_step()
        s.g_step()

    def only(fn):
        def run():
            zero_grads(s.g, s.d)
            fn()

        return run

    t_gd = report(f"cstylegan_cpu64_b{batch}/g_plus_d_step", timeit(gd, runs, warmup), batch)
    report(f"cstylegan_cpu64_b{batch}/d_step", timeit(only(s.d_step), runs, warmup), batch)
    report(f"cstylegan_cpu64_b{batch}/g_step", timeit(only(s.g_step), runs, warmup), batch)
    t_r1 = report(f"cstylegan_cpu64_b{batch}/r1_step", timeit(only(s.r1_step), runs, warmup), batch)
    gd()  # every parameter has a gradient for the optimiser rows
    t_adam = report(f"cstylegan_cpu64_b{batch}/adam_g_and_d", timeit(s.adam, runs, warmup), batch)
    full = t_gd + t_adam + t_r1 / 16
    print(
        f"| cstylegan_cpu64_b{batch}/full (g_plus_d + adam + r1/16) | {full * 1e3:.1f} | | {batch / full:.1f} |",
        flush=True,
    )


def bench_facegan(batch, runs, warmup):
    s = FaceGanSetup(batch)
    print(f"\nFaceGAN cpu64, batch {batch} ({s.n_real} real + {s.n_syn} synthetic), identity term off")
    print("| row | median ms | min-max ms | images/s |")
    print("|---|---|---|---|")
    t_plain = report(f"facegan/cpu64/train_step/batch{batch} (no R1)", timeit(lambda: s.step(False), runs, warmup), batch)
    t_r1 = report(
        f"facegan/cpu64/train_step/batch{batch} (with R1)",
        timeit(lambda: s.step(True), max(3, runs // 2), 1),
        batch,
    )
    full = (15 * t_plain + t_r1) / 16
    print(f"| facegan/cpu64/train_step/batch{batch} (R1 every 16) | {full * 1e3:.1f} | | {batch / full:.1f} |")
    x, _, t, _ = s.draw()

    def fwd():  # with autograd recording, as our bench's forward over variables
        s.g(x, t)

    report(f"facegan/cpu64/generator_forward/batch{batch}", timeit(fwd, runs, warmup), batch)


def validate(iters):
    print("validation: a few steps of each, losses must be finite and move")
    c = CStyleGanSetup(8)
    for i in range(iters):
        zero_grads(c.g, c.d)
        dl = c.d_step()
        gl = c.g_step()
        r1 = c.r1_step()
        c.adam()
        print(f"  cStyleGAN step {i}: d {dl.item():.4f} g {gl.item():.4f} r1 {r1.item():.4f}")
        assert all(math.isfinite(v.item()) for v in (dl, gl, r1))
    img = c.g(c.z, c.idx)
    assert img.shape == (8, 3, 64, 64), img.shape
    f = FaceGanSetup(16)
    for i in range(iters):
        dl, gl = f.step(with_r1=(i % 2 == 0))
        print(f"  FaceGAN step {i}: d {dl.item():.4f} g {gl.item():.4f}")
        assert math.isfinite(dl.item()) and math.isfinite(gl.item())
    x, _, t, _ = f.draw()
    out = f.g(x, t)
    logits, cls = f.d(out, t)
    assert out.shape == (16, 3, 64, 64) and logits.shape == (16, 1, 8, 8) and cls.shape == (16, 6)
    # A zero change in the residual output returns the (clamped) input.
    with torch.no_grad():
        assert torch.allclose(torch.tanh(atanh_input(x)), x.clamp(-1 + 1e-3, 1 - 1e-3), atol=1e-5)
    print("  ok")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["cstylegan", "facegan", "all"], default="all")
    ap.add_argument("--batch", type=int, nargs="*", help="batch sizes (default: cStyleGAN 16 32, FaceGAN 16)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7, help="timed runs per row (median reported)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--validate", action="store_true", help="check parameter counts and run a few steps, no timing")
    ap.add_argument(
        "--check-weights",
        nargs="*",
        metavar="KIND=PATH",
        help="compare parameter names and shapes with safetensors files of ours, "
        "KIND one of cstylegan-g, cstylegan-d, facegan-g, facegan-d",
    )
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"MKL {torch.backends.mkl.is_available()}, oneDNN {torch.backends.mkldnn.is_available()}, "
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}, pid {os.getpid()}"
    )
    print("parameter counts:")
    check_counts(args.check_weights)
    if args.validate:
        validate(3)
        return
    print(f"median of {args.runs} timed runs after {args.warmup} warm-up runs, fp32")
    if args.model in ("cstylegan", "all"):
        for b in args.batch or [16, 32]:
            bench_cstylegan(b, args.runs, args.warmup)
    if args.model in ("facegan", "all"):
        for b in args.batch or [16]:
            bench_facegan(b, args.runs, args.warmup)


if __name__ == "__main__":
    sys.exit(main())
