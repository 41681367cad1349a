#!/usr/bin/env python3
"""Turns the criterion results of `cargo bench -p agesynth-nn --bench kernels`
into the Markdown table of BENCHMARKS.md ("## CPU kernels").

    python3 benches/reference/criterion_table.py [--torch torch.json] [CRITERION_DIR]

CRITERION_DIR defaults to `$CARGO_TARGET_DIR/criterion` or `target/criterion`;
`--torch` takes the JSON that `bench_torch.py --json` wrote on the same
machine (median over sittings and best sitting per row). Times are
criterion's median estimates. GFLOP/s count 2·N·Cout·Hout·Wout·Cin·k² for a
forward convolution and twice that for its backward (issue 3's rule), also
for the Winograd rows (so they are "effective" GFLOP/s: Winograd does 2.25×
fewer multiplications); the fraction is of CEILING, the fp32 rate our own
2048³ SGEMM reaches on the project's 2-core machine.
"""

import json
import os
import sys

CEILING = 450.0


def conv_flops(n, cin, cout, ho, wo, k):
    return 2 * n * cout * ho * wo * cin * k * k


def unet_flops():
    n = 8
    fwd = conv_flops(n, 3, 32, 128, 128, 3)  # input conv: no input gradient
    total = 2 * fwd
    layers = [
        conv_flops(n, 32, 64, 64, 64, 4),
        conv_flops(n, 64, 128, 32, 32, 4),
        conv_flops(n, 128, 256, 16, 16, 4),
        conv_flops(n, 256, 256, 8, 8, 4),
        # transposed convs: the same work as the adjoint convolution
        conv_flops(n, 256, 256, 8, 8, 4),
        conv_flops(n, 128, 256, 16, 16, 4),
        conv_flops(n, 64, 128, 32, 32, 4),
        conv_flops(n, 32, 64, 64, 64, 4),
        conv_flops(n, 32, 3, 128, 128, 3),
    ]
    return total + 3 * sum(layers)


MODCONV = ["modconv3x3_64to64_64x64 (grouped)", "modconv3x3_64to64_64x64 (input scaling)"]

# (group, candle function, our function, flops or None, PyTorch rows: the
# fastest of these is the comparison)
ROWS = [
    ("conv3x3_64to64_64x64", "candle", "ours", 3 * conv_flops(8, 64, 64, 64, 64, 3), ["conv3x3_64to64_64x64"]),
    ("conv3x3_128to128_32x32", "candle", "ours", 3 * conv_flops(8, 128, 128, 32, 32, 3), ["conv3x3_128to128_32x32"]),
    ("conv4x4s2_64to128_64x64", "candle", "ours", 3 * conv_flops(8, 64, 128, 32, 32, 4), ["conv4x4s2_64to128_64x64"]),
    ("convT4x4s2_128to64_32x32", "candle", "ours", 3 * conv_flops(8, 64, 128, 32, 32, 4), ["convT4x4s2_128to64_32x32"]),
    ("unet_4down4up_32ch_128x128", "candle", "ours", unet_flops(), ["unet_4down4up_32ch_128x128"]),
    ("modconv3x3_64to64_64x64", "candle_grouped", "ours_grouped", 3 * conv_flops(8, 64, 64, 64, 64, 3), MODCONV),
    ("modconv3x3_64to64_64x64", "candle_grouped", "ours_input_scaling", 3 * conv_flops(8, 64, 64, 64, 64, 3), MODCONV),
    ("leaky_relu_8x64x64x64", "candle", "ours", None, ["leaky_relu_8x64x64x64"]),
    ("leaky_relu_8x64x64x64", "candle_fwd", "ours_fwd", None, ["leaky_relu_8x64x64x64 (fwd)"]),
    ("tanh_8x64x64x64", "candle", "ours", None, ["tanh_8x64x64x64"]),
    ("tanh_8x64x64x64", "candle_fwd", "ours_fwd", None, ["tanh_8x64x64x64 (fwd)"]),
    ("autograd_overhead_8x64x64x64", None, "sum_backward_only", None, ["autograd_overhead (x.sum().backward())"]),
    ("sgemm_2048", "candle", "ours_gemm_x86v4", 2 * 2048**3, ["sgemm_2048"]),
]


def median_ms(root, group, func):
    if func is None:
        return None
    path = os.path.join(root, group, func, "new", "estimates.json")
    try:
        with open(path) as f:
            return json.load(f)["median"]["point_estimate"] / 1e6
    except (OSError, KeyError, ValueError):
        return None


def fmt(ms):
    if ms is None:
        return "–"
    return f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}"


def main():
    args = sys.argv[1:]
    torch = {}
    if args[:1] == ["--torch"]:
        with open(args[1]) as f:
            torch = json.load(f)["rows"]
        args = args[2:]
    root = args[0] if args else os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    print(
        f"| row | candle 0.11 ms | agesynth-nn ms | speed-up | ours GFLOP/s (of {CEILING:.0f}) "
        "| PyTorch ms: median of sittings (best) | ours / PyTorch: median (best) |"
    )
    print("|---|---|---|---|---|---|---|")
    for group, cf, of, flops, trows in ROWS:
        c, o = median_ms(root, group, cf), median_ms(root, group, of)
        label = group if of in ("ours",) else f"{group} ({of})"
        speed = f"{c / o:.1f}×" if c and o else "–"
        # The fastest PyTorch form of the row, by median and by best sitting.
        cands = [torch[r] for r in trows if r in torch]
        t_med = min((t["median"] for t in cands), default=None)
        t_best = min((t["best"] for t in cands), default=None)
        if group == "sgemm_2048":
            gf = lambda ms: flops / ms / 1e6 if ms else None  # noqa: E731
            cells = [f"{gf(c):.0f}" if c else "–", f"{gf(o):.0f}" if o else "–", speed,
                     f"{gf(o):.0f} ({gf(o) / CEILING:.0%})" if o else "–",
                     f"{gf(t_med):.0f} ({gf(t_best):.0f}) GFLOP/s" if t_med else "–",
                     f"{o / t_med:.2f} ({o / t_best:.2f})" if t_med and o else "–"]
            print(f"| {label} (GFLOP/s, higher is better; the ratio is of times) | " + " | ".join(cells) + " |")
            continue
        gf = f"{flops / o / 1e6:.0f} ({flops / o / 1e6 / CEILING:.0%})" if flops and o else "–"
        pt = f"{fmt(t_med)} ({fmt(t_best)})" if t_med else "–"
        ratio = f"{o / t_med:.2f} ({o / t_best:.2f})" if t_med and o else "–"
        print(f"| {label} | {fmt(c)} | {fmt(o)} | {speed} | {gf} | {pt} | {ratio} |")


if __name__ == "__main__":
    main()
