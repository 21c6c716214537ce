#!/usr/bin/env python3
"""Plots the staging belt's throughput against upload size and ring size from
an `upload_bench --sweep` output (needs matplotlib: pip install matplotlib).

usage: scripts/plot_upload_sweep.py docs/results/h200-2026-11-26-buddy/bench.txt docs/upload_sweep.png
"""
import re
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

src, out = sys.argv[1], sys.argv[2]
rows, raw = [], None
for line in open(src):
    m = re.match(r"\| (\d+) \| (\d+) MiB \| ([\d.]+) \|", line)
    if m:
        rows.append((int(m.group(1)), int(m.group(2)), float(m.group(3))))
    m = re.match(r"\| \d+ MiB buffer \(ring \d+ MiB\) \| \d+ \| ([\d.]+) \|", line)
    if m:
        raw = float(m.group(1))
fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
for ring in sorted({r for _, r, _ in rows}):
    pts = [(s, g) for s, r, g in rows if r == ring]
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"ring {ring} MiB")
if raw:
    ax.axhline(raw, color="grey", ls="--", label=f"raw vkCmdCopyBuffer, 1 GiB ({raw:.1f} GB/s)")
ax.set_xscale("log", base=2)
ax.set_xlabel("upload size (bytes), one upload + flush + wait")
ax.set_ylabel("GB/s, end to end")
ax.set_title("gpumem staging belt on NVIDIA H200: throughput vs upload size")
ax.grid(True, alpha=0.3)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(out)
