"""Unpaired images with instance masks (``--dataset_mode unaligned_seg``, docs/DESIGN.md §4).

Every problem with a file stops training with an error that names the file and the fix (``BadSampleError``),
unless ``--skip_bad_samples`` is given: then the sample is replaced by the next readable one and the problem is
reported in the item's ``bad`` field, which the training loop counts and lists in ``loss_log.txt``.
``python -m data.check --dataroot D`` finds every such file before training.

Modes the 2018 code read with ``convert('RGB')`` / ``convert('L')`` are read the same way (grayscale, palette,
RGBA with its alpha dropped, CMYK); 16-bit files, which ``convert`` would clip to white, are scaled to 8 bits.
A mask whose colour channels disagree is an error: it is a picture or a coloured label map, not a mask.
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from .check import HIGH_BIT_DEPTH, inspect_mask, mask_to_gray
from .image_folder import index_masks, make_dataset, masks_for
from .sampler import derive_seed

LAYOUT_HINT = (
    "expected layout: <dataroot>/<phase>A/<id>.png with masks <dataroot>/<phase>A_seg/<id>_0.png, <id>_1.png, ... "
    "and the same for B (see docs/DATASETS.md)"
)
CHECK_HINT = "python -m data.check --dataroot <dataroot> lists every such file"
SKIP_HINT = "or pass --skip_bad_samples to skip such samples with a warning"


class BadSampleError(RuntimeError):
    """A file of one sample cannot be used; the message names the file and the fix."""


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
    +1 on the instance, empty slots all -1; ``A_paths``, ``B_paths``: the image files; with
    ``--skip_bad_samples`` also ``bad``: the problems met while reading this item ("" when none).

    Indexed by an int (A in order, B drawn from the global ``random``, augmentation from torch's global generator:
    CycleGAN's behaviour) or by ``(index, sample_seed)`` from ``data.sampler.ResumableSampler``: then B and the
    augmentation are drawn from ``sample_seed`` alone, so a resumed run reads exactly the same samples. B is
    drawn at random unless ``--serial_batches``. Masks are found by image stem; a missing mask leaves its slot empty.
    """

    @staticmethod
    def modify_commandline_options(parser, is_train: bool):
        parser.add_argument(
            "--skip_bad_samples",
            action="store_true",
            help="replace a sample whose files cannot be read by the next one, with a warning "
            "(counted and listed in loss_log.txt), instead of stopping",
        )
        parser.add_argument(
            "--ignore_extra_masks",
            action="store_true",
            help="read only the masks with index < --max_instances, as the 2018 code did, instead "
            "of stopping when an image has more",
        )
        return parser

    def __init__(self, opt):
        self.opt = opt
        self.root = Path(opt.dataroot)
        if not self.root.is_dir():
            what = "is not a folder" if self.root.exists() else "does not exist"
            raise FileNotFoundError(f"--dataroot {self.root} {what}; pass the dataset folder. {LAYOUT_HINT}")
        self.dir = {d: self.root / f"{opt.phase}{d}" for d in "AB"}
        self.paths: dict[str, list[Path]] = {}
        self.masks: dict[str, dict] = {}
        for d in "AB":
            if not self.dir[d].is_dir():
                raise FileNotFoundError(
                    f"image folder {self.dir[d]} is missing (--dataroot {self.root}, --phase {opt.phase}); "
                    f"check both options. {LAYOUT_HINT}"
                )
            self.paths[d] = make_dataset(self.dir[d], opt.max_dataset_size)
            if not self.paths[d]:
                raise FileNotFoundError(
                    f"image folder {self.dir[d]} has no images (extensions .png, .jpg, ...); "
                    f"add images or check --dataroot/--phase. {LAYOUT_HINT}"
                )
            seg_dir = self.root / f"{opt.phase}{d}_seg"
            elsewhere = Path(getattr(opt, "mask_root", "") or self.root) / seg_dir.name
            if elsewhere.is_dir():  # test.py --masks DIR or predict:... (data/mask_source.py)
                seg_dir = elsewhere
            if not seg_dir.is_dir():
                warnings.warn(
                    f"mask folder {seg_dir} is missing: every image of {self.dir[d]} is read with zero "
                    f"instances. {LAYOUT_HINT}",
                    stacklevel=2,
                )
            self.masks[d] = index_masks(seg_dir)
            if not getattr(opt, "ignore_extra_masks", False):
                self._check_mask_counts(d, seg_dir)
        self.transform = build_joint_transform(opt)
        self.nearest_masks = opt.mask_interp == "nearest"
        self.skip_bad = getattr(opt, "skip_bad_samples", False)

    def _check_mask_counts(self, domain: str, seg_dir: Path) -> None:
        limit = self.opt.max_instances
        over = []
        for path in self.paths[domain]:
            by_k = self.masks[domain].get(path.stem, {})
            if by_k and max(by_k) >= limit:
                over.append((path, len(by_k), max(by_k)))
        if over:
            path, count, top = over[0]
            need = max(t for _, _, t in over) + 1
            more = f" (and {len(over) - 1} more images)" if len(over) > 1 else ""
            raise ValueError(
                f"image {path} has {count} masks in {seg_dir}, up to {path.stem}_{top}, but --max_instances is "
                f"{limit}{more}: the masks with index >= {limit} would be ignored. Pass --max_instances {need}, or "
                f"--ignore_extra_masks to read only the first {limit} (the 2018 code's behaviour)."
            )

    def __len__(self) -> int:
        return max(len(self.paths["A"]), len(self.paths["B"]))

    def _load(self, domain: str, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        mask_paths = masks_for(self.masks[domain], path.stem, self.opt.max_instances)
        image = to_rgb(_open(path, "image"), path)
        masks = [to_gray_mask(_open(p, "mask"), p) for p in mask_paths]
        for p, mask in zip(mask_paths, masks):
            if mask.size != image.size:
                raise BadSampleError(
                    f"mask {p} is {mask.size[0]}x{mask.size[1]} but its image {path} is "
                    f"{image.size[0]}x{image.size[1]} (WxH); resize the mask to its image or regenerate it "
                    f"({CHECK_HINT}), {SKIP_HINT}"
                )
        self._check_size(path, image.size)
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

    def _check_size(self, path: Path, size: tuple[int, int]) -> None:
        """Without a resize, the image itself must hold the crop (``crop``) or suit the generator (``none``)."""
        w, h = size
        opt = self.opt
        if opt.resize_or_crop == "crop" and (w < opt.fineSizeW or h < opt.fineSizeH):
            raise BadSampleError(
                f"image {path} is {w}x{h} (WxH), smaller than the crop --fineSizeW/--fineSizeH "
                f"{opt.fineSizeW}x{opt.fineSizeH}; use --resize_or_crop resize_and_crop or a smaller crop, {SKIP_HINT}"
            )
        if opt.resize_or_crop == "none" and (w % 4 or h % 4):
            raise BadSampleError(
                f"image {path} is {w}x{h} (WxH); with --resize_or_crop none both sides must be multiples of 4 (the "
                f"generator downsamples twice by 2); use --resize_or_crop resize_and_crop or crop, {SKIP_HINT}"
            )

    def _get(self, index: int, seed: int | None) -> dict:
        path_A = self.paths["A"][index % len(self.paths["A"])]
        if self.opt.serial_batches:
            path_B = self.paths["B"][index % len(self.paths["B"])]
        elif seed is None:
            path_B = self.paths["B"][random.randint(0, len(self.paths["B"]) - 1)]
        else:
            path_B = self.paths["B"][random.Random(seed).randrange(len(self.paths["B"]))]
        if seed is None:
            A, A_segs = self._load("A", path_A)
            B, B_segs = self._load("B", path_B)
        else:  # augmentation from the sample's own seed; the global generator is left as it was
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                A, A_segs = self._load("A", path_A)
                B, B_segs = self._load("B", path_B)
        return {"A": A, "B": B, "A_segs": A_segs, "B_segs": B_segs, "A_paths": str(path_A), "B_paths": str(path_B)}

    def __getitem__(self, item: int | tuple[int, int]) -> dict:
        index, seed = item if isinstance(item, tuple) else (item, None)
        if not self.skip_bad:
            return self._get(index, seed)
        problems = []
        for attempt in range(len(self)):  # the next samples in turn, until one reads
            try:
                sample = self._get(index + attempt, seed if seed is None or not attempt else derive_seed(seed, attempt))
            except BadSampleError as e:
                problems.append(str(e).replace(f", {SKIP_HINT}", ""))  # it is being skipped
                continue
            sample["bad"] = "\n".join(problems)
            return sample
        raise RuntimeError(
            f"--skip_bad_samples: no sample of {self.root} (phase {self.opt.phase}) can be read; "
            f"first problem: {problems[0]}"
        )


def _open(path: Path, what: str) -> Image.Image:
    """Open and fully decode an image file, with an error naming the file when it cannot be read."""
    try:
        if path.stat().st_size == 0:
            raise BadSampleError(
                f"{what} {path} is an empty (zero-byte) file; replace or delete it ({CHECK_HINT}), {SKIP_HINT}"
            )
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise BadSampleError(
            f"cannot read {what} {path} ({type(e).__name__}: {e}); the file is damaged, truncated or not an "
            f"image: replace or delete it ({CHECK_HINT}), {SKIP_HINT}"
        ) from e


def to_rgb(image: Image.Image, path: Path) -> Image.Image:
    """Any image mode -> ``RGB`` (gray replicated, palette looked up, alpha dropped as the 2018 code did)."""
    if image.mode in HIGH_BIT_DEPTH:  # 16-bit or float gray: scaled to 8 bits as masks are
        image = mask_to_gray(image)
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as e:
        raise BadSampleError(
            f"image {path} has mode {image.mode}, which cannot be converted to RGB ({e}); save it "
            f"as an 8-bit RGB or grayscale PNG/JPEG, {SKIP_HINT}"
        ) from e


def to_gray_mask(mask: Image.Image, path: Path) -> Image.Image:
    """Any mask mode -> ``L`` as the 2018 code read it (16-bit scaled, see ``data.check.mask_to_gray``); an error
    when the colour channels disagree."""
    for kind, message in inspect_mask(mask)[0]:
        if kind == "color_mask":
            raise BadSampleError(
                f"mask {path}: {message}, so which pixels belong to the instance is ambiguous. Save one gray (L) "
                f"mask per instance, 255 on the instance and 0 elsewhere ({CHECK_HINT}), {SKIP_HINT}"
            )
    return mask_to_gray(mask)
