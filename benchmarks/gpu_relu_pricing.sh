#!/usr/bin/env bash
# Pattern pricing against Adam at (n, d) = (10000, 50) on a GPU in one command (the
# CPU run is out of reach: about 6e12 flops per interior-point step). Runs Adam
# (widths 16 and 64, 2 seeds) and `optimal_network` with the Adam networks' patterns
# and two pricing rounds, within 9 minutes; `--rounds 20` without
# `--no-pricing-alone` is the pricing-alone run, much longer. Output goes to $OUT
# (default: benchmarks/out), the interpreter is $PYTHON (default: python).
set -uo pipefail
py="${PYTHON:-python}"
out="${OUT:-benchmarks/out}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv > "$out/gpu.txt" 2>&1
timeout 540 "$py" benchmarks/bench_relu_pricing.py --no-gallery --synthetic 10000 50 \
    --sampled --no-pricing-alone --seeds 2 --rounds 2 --out "$out" \
    --json "$out/relu_pricing_10000_50.json" > "$out/relu_pricing_10000_50.txt" 2>&1
tail -n 8 "$out/relu_pricing_10000_50.txt"
