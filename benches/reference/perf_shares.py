#!/usr/bin/env python3
"""Buckets a flat `perf report` into the shares BENCHMARKS.md reports.

    perf record -F 999 -o step.data -- <bench binary> --bench <filter> --profile-time 20
    perf report -i step.data --no-children --sort symbol --stdio | python3 perf_shares.py

Each symbol goes to the first bucket whose pattern it matches; the rest is
"other". Prints a Markdown table, largest share first.
"""
import re
import sys

BUCKETS = [
    ("GEMM micro-kernels (convolutions)", r"gemm_f32|gemm_common|gemm::"),
    ("convolution data movement (Winograd transforms, im2col/col2im, transposes, weight gradients)",
     r"winograd|im2col|col2im|transpose_f32|kernels::conv|with_scratch|transpose"),
    ("our fused elementwise and reductions (activations, affine, sums)", r"kernels::eltwise"),
    ("fused optimiser and EMA", r"kernels::optim"),
    ("candle elementwise and reductions (unary/binary maps, affine, strided copies)",
     r"candle_core::cpu_backend|candle_core::cpu::|candle_core::tensor|vec_sum|Map1|Map2"),
    ("memory copies and zero fills (memmove, memset)", r"__mem(move|set|cpy)"),
    ("allocation (mimalloc, malloc)", r"\bmi_|_mi_|malloc|free\b"),
    ("kernel: fresh pages zeroed after page faults", r"clear_page|page_fault|do_anonymous_page"),
    ("threads: scheduling, barriers, kernel", r"\[k\]|Barrier|sched_yield|syscall|LocalKey|rayon|futex"),
]

line_re = re.compile(r"^\s*([0-9.]+)%\s+(.*)$")
shares = {name: 0.0 for name, _ in BUCKETS}
shares["other"] = 0.0
top_other = []
for line in sys.stdin:
    m = line_re.match(line)
    if not m:
        continue
    pct, sym = float(m.group(1)), m.group(2)
    for name, pat in BUCKETS:
        if re.search(pat, sym):
            shares[name] += pct
            break
    else:
        shares["other"] += pct
        top_other.append((pct, sym.split()[1] if len(sym.split()) > 1 else sym))
print("| where the time goes | share |")
print("|---|---:|")
for name, v in sorted(shares.items(), key=lambda kv: -kv[1]):
    print(f"| {name} | {v:.1f} % |")
if "--other" in sys.argv:
    for pct, s in sorted(top_other, reverse=True)[:15]:
        print(f"  other: {pct:.2f}% {s}", file=sys.stderr)
