#!/usr/bin/env bash
# The whole program on the built-in toy dataset, on the CPU, with no download:
# set up .venv, write datasets/toy, train a small InstaGAN, test it, and print where the results page is.
#   bash scripts/toy.sh                 # about 10 minutes on 2 CPU cores
#   EPOCHS=1 bash scripts/toy.sh        # shorter (EPOCHS constant + EPOCHS decaying epochs)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=.venv/bin/python
NAME=${NAME:-toy_instagan}
EPOCHS=${EPOCHS:-3}
[ -d datasets/toy/trainA ] || $PY datasets/make_toy_dataset.py --save_root datasets/toy
COMMON=(--dataroot datasets/toy --name "$NAME" --ngf 16 --ndf 16 --gpu_ids "${GPU_IDS:--1}")
$PY train.py "${COMMON[@]}" --loadSizeH 72 --loadSizeW 72 --fineSizeH 64 --fineSizeW 64 \
    --niter "$EPOCHS" --niter_decay "$EPOCHS" --batch_size 4 --display_id "${DISPLAY_ID:-0}" \
    --print_freq 48 --display_freq 48 --update_html_freq 48 --save_epoch_freq 1 --num_threads 2
$PY test.py "${COMMON[@]}" --loadSizeH 64 --loadSizeW 64 --fineSizeH 64 --fineSizeW 64 --ins_max 20 --ins_per 2
echo
echo "Training page: checkpoints/$NAME/web/index.html"
echo "Results page:  results/$NAME/test_latest/index.html"
