#!/bin/bash
# Issue 28's V4 recipe, both stages, as one resumable background run on a CPU:
#   stage 1: leukosk2026_multi from V3 (22 epochs, one-cycle peaking at 1e-3,
#            PBC and Raabin-WBC balanced, strong colour and stain jitter);
#   stage 2: a polish from stage 1 (8 epochs, one-cycle peaking at 2e-4, the
#            sources in their natural proportions, V3's colour jitter, weights
#            averaged with decay 0.998): short runs showed it recovers PBC
#            (docs/results/v4_recipe_runs.jsonl, "polish-*").
# Each stage checkpoints every epoch and resumes; a stage whose model exists is
# skipped. Usage: benchmarks/train_v4.sh PBC_DIR RAABIN_DIR OUT_DIR [--lab DIR]...
set -euo pipefail
pbc=$1 raabin=$2 out=$3; shift 3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
run() { python -u "$here/v4_recipe.py" "$pbc" --second "$raabin" "$@" \
        --log "$out/v4_runs.jsonl"; }
[ -e "$out/stage1.safetensors" ] || run --epochs 22 --name v4-stage1 \
    --checkpoint "$out/stage1_ckpt" --save "$out/stage1.safetensors" "$@"
[ -e "$out/v4.safetensors" ] || run --init "$out/stage1.safetensors" --epochs 8 \
    --lr 2e-4 --no-balance --v3-colour --ema 0.998 --name v4-stage2-polish \
    --checkpoint "$out/stage2_ckpt" --save "$out/v4.safetensors" "$@"
