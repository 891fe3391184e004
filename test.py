"""Translate test images with a trained InstaGAN and write a results page.

    python test.py --dataroot ./datasets/shp2gir_coco --name shp2gir_coco_instagan \
        --loadSizeH 200 --loadSizeW 200 --fineSizeH 200 --fineSizeW 200 --ins_per 2 --ins_max 20

Results: ./results/<name>/<phase>_<epoch>/index.html, one row per input with the 12 visuals as PNGs in images/.
"""

from __future__ import annotations

import sys
from pathlib import Path

from data import create_dataloader, create_dataset
from models import create_model
from options.base_options import resolve_device, save_options
from options.test_options import TestOptions
from train import seed_everything
from util.html import HTML
from util.progress import Progress
from util.util import save_image, tensor2im


def save_images(webpage: HTML, visuals: dict, image_path: str, aspect_ratio: float = 1.0, width: int = 256) -> None:
    """One row of the page: ``<stem>_<label>.png`` for each visual of the first sample."""
    stem = Path(image_path).stem
    webpage.add_header(stem)
    names, labels = [], []
    for label, image in visuals.items():
        name = f"{stem}_{label}.png"
        save_image(tensor2im(image), webpage.get_image_dir() / name, aspect_ratio)
        names.append(name)
        labels.append(label)
    webpage.add_images(names, labels, names, width=width)


def main(argv: list[str] | None = None) -> Path:
    parser = TestOptions()
    opt = parser.parse(argv)
    # Testing reads images in order, one at a time, without flipping (CycleGAN's test settings).
    opt.num_threads, opt.batch_size, opt.serial_batches, opt.no_flip = 0, 1, True, True
    device = resolve_device(opt)
    seed_everything(opt.seed)
    save_options(opt, parser.parser, "test")

    dataset = create_dataset(opt)
    loader = create_dataloader(opt, dataset, device, seed=opt.seed)
    model = create_model(opt, device)
    model.setup(opt)
    if opt.eval:
        model.eval()

    epoch = f"iter_{opt.load_iter}" if opt.load_iter > 0 else opt.epoch
    web_dir = Path(opt.results_dir) / opt.name / f"{opt.phase}_{epoch}"
    webpage = HTML(web_dir, f"Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {epoch}")
    total = min(opt.num_test, len(dataset))
    for i, data in enumerate(Progress(loader, total=total, desc="test")):
        if i >= opt.num_test:
            break
        model.set_input(data)
        model.test()
        save_images(webpage, model.get_current_visuals(), model.get_image_paths()[0], opt.aspect_ratio,
                    opt.display_winsize)  # fmt: skip
    index = webpage.save()
    print(f"results page: {index}")
    return index


if __name__ == "__main__":
    main(sys.argv[1:])
