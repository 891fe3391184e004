#!/usr/bin/env bash
# The GPU checks of docs/PERFORMANCE.md in one short script (not run yet: no GPU was available when it was written).
#   bash scripts/gpu_check.sh            # writes gpu_check/ : logs, bench_*.json, and prints the tables
# 1. a few training iterations on the toy data: float32, --amp fp16 (GradScaler), --amp bf16 --channels_last,
#    --compile; each must finish with finite losses;
# 2. with 2+ GPUs: torchrun --nproc_per_node=2 (nccl) and --gpu_ids 0,1 (the launcher path);
# 3. the benchmark on the default model, 64x64: float32, TF32, bf16 + channels_last, memory vs instances.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-gpu_check}
mkdir -p "$OUT"
[ -d datasets/toy/trainA ] || $PY datasets/make_toy_dataset.py --save_root datasets/toy
COMMON=(--dataroot datasets/toy --ngf 16 --ndf 16 --loadSizeH 72 --loadSizeW 72 --fineSizeH 64 --fineSizeW 64
        --niter 1 --niter_decay 0 --max_dataset_size 8 --batch_size 2 --display_id 0 --no_html --print_freq 4
        --checkpoints_dir "$OUT/checkpoints")
$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0), torch.cuda.device_count(), 'GPU(s)')" \
    | tee "$OUT/device.txt"
for flags in "" "--amp fp16" "--amp bf16 --channels_last" "--compile"; do
    name="gpu_${flags//[^a-z0-9]/_}"
    echo "== train $flags"
    $PY train.py "${COMMON[@]}" --name "$name" --gpu_ids 0 $flags > "$OUT/$name.log" 2>&1
    grep -v "^ " "$OUT/checkpoints/$name/loss_log.txt" | tail -1
    if grep -qi nan "$OUT/checkpoints/$name/loss_log.txt"; then echo "NaN in $name"; exit 1; fi
done
if [ "$($PY -c 'import torch; print(torch.cuda.device_count())')" -ge 2 ]; then
    echo "== torchrun 2 GPUs (nccl)"
    $PY -m torch.distributed.run --standalone --nproc_per_node=2 train.py "${COMMON[@]}" --name ddp2 \
        > "$OUT/ddp2.log" 2>&1
    echo "== --gpu_ids 0,1 (launcher)"
    $PY train.py "${COMMON[@]}" --name launch2 --gpu_ids 0,1 > "$OUT/launch2.log" 2>&1
fi
B=(scripts/benchmark.py --gpu_ids 0 --instances 4 --modes sequential --warmup 3 --iters 10)
$PY "${B[@]}" --json "$OUT/bench_fp32.json"
$PY "${B[@]}" --tf32 --json "$OUT/bench_tf32.json"
$PY "${B[@]}" --amp bf16 --channels_last --json "$OUT/bench_bf16.json"
$PY scripts/benchmark.py --gpu_ids 0 --instances 2 4 8 16 --warmup 2 --iters 5 --amp bf16 --json "$OUT/bench_memory.json"
