#!/usr/bin/env python3
"""PyTorch reference for agesynth-nn's criterion benches (issue 3).

Same shapes and the same work as crates/agesynth-nn/benches/kernels.rs:
batch 8, fp32, forward + backward (output summed, gradients to every input),
median of several timed runs after warm-up, printed as a Markdown table.

    pip install torch           # the CPU build is enough
    python3 benches/reference/bench_torch.py [--threads 2] [--runs 15] \
        [--sittings 5] [--json torch.json]

oneDNN's speed on a shape varies from one process to the next (on the
project's machine some processes ran the 3×3 convolutions 20–25 % faster
than others), so `--sittings K` runs the whole script K times in fresh
processes and reports, per row, the median over sittings and the best
sitting; `--json` writes both for `criterion_table.py`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F


def timeit(fn, runs, warmup=5):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def var(*shape, scale=1.0):
    return (torch.randn(*shape) * scale).requires_grad_()


def fresh(*tensors):
    """Drops accumulated gradients, so that every timed backward writes new
    ones (as candle's does) instead of adding into the previous ones."""
    for t in tensors:
        t.grad = None


def conv_rows(runs):
    rows = []
    for name, cin, cout, hw, k, stride, pad in [
        ("conv3x3_64to64_64x64", 64, 64, 64, 3, 1, 1),
        ("conv3x3_128to128_32x32", 128, 128, 32, 3, 1, 1),
        ("conv4x4s2_64to128_64x64", 64, 128, 64, 4, 2, 1),
    ]:
        x = var(8, cin, hw, hw)
        w = var(cout, cin, k, k, scale=0.05)
        ho = (hw + 2 * pad - k) // stride + 1
        flops = 3 * 2 * 8 * cout * ho * ho * cin * k * k
        ms = timeit(lambda: (fresh(x, w), F.conv2d(x, w, stride=stride, padding=pad).sum().backward()), runs)
        rows.append((name, ms, flops))
    x = var(8, 128, 32, 32)
    w = var(128, 64, 4, 4, scale=0.05)
    flops = 3 * 2 * 8 * 128 * 32 * 32 * 64 * 16
    ms = timeit(lambda: (fresh(x, w), F.conv_transpose2d(x, w, stride=2, padding=1).sum().backward()), runs)
    rows.append(("convT4x4s2_128to64_32x32", ms, flops))
    return rows


class UNet(torch.nn.Module):
    """4 stride-2 4x4 convs down (32-64-128-256-256), 4 stride-2 4x4
    transposed convs up with additive skips, 3x3 convs in and out, leaky ReLU
    0.2, tanh output (the bench's `UNet`)."""

    def __init__(self):
        super().__init__()
        self.inc = torch.nn.Conv2d(3, 32, 3, padding=1)
        self.down = torch.nn.ModuleList(
            [torch.nn.Conv2d(i, o, 4, stride=2, padding=1) for i, o in [(32, 64), (64, 128), (128, 256), (256, 256)]]
        )
        self.up = torch.nn.ModuleList(
            [
                torch.nn.ConvTranspose2d(i, o, 4, stride=2, padding=1)
                for i, o in [(256, 256), (256, 128), (128, 64), (64, 32)]
            ]
        )
        self.out = torch.nn.Conv2d(32, 3, 3, padding=1)

    def forward(self, x):
        act = lambda t: F.leaky_relu(t, 0.2)
        skips = [act(self.inc(x))]
        for d in self.down:
            skips.append(act(d(skips[-1])))
        h = skips.pop()
        for u in self.up:
            h = act(u(h)) + skips.pop()
        return torch.tanh(self.out(h))


def unet_row(runs):
    net = UNet()
    x = torch.randn(8, 3, 128, 128)
    target = torch.randn(8, 3, 128, 128) * 0.5

    def step():
        net.zero_grad(set_to_none=True)
        ((net(x) - target) ** 2).mean().backward()

    return [("unet_4down4up_32ch_128x128", timeit(step, runs), None)]


def modconv_rows(runs):
    n, cin, cout, hw = 8, 64, 64, 64
    x = var(n, cin, hw, hw)
    w = var(cout, cin, 3, 3, scale=0.05)
    s = var(n, cin)

    def grouped():
        fresh(x, w, s)
        wm = w.unsqueeze(0) * s.reshape(n, 1, cin, 1, 1)
        d = (wm.square().sum((2, 3, 4)) + 1e-8).rsqrt()
        wm = wm * d.reshape(n, cout, 1, 1, 1)
        y = F.conv2d(x.reshape(1, n * cin, hw, hw), wm.reshape(n * cout, cin, 3, 3), padding=1, groups=n)
        y.reshape(n, cout, hw, hw).sum().backward()

    def input_scaling():
        fresh(x, w, s)
        d = (s.square() @ w.square().sum((2, 3)).t() + 1e-8).rsqrt()
        y = F.conv2d(x * s.reshape(n, cin, 1, 1), w, padding=1) * d.reshape(n, cout, 1, 1)
        y.sum().backward()

    return [
        ("modconv3x3_64to64_64x64 (grouped)", timeit(grouped, runs), None),
        ("modconv3x3_64to64_64x64 (input scaling)", timeit(input_scaling, runs), None),
    ]


def eltwise_rows(runs):
    x = var(8, 64, 64, 64, scale=2.0)
    return [
        ("leaky_relu_8x64x64x64", timeit(lambda: (fresh(x), F.leaky_relu(x, 0.2).sum().backward()), runs), None),
        ("leaky_relu_8x64x64x64 (fwd)", timeit(lambda: F.leaky_relu(x.detach(), 0.2), runs), None),
        ("tanh_8x64x64x64", timeit(lambda: (fresh(x), torch.tanh(x).sum().backward()), runs), None),
        ("tanh_8x64x64x64 (fwd)", timeit(lambda: torch.tanh(x.detach()), runs), None),
        ("autograd_overhead (x.sum().backward())", timeit(lambda: (fresh(x), x.sum().backward()), runs), None),
    ]


def sgemm_row(runs):
    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)
    ms = timeit(lambda: a @ b, runs)
    return [("sgemm_2048", ms, 2 * 2048**3)]


def one_sitting(args):
    torch.set_num_threads(args.threads)
    rows = []
    for group in (conv_rows, unet_row, modconv_rows, eltwise_rows, sgemm_row):
        rows.extend(group(args.runs))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--sittings", type=int, default=1)
    ap.add_argument("--json", help="write {row: {median, best, sittings}} here")
    args = ap.parse_args()
    if args.sittings <= 1:
        rows = one_sitting(args)
        per_row = {name: [ms] for name, ms, _ in rows}
        flops = {name: f for name, _, f in rows}
    else:
        per_row, flops = {}, {}
        for _ in range(args.sittings):
            with tempfile.NamedTemporaryFile(suffix=".json") as tmp:
                subprocess.run(
                    [sys.executable, os.path.abspath(__file__), "--threads", str(args.threads),
                     "--runs", str(args.runs), "--json", tmp.name],
                    check=True, stdout=subprocess.DEVNULL,
                )
                with open(tmp.name) as f:
                    for name, v in json.load(f)["rows"].items():
                        per_row.setdefault(name, []).extend(v["sittings"])
                        flops[name] = v["flops"]
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.runs} runs per sitting, "
          f"{args.sittings} sitting(s)")
    print("| op | PyTorch ms (median of sittings) | best sitting ms | GFLOP/s (median) |")
    print("|---|---|---|---|")
    out = {}
    for name, times in per_row.items():
        med, best = statistics.median(times), min(times)
        gf = f"{flops[name] / med / 1e6:.0f}" if flops[name] else ""
        print(f"| {name} | {med:.2f} | {best:.2f} | {gf} |", flush=True)
        out[name] = {"median": med, "best": best, "sittings": times, "flops": flops[name]}
    if args.json:
        meta = {"torch": torch.__version__, "threads": args.threads, "runs": args.runs}
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": out}, f, indent=1)


if __name__ == "__main__":
    main()
