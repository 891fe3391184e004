"""Predict instance masks for a dataset's images, in the dataset layout (docs/MASKS.md).

    python scripts/predict_masks.py --dataroot ./datasets/photos --phase test --predictor toy_masks
    python scripts/predict_masks.py --dataroot ./datasets/photos --predictor maskrcnn --classes sheep,giraffe

writes ``<dataroot>/<phase>A_seg/<stem>_<k>.png`` (and B), k = 0, 1, ... by decreasing area, 255 on the instance,
for every image of ``<phase>A`` / ``<phase>B``. ``--predictor NAME`` is a ``--model mask_predictor`` run in
``--checkpoints_dir``; ``maskrcnn`` is torchvision's COCO Mask R-CNN (``--classes``, ``--weights``).

Existing masks are never replaced unless ``--overwrite``: with any image already holding masks, the script stops
before writing anything (``--skip_existing`` predicts only the images without masks). An image without any
detected instance gets no mask file (it is read with zero instances). An unreadable image is skipped and named
in the summary. The result passes ``python -m data.check --dataroot D``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from data.mask_source import format_stats, predict_folder, refuse_overwrite  # noqa: E402
from models.predictors import add_predictor_options, build_predictor  # noqa: E402


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataroot", required=True, type=Path, help="dataset folder holding <phase>A, <phase>B")
    parser.add_argument("--phase", default="test", help="which images: <phase>A and <phase>B")
    parser.add_argument("--predictor", required=True, help="a --model mask_predictor run's name, or maskrcnn")
    parser.add_argument("--domains", default="AB", choices=("AB", "A", "B"), help="which domains to predict")
    parser.add_argument("--checkpoints_dir", default="./checkpoints", help="where the mask_predictor run is")
    parser.add_argument("--out_root", type=Path, default=None, help="write the _seg folders here (default --dataroot)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing masks of the images")
    parser.add_argument("--skip_existing", action="store_true", help="leave images that have masks as they are")
    parser.add_argument("--max_images", type=float, default=float("inf"), help="at most this many images per domain")
    parser.add_argument("--gpu_ids", default="-1", help="GPU id to run on, e.g. 0; -1 for the CPU")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_predictor_options(parser)
    args = parser.parse_args(argv)
    if args.overwrite and args.skip_existing:
        parser.error("--overwrite and --skip_existing exclude each other")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    gpu = int(args.gpu_ids.split(",")[0])
    device = torch.device("cuda", gpu) if gpu >= 0 and torch.cuda.is_available() else torch.device("cpu")
    out_root = args.out_root or args.dataroot
    folders = []
    for d in args.domains:
        image_dir = args.dataroot / f"{args.phase}{d}"
        if not image_dir.is_dir():
            raise SystemExit(
                f"image folder {image_dir} is missing (--dataroot {args.dataroot}, --phase {args.phase}); "
                f"predict only the domains present with --domains"
            )
        folders.append((d, image_dir, out_root / f"{args.phase}{d}_seg"))
    if not (args.overwrite or args.skip_existing):
        try:  # every folder is checked before anything is written
            refuse_overwrite([(img, seg) for _, img, seg in folders])
        except FileExistsError as e:
            raise SystemExit(str(e)) from None
    predictor = build_predictor(args.predictor, args, device)
    start = time.perf_counter()
    summary = {}
    for d, image_dir, seg_dir in folders:
        summary[d] = predict_folder(
            predictor,
            image_dir,
            seg_dir,
            d,
            skip_existing=args.skip_existing,
            max_images=args.max_images,
            quiet=args.quiet,
        )
    print(f"predicted masks with {args.predictor} in {time.perf_counter() - start:.1f} s:")
    for stats in summary.values():
        print(f"  {format_stats(stats)}")
    print(f"check them: python -m data.check --dataroot {out_root} --phase {args.phase}")
    return summary


if __name__ == "__main__":
    main()
