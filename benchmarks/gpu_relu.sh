#!/usr/bin/env bash
# The convex-ReLU GPU check in one script, sized for a short device session (about
# 10 minutes on one GPU; each part has its own time limit). Needs jax with a GPU
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
# ADMM per-step cost, factored (2dP)^2 u-step against matrix-free Nystrom-PCG,
# n from 1e3 to 1e5 at (d, P) = (20, 50), float32 and float64 (slope and peak memory)
timeout 240 "$py" benchmarks/bench_relu_matrix_free.py --float32 \
    --sizes 1000,10000,100000 > "$out/relu_admm_matrix_free_f32.txt" 2>&1
timeout 240 "$py" benchmarks/bench_relu_matrix_free.py \
    --sizes 1000,10000,100000 > "$out/relu_admm_matrix_free_f64.txt" 2>&1
# InteriorPoint with the reduced system of side P d ("dense"): per step against n at
# (d, P) = (10, 20), one step at (100000, 50, 100), and the two large solves of the
# issue (certified 1e-4 at (10000, 50, 200), 1e-3 at (100000, 50, 100))
timeout 180 "$py" benchmarks/bench_relu_ip_dense.py --sizes 10000,100000 \
    --methods dense --steps 3 > "$out/relu_ip_dense.txt" 2>&1
timeout 240 "$py" benchmarks/bench_relu_ip_dense.py --sizes 100000 --d 50 --P 100 \
    --methods dense --steps 1 > "$out/relu_ip_dense_large.txt" 2>&1
timeout 600 "$py" benchmarks/bench_relu_ip_dense.py --sizes 10000 --d 50 --P 200 \
    --single --rtol 1e-4 > "$out/relu_ip_single_10k.txt" 2>&1
timeout 900 "$py" benchmarks/bench_relu_ip_dense.py --sizes 100000 --d 50 --P 100 \
    --single --rtol 1e-3 > "$out/relu_ip_single_100k.txt" 2>&1
tail -n 30 "$out"/relu_ip_*.txt "$out"/relu_admm_matrix_free_*.txt
