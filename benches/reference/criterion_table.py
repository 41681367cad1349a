#!/usr/bin/env python3
"""Turns the criterion results of `cargo bench -p agesynth-nn --bench kernels`
into the Markdown table of BENCHMARKS.md ("## CPU kernels").

    python3 benches/reference/criterion_table.py [CRITERION_DIR]

CRITERION_DIR defaults to `$CARGO_TARGET_DIR/criterion` or `target/criterion`.
Times are criterion's median estimates. GFLOP/s count 2·N·Cout·Hout·Wout·Cin·k²
for a forward convolution and twice that for its backward (issue 3's rule);
the fraction is of this CPU's ~280 GFLOP/s fp32 ceiling on 2 cores.
"""

import json
import os
import sys

CEILING = 280.0


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


# (group, candle function, our function, flops or None, issue's PyTorch ms or None)
ROWS = [
    ("conv3x3_64to64_64x64", "candle", "ours", 3 * conv_flops(8, 64, 64, 64, 64, 3), 47),
    ("conv3x3_128to128_32x32", "candle", "ours", 3 * conv_flops(8, 128, 128, 32, 32, 3), 44),
    ("conv4x4s2_64to128_64x64", "candle", "ours", 3 * conv_flops(8, 64, 128, 32, 32, 4), 37),
    ("convT4x4s2_128to64_32x32", "candle", "ours", 3 * conv_flops(8, 64, 128, 32, 32, 4), 38),
    ("unet_4down4up_32ch_128x128", "candle", "ours", unet_flops(), None),
    ("modconv3x3_64to64_64x64", "candle_grouped", "ours_grouped", 3 * conv_flops(8, 64, 64, 64, 64, 3), None),
    ("modconv3x3_64to64_64x64", "candle_grouped", "ours_input_scaling", 3 * conv_flops(8, 64, 64, 64, 64, 3), None),
    ("leaky_relu_8x64x64x64", "candle", "ours", None, 0.4),
    ("leaky_relu_8x64x64x64", "candle_fwd", "ours_fwd", None, None),
    ("tanh_8x64x64x64", "candle", "ours", None, 0.5),
    ("tanh_8x64x64x64", "candle_fwd", "ours_fwd", None, None),
    ("autograd_overhead_8x64x64x64", None, "sum_backward_only", None, None),
    ("sgemm_2048", "candle", "ours_gemm_x86v4", 2 * 2048**3, None),
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
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    print("| row | candle 0.11 ms | agesynth-nn ms | speed-up | ours GFLOP/s (of 280) | PyTorch ms (issue's measurement) | ours / PyTorch |")
    print("|---|---|---|---|---|---|---|")
    for group, cf, of, flops, torch_ms in ROWS:
        c, o = median_ms(root, group, cf), median_ms(root, group, of)
        label = group if of in ("ours",) else f"{group} ({of})"
        speed = f"{c / o:.1f}×" if c and o else "–"
        if group == "sgemm_2048":
            gf_c = flops / c / 1e6 if c else None
            gf_o = flops / o / 1e6 if o else None
            print(
                f"| {label} (GFLOP/s, higher is better) | {gf_c:.0f} | {gf_o:.0f} | {speed} | {gf_o:.0f} ({gf_o / CEILING:.0%}) | 248–310 GFLOP/s | – |"
                if gf_c and gf_o
                else f"| {label} | – | – | – | – | 248–310 GFLOP/s | – |"
            )
            continue
        gf = f"{flops / o / 1e6:.0f} ({flops / o / 1e6 / CEILING:.0%})" if flops and o else "–"
        ratio = f"{o / torch_ms:.1f}" if torch_ms and o else "–"
        print(f"| {label} | {fmt(c)} | {fmt(o)} | {speed} | {gf} | {fmt(torch_ms) if torch_ms else '–'} | {ratio} |")


if __name__ == "__main__":
    main()
