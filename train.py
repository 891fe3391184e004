"""Train InstaGAN.

    python train.py --dataroot ./datasets/shp2gir_coco --name shp2gir_coco_instagan \
        --loadSizeH 220 --loadSizeW 220 --fineSizeH 200 --fineSizeW 200

Epochs run from --epoch_count to --niter + --niter_decay: constant learning rate, then linear decay to zero.
Checkpoints go to ./checkpoints/<name>/: ``latest_state.pth`` (everything --continue_train needs, docs/RESUME.md)
and the network-only ``latest_net_G_A.pth``, ``<epoch>_net_G_A.pth``, ... that test.py reads.

Several GPUs: ``torchrun --nproc_per_node=N train.py ...`` (DDP; --batch_size is the global batch), or the 2018
spelling ``--gpu_ids 0,1,2,3``, which starts the same workers itself (util/distributed.py, docs/PERFORMANCE.md).
"""

from __future__ import annotations

import sys
import time

from data import create_dataloader, create_dataset
from metrics.training import EpochEvaluator
from models import create_model
from options.base_options import options_text, resolve_device, save_options
from options.train_options import TrainOptions
from training.session import TrainingSession
from training.state import configure_determinism
from util.checkpoint import ensure_writable_dir
from util.distributed import (
    cleanup,
    init_distributed,
    is_main_process,
    launch_if_multi_gpu,
    print_main,
    reduce_mean,
    seed_everything,
    seed_per_rank,
    wrap_model,
)
from util.memory import keep_freed_memory_in_heap
from util.progress import Progress, format_seconds
from util.visualizer import Visualizer


def main(argv: list[str] | None = None) -> None:
    parser = TrainOptions()
    opt = parser.parse(argv)
    if launch_if_multi_gpu(main, sys.argv[1:] if argv is None else argv, opt.gpu_ids):
        return  # the workers have trained
    device = init_distributed(opt, resolve_device)
    if device.type == "cpu":
        keep_freed_memory_in_heap()  # fewer page faults per iteration, same peak memory (docs/PERFORMANCE.md)
    configure_determinism(opt.deterministic)
    seed_everything(opt.seed)
    ensure_writable_dir(f"{opt.checkpoints_dir}/{opt.name}")

    # Everything that can fail on bad input (data, options, checkpoint) fails before anything is written.
    dataset = create_dataset(opt)
    loader = create_dataloader(opt, dataset, device, seed=opt.seed)
    model = create_model(opt, device)
    model.setup(opt)
    session = TrainingSession(opt, model, loader)
    session.check_first_sample()
    wrap_model(model, device)  # DDP under torchrun, after loading weights
    seed_per_rank(opt.seed)  # same initial weights, then each rank its own random stream
    if is_main_process():
        print(options_text(opt, parser.parser))
        save_options(opt, parser.parser, "train")
    print_main(f"The number of training images = {len(dataset)}; device: {device}")
    print_main(model.print_networks(opt.verbose))
    visualizer = Visualizer(opt)
    evaluator = EpochEvaluator(opt, device, visualizer)  # --eval_freq: metrics on held-out images, plotted

    last_epoch = opt.niter + opt.niter_decay
    train_start = time.perf_counter()
    epochs_done = 0
    for epoch in session.epochs():
        epoch_start = iter_data_time = time.perf_counter()
        progress = Progress(total=len(loader), desc=f"epoch {epoch}/{last_epoch}")
        for data in session.batches():
            iter_start = time.perf_counter()
            t_data = iter_start - iter_data_time
            batch, total_iters, epoch_iter = session.batch, session.total_iters, session.epoch_iter  # over all ranks
            if not session.train_step(data):  # --skip_nonfinite skipped this batch
                continue

            save_result = total_iters % opt.update_html_freq < batch  # the training page, on its own schedule
            if save_result or total_iters % opt.display_freq < batch:
                visualizer.display_current_results(model.get_current_visuals(), epoch, save_result)
            if total_iters % opt.print_freq < batch:
                losses = reduce_mean(model.get_current_losses())  # the mean over ranks
                t_comp = (time.perf_counter() - iter_start) / batch
                visualizer.print_current_losses(epoch, epoch_iter, losses, t_comp, t_data, progress.line())
                visualizer.plot_current_losses(epoch, epoch_iter / len(dataset), losses)
            progress.update()
            iter_data_time = time.perf_counter()
        progress.close()

        lr = session.end_epoch()  # learning rate, then 'latest' and every --save_epoch_freq epochs <epoch>
        evaluator.end_epoch(epoch, model, session.total_iters)
        epochs_done += 1
        remaining = (time.perf_counter() - train_start) / epochs_done * (last_epoch - epoch)
        print_main(
            f"End of epoch {epoch} / {last_epoch} \t Time Taken: {time.perf_counter() - epoch_start:.1f} sec, "
            f"learning rate = {lr:.7f}, ETA {format_seconds(remaining)}",
            flush=True,
        )
    cleanup()


if __name__ == "__main__":
    main(sys.argv[1:])
