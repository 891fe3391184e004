#!/usr/bin/env bash
# The whole program on the built-in toy dataset, on the CPU, with no download: set up .venv, write datasets/toy
# (discs A <-> upright rectangles B of the same area, 1.7 times as tall as wide, 32x32), train a small InstaGAN,
# test it, evaluate the translations and print the metrics table and where the pages are.
#   bash scripts/toy.sh                 # see README (Quick start) for the time and the numbers to expect
#   EPOCHS=8 bash scripts/toy.sh        # shorter: EPOCHS constant + EPOCHS decaying epochs of 50 iterations
# Other variables: NAME (run name), GPU_IDS (0 for a GPU), DISPLAY_ID (1 for Visdom).
#
# The toy's settings (the paper's defaults stay as they are for real data): 32x32 images with 1-2 large flat
# instances on smooth gradients, generators with 3 ResNet blocks per encoder (--n_blocks, paper: 9) and --ngf/--ndf
# 16 (paper: 64), discriminators of 2 strided layers (--n_layers_D 2, paper: 3; a 34x34 receptive field for 32x32
# images, instead of 70x70), batch 4, batch norm (paper: instance norm, which normalizes away each image's colours:
# on this toy they are most of the background; the test then uses the running statistics, --eval), and higher
# learning rates (--lr 0.0005 --lr_D 0.0005, paper: 0.0002/0.0001) so that 1600 iterations go a long way.
# Training translates the 2 largest instances in one step (--ins_max 2 --ins_per 2); the test translates up to 20,
# 2 per sequential step.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
PY=.venv/bin/python
NAME=${NAME:-toy_instagan}
EPOCHS=${EPOCHS:-16}
SIZE=32
start=$SECONDS

# The toy data; written again when it was made with other settings (e.g. by an older version of this script).
TOY=(--size "$SIZE" --n_train 200 --n_test 45 --r_min 0.2 --r_max 0.3 --p_empty 0.02 --max_instances 2
    --backgrounds gradient --pixel_noise 0 --no_outline --aspect 1.7 --seed 0)
if [ "$(cat datasets/toy/.made_with 2>/dev/null)" != "${TOY[*]}" ]; then
    for split in trainA trainB testA testB; do rm -rf "datasets/toy/$split" "datasets/toy/${split}_seg"; done
    $PY datasets/make_toy_dataset.py --save_root datasets/toy "${TOY[@]}"
    echo "${TOY[*]}" >datasets/toy/.made_with
fi

NETS=(--ngf 16 --ndf 16 --n_blocks 3 --n_layers_D 2 --norm batch)
SIZES=(--loadSizeH "$SIZE" --loadSizeW "$SIZE" --fineSizeH "$SIZE" --fineSizeW "$SIZE")
COMMON=(--dataroot datasets/toy --name "$NAME" "${NETS[@]}" "${SIZES[@]}" --gpu_ids "${GPU_IDS:--1}")
$PY train.py "${COMMON[@]}" --batch_size 4 --ins_max 2 --ins_per 2 --lr 0.0005 --lr_D 0.0005 \
    --niter "$EPOCHS" --niter_decay "$EPOCHS" --display_id "${DISPLAY_ID:-0}" --num_threads 0 \
    --print_freq 200 --display_freq 200 --update_html_freq 200 --save_epoch_freq "$EPOCHS"
$PY test.py "${COMMON[@]}" --eval --ins_max 20 --ins_per 2 --num_test 1000 --num_threads 0
echo
$PY evaluate.py --results_dir "results/$NAME/test_latest"
echo
echo "Training page: checkpoints/$NAME/web/index.html"
echo "Results page:  results/$NAME/test_latest/index.html"
echo "toy.sh took $(((SECONDS - start) / 60)) min $(((SECONDS - start) % 60)) s (without the environment set-up)"
