#!/usr/bin/env bash
# The convex-ReLU GPU check in one script, sized for a short device session (about
# 5 minutes on one GPU; each part has its own time limit). Needs jax with a GPU
# backend, equinox, lineax, optimistix and optax; not cvxpy (the optima are stored).
# Run from the repository root; output goes to $OUT (default: benchmarks/out), the
# interpreter is $PYTHON (default: python).
set -uo pipefail
py="${PYTHON:-python}"
out="${OUT:-benchmarks/out}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
ref=benchmarks/relu_reference.json
nvidia-smi --query-gpu=name,memory.total --format=csv > "$out/gpu.txt" 2>&1
# InteriorPoint to the 1e-4 gap and certified, small and middle sizes (the 50x goal)
timeout 240 "$py" benchmarks/bench_relu.py --sizes small,mid --interior-point \
    --no-admm --reference-json "$ref" > "$out/relu_ip_small_mid.txt" 2>&1
# InteriorPoint at (10000, 50, 200), traced step by step against the stored optimum
timeout 300 "$py" benchmarks/bench_relu.py --sizes large --interior-point --no-admm \
    --reference-json "$ref" --trace-seconds 240 --target 1e-7 --max-steps 70 \
    > "$out/relu_ip_large.txt" 2>&1
tail -n 30 "$out"/relu_ip_*.txt
