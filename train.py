"""Train InstaGAN.

    python train.py --dataroot ./datasets/shp2gir_coco --name shp2gir_coco_instagan \
        --loadSizeH 220 --loadSizeW 220 --fineSizeH 200 --fineSizeW 200

Epochs run from --epoch_count to --niter + --niter_decay: constant learning rate, then linear decay to zero.
Checkpoints go to ./checkpoints/<name>/ (``latest_net_G_A.pth``, ``<epoch>_net_G_A.pth``, ...).
"""

from __future__ import annotations

import random
import sys
import time

import numpy as np
import torch

from data import create_dataloader, create_dataset
from models import create_model
from options.base_options import options_text, resolve_device, save_options
from options.train_options import TrainOptions
from util.progress import Progress, format_seconds
from util.visualizer import Visualizer


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def main(argv: list[str] | None = None) -> None:
    parser = TrainOptions()
    opt = parser.parse(argv)
    device = resolve_device(opt)
    seed_everything(opt.seed)
    print(options_text(opt, parser.parser))
    save_options(opt, parser.parser, "train")

    dataset = create_dataset(opt)
    loader = create_dataloader(opt, dataset, device, seed=opt.seed)
    print(f"The number of training images = {len(dataset)}; device: {device}")

    model = create_model(opt, device)
    model.setup(opt)
    print(model.print_networks(opt.verbose))
    visualizer = Visualizer(opt)

    last_epoch = opt.niter + opt.niter_decay
    total_iters = 0
    train_start = time.perf_counter()
    epochs_done = 0
    for epoch in range(opt.epoch_count, last_epoch + 1):
        epoch_start = iter_data_time = time.perf_counter()
        epoch_iter = 0
        progress = Progress(total=len(loader), desc=f"epoch {epoch}/{last_epoch}")
        for data in loader:
            iter_start = time.perf_counter()
            t_data = iter_start - iter_data_time
            batch = data["A"].shape[0]
            total_iters += batch
            epoch_iter += batch
            model.set_input(data)
            model.optimize_parameters()

            save_result = total_iters % opt.update_html_freq < batch  # the training page, on its own schedule
            if save_result or total_iters % opt.display_freq < batch:
                visualizer.display_current_results(model.get_current_visuals(), epoch, save_result)
            if total_iters % opt.print_freq < batch:
                losses = model.get_current_losses()
                t_comp = (time.perf_counter() - iter_start) / batch
                visualizer.print_current_losses(epoch, epoch_iter, losses, t_comp, t_data, progress.line())
                visualizer.plot_current_losses(epoch, epoch_iter / len(dataset), losses)
            if total_iters % opt.save_latest_freq < batch:
                print(f"saving the latest model (epoch {epoch}, total_iters {total_iters})")
                model.save_networks("iter_%d" % total_iters if opt.save_by_iter else "latest")
            progress.update()
            iter_data_time = time.perf_counter()
        progress.close()

        model.save_networks("latest")
        if epoch % opt.save_epoch_freq == 0:
            print(f"saving the model at the end of epoch {epoch}, iters {total_iters}")
            model.save_networks(epoch)
        lr = model.update_learning_rate()
        epochs_done += 1
        remaining = (time.perf_counter() - train_start) / epochs_done * (last_epoch - epoch)
        print(f"End of epoch {epoch} / {last_epoch} \t Time Taken: {time.perf_counter() - epoch_start:.1f} sec, "
              f"learning rate = {lr:.7f}, ETA {format_seconds(remaining)}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1:])
