#!/usr/bin/env bash
# Every GPU figure of docs/performance.rst, and the CUDA test pass, in one go.
#
#   bash benchmarks/run_gpu.sh DATA_DIR REPORT_DIR
#
# DATA_DIR: a PBC-layout folder (the protocol experiment trains on it);
# REPORT_DIR: where the experiment's report and figures go. Each step has a
# time limit, so one slow or failing step does not cost the others; the log
# says each step's exit status and seconds.
set -u
DATA=$1
REPORT=$2
export PYTHONUNBUFFERED=1
cd "$(dirname "$0")"
step() {
    local name=$1 limit=$2
    shift 2
    echo "=== $name"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1
    echo "=== $name: exit $? after $((SECONDS - start)) s"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import torch, torchvision, skorch, sklearn; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'torchvision', torchvision.__version__, 'skorch', skorch.__version__, 'sklearn', sklearn.__version__)"
ls "$(python3 -c 'import torch; print(torch.hub.get_dir())')/checkpoints" 2>&1 | head
step protocol_batch10 150 python3 bench_paper_protocol.py "$DATA" --amp --channels-last
step protocol_batch128 100 python3 bench_paper_protocol.py "$DATA" --amp --channels-last --batch-size 128
step protocol_experiment 150 python3 protocol_experiment.py "$DATA" --report "$REPORT" --amp --channels-last
step fit_overhead_fp32 90 python3 bench_fit_overhead.py --images 640
step fit_overhead_bf16 90 python3 bench_fit_overhead.py --images 640 --amp --channels-last
step fast_path 120 python3 bench_fast_path.py
step predict_bf16 60 python3 bench_predict.py --amp --channels-last
step predict_fp32 60 python3 bench_predict.py
step augment 60 python3 bench_augment.py
cd ..
step cuda_tests 120 env LEUKOSK_TEST_DEVICE=cuda python3 -m pytest -p no:cacheprovider -q -x \
    -n 8 tests/test_fastpath.py tests/test_classifier.py tests/test_augment.py \
    tests/test_checkpoint.py tests/test_persist.py
step cli_reproduce 90 python3 -m leukosk reproduce "$DATA" --report "${TMPDIR:-/tmp}/cli-report" \
    --weights none --epochs 1 --amp --channels-last --quiet
