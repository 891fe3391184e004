"""Unpaired images with instance masks (``--dataset_mode unaligned_seg``, SPEC §4)."""

from __future__ import annotations

import random
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from .image_folder import index_masks, make_dataset, masks_for

LAYOUT_HINT = (
    "expected layout: <dataroot>/<phase>A/<id>.png with masks <dataroot>/<phase>A_seg/<id>_0.png, <id>_1.png, ... "
    "and the same for B (see docs/DATASETS.md)"
)


def build_joint_transform(opt) -> v2.Transform:
    """One random resize → crop → flip, drawn once per call and applied to the image and all of its masks."""
    load, fine = (opt.loadSizeH, opt.loadSizeW), (opt.fineSizeH, opt.fineSizeW)
    bicubic = v2.InterpolationMode.BICUBIC
    steps: list[v2.Transform] = []
    if opt.resize_or_crop == "resize_and_crop":
        steps += [v2.Resize(load, interpolation=bicubic), v2.RandomCrop(fine)]
    elif opt.resize_or_crop == "resize":
        steps += [v2.Resize(fine, interpolation=bicubic)]
    elif opt.resize_or_crop == "crop":
        steps += [v2.RandomCrop(fine)]
    if opt.isTrain and not opt.no_flip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose(steps) if steps else v2.Identity()


class UnalignedSegDataset(Dataset):
    """Item: ``A``, ``B``: ``[3, H, W]`` in [-1, 1]; ``A_segs``, ``B_segs``: ``[max_instances, H, W]`` in [-1, 1],
    +1 on the instance, empty slots all -1; ``A_paths``, ``B_paths``: the image files.

    A is taken in order; B at random unless ``--serial_batches``. Masks are found by image stem, so any image
    extension works and a missing mask just leaves its slot empty.
    """

    @staticmethod
    def modify_commandline_options(parser, is_train: bool):
        return parser

    def __init__(self, opt):
        self.opt = opt
        self.root = Path(opt.dataroot)
        if not self.root.is_dir():
            raise FileNotFoundError(f"--dataroot {self.root} does not exist; {LAYOUT_HINT}")
        self.dir = {d: self.root / f"{opt.phase}{d}" for d in "AB"}
        self.paths: dict[str, list[Path]] = {}
        self.masks: dict[str, dict] = {}
        for d in "AB":
            if not self.dir[d].is_dir():
                raise FileNotFoundError(f"image folder {self.dir[d]} is missing; {LAYOUT_HINT}")
            self.paths[d] = make_dataset(self.dir[d], opt.max_dataset_size)
            if not self.paths[d]:
                raise FileNotFoundError(f"image folder {self.dir[d]} has no images; {LAYOUT_HINT}")
            self.masks[d] = index_masks(self.root / f"{opt.phase}{d}_seg")
        self.transform = build_joint_transform(opt)
        self.nearest_masks = opt.mask_interp == "nearest"

    def __len__(self) -> int:
        return max(len(self.paths["A"]), len(self.paths["B"]))

    def _load(self, domain: str, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        mask_paths = masks_for(self.masks[domain], path.stem, self.opt.max_instances)
        image = _open(path, "RGB", "image")
        masks = [_open(p, "L", "mask") for p in mask_paths]
        for p, mask in zip(mask_paths, masks):
            if mask.size != image.size:
                raise ValueError(
                    f"mask {p} is {mask.size[0]}x{mask.size[1]} but its image {path} is "
                    f"{image.size[0]}x{image.size[1]}; masks must have the size of their image"
                )
        if self.nearest_masks:  # tv_tensors.Mask is resampled with nearest neighbours by v2
            mask_in = [tv_tensors.Mask(TF.pil_to_tensor(m)) for m in masks]
            image, *masks = self.transform((image, *mask_in))
            mask_t = [m.float() / 255.0 for m in masks]
        else:
            image, *masks = self.transform((image, *masks))
            mask_t = [TF.to_tensor(m) for m in masks]
        img_t = TF.normalize(TF.to_tensor(image), [0.5] * 3, [0.5] * 3)
        segs = -torch.ones(self.opt.max_instances, *img_t.shape[1:])
        for k, m in enumerate(mask_t):
            segs[k] = m[0] * 2 - 1
        return img_t, segs

    def __getitem__(self, index: int) -> dict:
        path_A = self.paths["A"][index % len(self.paths["A"])]
        if self.opt.serial_batches:
            path_B = self.paths["B"][index % len(self.paths["B"])]
        else:
            path_B = self.paths["B"][random.randint(0, len(self.paths["B"]) - 1)]
        A, A_segs = self._load("A", path_A)
        B, B_segs = self._load("B", path_B)
        return {"A": A, "B": B, "A_segs": A_segs, "B_segs": B_segs, "A_paths": str(path_A), "B_paths": str(path_B)}


def _open(path: Path, mode: str, what: str) -> Image.Image:
    """Open and fully decode an image file, with an error naming the file when it cannot be read."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert(mode)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise RuntimeError(
            f"cannot read {what} {path} ({type(e).__name__}: {e}); replace or delete the file "
            f"(python -m data.check --dataroot <dataroot> lists every such file)"
        ) from e
