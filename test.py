"""Translate test images with a trained InstaGAN and write a results page.

    python test.py --dataroot ./datasets/shp2gir_coco --name shp2gir_coco_instagan \
        --loadSizeH 200 --loadSizeW 200 --fineSizeH 200 --fineSizeW 200 --ins_per 2 --ins_max 20

Results: ./results/<name>/<phase>_<epoch>/index.html, headed by the run's name, epoch and options; per input, the 12
visuals and the instance masks drawn over the real and translated images (``*_overlay``), as PNGs in images/;
each instance mask, input and translated, in masks/ (for ``python evaluate.py --results_dir <that folder>``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from data import create_dataloader, create_dataset
from data.mask_source import prepare_masks
from metrics.results import save_instance_masks
from models import create_model
from options.base_options import options_text, resolve_device, save_options
from options.test_options import TestOptions
from util.checkpoint import checkpoint_tag
from util.distributed import seed_everything
from util.progress import Progress
from util.results_page import results_page, results_visuals, save_images


def main(argv: list[str] | None = None) -> Path:
    parser = TestOptions()
    opt = parser.parse(argv)
    # Testing reads images in order, one at a time, without flipping (CycleGAN's test settings).
    opt.num_threads, opt.batch_size, opt.serial_batches, opt.no_flip = 0, 1, True, True
    device = resolve_device(opt)
    seed_everything(opt.seed)
    epoch = checkpoint_tag(opt)
    prepare_masks(opt, device, epoch)  # --masks DIR|predict:NAME: where the masks come from (data/mask_source.py)

    dataset = create_dataset(opt)
    loader = create_dataloader(opt, dataset, device, seed=opt.seed)
    model = create_model(opt, device)
    model.setup(opt)
    save_options(opt, parser.parser, "test")  # only once data and checkpoint are known good: a failure writes nothing
    if opt.eval:
        model.eval()

    web_dir = Path(opt.results_dir) / opt.name / f"{opt.phase}_{epoch}"
    webpage = results_page(web_dir, opt, epoch, options_text(opt, parser.parser))
    total = min(opt.num_test, len(dataset))
    for i, data in enumerate(Progress(loader, total=total, desc="test")):
        if i >= opt.num_test:
            break
        model.set_input(data)
        model.test()
        save_images(webpage, results_visuals(model), model.get_image_paths()[0], opt.aspect_ratio, opt.display_winsize)
        if hasattr(model, "get_instance_masks"):  # for evaluate.py: each instance, input and translated
            save_instance_masks(web_dir / "masks", Path(model.get_image_paths()[0]).stem, model.get_instance_masks())
    summary = getattr(model, "test_summary", None)  # a model that scores its own output (mask_predictor: IoU)
    if summary is not None:
        text = summary(web_dir)
        print(text)
        webpage.add_header("summary")
        webpage.add_text(text)
    index = webpage.save()
    print(f"results page: {index}")
    return index


if __name__ == "__main__":
    main(sys.argv[1:])
