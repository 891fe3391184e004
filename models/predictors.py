"""Instance-mask predictors for images that have no masks: ``predictor(image, domain) -> list of masks``.

Two kinds, chosen by a name (``--predictor`` of scripts/predict_masks.py, ``--masks predict:<name>`` of test.py,
``--masks`` of scripts/translate_video.py):

- ``NAME``: a ``--model mask_predictor`` run trained in this codebase, ``<checkpoints_dir>/NAME/<epoch>_net_S_A.pth``
  (domain A images) and ``..._S_B.pth`` (domain B); its architecture is read from ``train_opt.json`` beside them.
- ``maskrcnn``: torchvision's Mask R-CNN (ResNet-50 FPN) trained on COCO, keeping the detections of the COCO
  categories named by ``--classes`` (``sheep,giraffe``: sheep in domain A images, giraffe in B; ``person+dog``
  for several categories in a domain; one entry for both domains). Weights: torchvision's cache (downloaded
  there once when online), or ``--weights PATH``; ``--weights random`` builds it untrained, which only tests
  the plumbing.

Every predictor returns bool ``[H, W]`` numpy arrays at the image's own size, disjoint, each at least
``--min_area`` pixels, ordered by decreasing area (the dataset layout's order, docs/MASKS.md).
"""

from __future__ import annotations

import argparse
import difflib
import json
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from .instances import order_by_area
from .mask_predictor_model import DEFAULT_MIN_AREA, MaskPredictorModel

MASKRCNN = "maskrcnn"


def add_predictor_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The options of both predictors (test.py, scripts/predict_masks.py, scripts/translate_video.py)."""
    add = parser.add_argument
    add("--predictor_epoch", default="latest", help="mask predictor: the checkpoint of its run to load")
    add(
        "--classes",
        default="",
        help="maskrcnn: COCO categories, domain A then B, e.g. sheep,giraffe (person+dog: "
        "several in a domain; one entry: both domains; all: every category)",
    )
    add(
        "--weights",
        default="",
        help="maskrcnn: weights file (default: torchvision's cache, downloaded there once "
        "when online); 'random': untrained, for tests of the plumbing only",
    )
    add("--score_thresh", type=float, default=0.5, help="maskrcnn: keep detections scoring at least this")
    add("--mask_thresh", type=float, default=0.5, help="maskrcnn: a pixel is on the instance above this probability")
    add("--maskrcnn_size", type=int, default=800, help="maskrcnn: images are resized to this shorter side inside it")
    add("--maskrcnn_detections", type=int, default=100, help="maskrcnn: at most this many detections per image")
    add("--min_area", type=int, default=DEFAULT_MIN_AREA, help="predicted instances below this many pixels are dropped")
    return parser


def build_predictor(name: str, opt, device: torch.device | str = "cpu"):
    """``maskrcnn`` or the name of a mask_predictor run (see the module docstring); ``opt`` holds the options of
    ``add_predictor_options`` and ``checkpoints_dir``."""
    if name == MASKRCNN:
        return MaskRCNNPredictor(
            parse_classes(opt.classes),
            opt.weights,
            device,
            opt.score_thresh,
            opt.mask_thresh,
            opt.min_area,
            opt.maskrcnn_size,
            opt.maskrcnn_detections,
        )
    return UNetPredictor(name, opt.checkpoints_dir, opt.predictor_epoch, device, opt.min_area)


def to_tensor(image: Image.Image) -> torch.Tensor:
    """PIL image → ``[1, 3, H, W]`` in [-1, 1]."""
    return TF.normalize(TF.to_tensor(image.convert("RGB")), [0.5] * 3, [0.5] * 3)[None]


class UNetPredictor:
    """A trained ``--model mask_predictor`` run; ``predictor(image, "A")`` uses S_A, ``"B"`` S_B."""

    def __init__(
        self,
        name: str,
        checkpoints_dir: str | Path = "./checkpoints",
        epoch: str = "latest",
        device: torch.device | str = "cpu",
        min_area: int | None = None,
    ):
        folder = Path(checkpoints_dir) / name
        options = folder / "train_opt.json"
        if not options.is_file():
            hint = "" if folder.is_dir() else f" ({folder} does not exist: check the name and --checkpoints_dir)"
            raise FileNotFoundError(
                f"mask predictor '{name}': {options} not found{hint}. Train one first: python train.py --model "
                f"mask_predictor --name {name} --dataroot <dataset with masks>, or use --predictor maskrcnn"
            )
        saved = json.loads(options.read_text())
        if saved.get("model") != "mask_predictor":
            raise ValueError(
                f"{folder} holds a --model {saved.get('model')} run, not a mask_predictor; train one "
                f"with python train.py --model mask_predictor --name <name> ..."
            )
        opt = argparse.Namespace(**saved)
        opt.isTrain, opt.checkpoints_dir, opt.name = False, str(checkpoints_dir), name
        opt.min_area = DEFAULT_MIN_AREA if min_area is None else min_area
        self.name = name
        self.device = torch.device(device)
        self.model = MaskPredictorModel(opt, self.device)
        self.model.load_networks(epoch)
        self.model.eval()
        self.train_size = tuple(int(v) for v in self.model.netS_A.train_size.tolist())

    def __call__(self, image: Image.Image, domain: str) -> list[np.ndarray]:
        masks = self.model.predict(to_tensor(image), domain)[0]
        return [m.cpu().numpy() for m in masks]


def parse_classes(text: str) -> dict[str, list[str]]:
    """``"sheep,giraffe"`` → ``{"A": ["sheep"], "B": ["giraffe"]}``; ``"person+dog"`` → both domains
    ``["person", "dog"]``. Names are checked against COCO's, with suggestions."""
    from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

    if not text.strip():
        raise ValueError("maskrcnn needs --classes, the COCO categories to keep, e.g. --classes sheep,giraffe")
    coco = [c for c in MaskRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"] if c not in ("__background__", "N/A")]
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"--classes {text!r}: give one entry per domain (A,B), e.g. sheep,giraffe")
    domains = {"A": parts[0].split("+"), "B": parts[-1].split("+")}
    for names in domains.values():
        for n in names:
            if n not in coco and n != "all":
                close = difflib.get_close_matches(n, coco, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else f"; COCO's are: {', '.join(coco)}"
                raise ValueError(f"--classes: {n!r} is not a COCO category{hint}")
    return domains


class MaskRCNNPredictor:
    """torchvision's Mask R-CNN; ``predictor(image, domain)`` keeps the detections of that domain's classes.

    Overlapping detections are made disjoint (a pixel belongs to the highest-scoring detection that covers it),
    as InstaGAN's masks are the visible part of each instance.
    """

    def __init__(
        self,
        classes: dict[str, list[str]],
        weights: str = "",
        device: torch.device | str = "cpu",
        score_thresh: float = 0.5,
        mask_thresh: float = 0.5,
        min_area: int = DEFAULT_MIN_AREA,
        min_size: int = 800,
        detections: int = 100,
    ):
        from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights, maskrcnn_resnet50_fpn

        meta = MaskRCNN_ResNet50_FPN_Weights.COCO_V1
        categories = meta.meta["categories"]
        self.name = MASKRCNN
        every = set(range(1, len(categories))) - {i for i, c in enumerate(categories) if c == "N/A"}
        self.class_ids = {
            d: every if names == ["all"] else {categories.index(n) for n in names} for d, names in classes.items()
        }
        self.score_thresh, self.mask_thresh, self.min_area = score_thresh, mask_thresh, min_area
        self.device = torch.device(device)
        # Score filtering happens here, per domain; torchvision's own threshold is only a floor for speed.
        net = maskrcnn_resnet50_fpn(
            weights=None,
            weights_backbone=None,
            num_classes=len(categories),
            box_score_thresh=min(score_thresh, 0.05),
            min_size=min_size,
            max_size=max(min_size, round(min_size * 1333 / 800)),
            box_detections_per_img=detections,
        )
        if weights != "random":
            net.load_state_dict(self._state_dict(weights, meta))
        self.net = net.to(self.device).eval()

    @staticmethod
    def _state_dict(weights: str, meta) -> dict:
        if weights:
            path = Path(weights)
            if not path.is_file():
                raise FileNotFoundError(
                    f"--weights {path} not found; pass the Mask R-CNN weights file "
                    f"({Path(meta.url).name}, see docs/MASKS.md)"
                )
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as e:
                raise RuntimeError(f"--weights {path} cannot be read as a torch state_dict ({e})") from e
            return state.get("model", state) if isinstance(state, dict) else state
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(meta.url).name
        try:
            return meta.get_state_dict(progress=False, check_hash=True)
        except Exception as e:  # offline, or a partial download
            raise RuntimeError(
                f"Mask R-CNN's COCO weights are not in torchvision's cache ({cached}) and could not be downloaded "
                f'({type(e).__name__}: {e}). On a machine with internet access run: python -c "from '
                'torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights as W; W.COCO_V1.get_state_dict()"'
                f" and copy {cached.name} to {cached.parent}, or pass --weights PATH"
            ) from e

    @torch.no_grad()
    def __call__(self, image: Image.Image, domain: str) -> list[np.ndarray]:
        x = TF.to_tensor(image.convert("RGB")).to(self.device)
        out = self.net([x])[0]
        keep = [
            i
            for i, (label, score) in enumerate(zip(out["labels"].tolist(), out["scores"].tolist()))
            if label in self.class_ids[domain] and score >= self.score_thresh
        ]
        keep.sort(key=lambda i: -float(out["scores"][i]))
        taken = np.zeros((image.height, image.width), dtype=bool)
        masks = []
        for i in keep:
            mask = out["masks"][i, 0].cpu().numpy() > self.mask_thresh
            mask &= ~taken
            if mask.sum() >= self.min_area:
                masks.append(mask)
                taken |= mask
        return order_by_area(masks)
