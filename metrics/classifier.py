"""The domain classification score (paper, section 3): a small CNN trained from scratch to tell the dataset's real
train A images from its train B images; a translation scores the share of its outputs classified as the target
domain, next to the classifier's accuracy on real test images (how far the score can be trusted).

The classifier is trained once per run and image size and kept, with what it was trained on, in
``checkpoints/<name>/domain_classifier.pth``; it is reused while the training images and the size stay the same.
Training is seeded, and a few epochs of a four-layer network take seconds on the CPU for the toy data.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn

from data.image_folder import index_masks, make_dataset
from util.util import atomic_torch_save

VERSION = 4  # of the network and its training recipe: a kept classifier of another version is retrained
MAX_IMAGES = 1000  # per domain; larger datasets are subsampled (seeded) to keep training to about a minute
MAX_SIDE = 128  # larger images are shrunk to this long side before the network (the cost grows with the area)
BLUR_P, BLUR_SIGMA = 0.5, (0.3, 1.5)  # chance that a half-batch is blurred in training, and the range of σ in pixels


class DomainClassifier(nn.Module):
    """``[B, 3, H, W]`` in [-1, 1] -> logit ``[B]`` of "domain B". Fully convolutional, so any image size works;
    images larger than ``MAX_SIDE`` are shrunk first. The max-pooled features say whether a local cue (a corner, a
    hoof) is anywhere in the image, which is what tells the domains apart when they share their backgrounds."""

    def __init__(self, width: int = 16):
        super().__init__()
        layers, c_in = [], 3
        for c_out in (width, 2 * width, 4 * width, 4 * width):
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers[:-1])
        self.head = nn.Linear(2 * c_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = MAX_SIDE / max(x.shape[2:])
        if scale < 1:
            x = F.interpolate(x, scale_factor=scale, mode="bilinear", antialias=True, align_corners=False)
        f = self.features(x)
        return self.head(torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)).squeeze(1)

    @torch.no_grad()
    def predict_b(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> bool ``[B]``: classified as domain B."""
        self.eval()
        device = next(self.parameters()).device
        return self(x.to(device, torch.float32)).cpu() > 0


def load_images(paths: list[Path], size: tuple[int, int]) -> torch.Tensor:
    """Image files -> ``[N, 3, H, W]`` uint8 at ``size`` (H, W), read as the dataset reads them (RGB, bicubic)."""
    out = torch.empty(len(paths), 3, *size, dtype=torch.uint8)
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                im = im.convert("RGB").resize((size[1], size[0]), Image.BICUBIC)
        except OSError as e:
            raise RuntimeError(
                f"domain classifier: cannot read training image {path} ({e}); replace or delete it "
                "(python -m data.check --dataroot <dataroot> lists every such file)"
            ) from e
        out[i] = torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)
    return out


def to_unit(images_uint8: torch.Tensor) -> torch.Tensor:
    return images_uint8.float() / 127.5 - 1


def training_files(dataroot: str | Path, seed: int) -> tuple[list[Path], list[Path], str]:
    """The train A and train B images used and their fingerprint (names and sizes).

    Only images with at least one instance mask are used, when the domain has masks: an image without instances
    shows nothing of its domain (the toy data's backgrounds are shared), so it would only teach noise. At most
    ``MAX_IMAGES`` per domain, drawn with ``seed``."""
    root = Path(dataroot)
    chosen = {}
    for d in "AB":
        folder = root / f"train{d}"
        if not folder.is_dir():
            raise FileNotFoundError(
                f"domain classifier: {folder} is missing; it trains on the dataset's train A and "
                "train B images: pass --dataroot of the run's dataset"
            )
        paths = make_dataset(folder)
        with_masks = index_masks(root / f"train{d}_seg")
        if with_masks:
            paths = [p for p in paths if with_masks.get(p.stem)]
        if not paths:
            raise FileNotFoundError(f"domain classifier: {folder} has no images (with instance masks)")
        if len(paths) > MAX_IMAGES:
            keep = np.random.default_rng(seed).choice(len(paths), MAX_IMAGES, replace=False)
            paths = [paths[i] for i in sorted(keep)]
        chosen[d] = paths
    digest = hashlib.sha1()
    for d in "AB":
        for p in chosen[d]:
            digest.update(f"{d}/{p.name}:{p.stat().st_size}\n".encode())
    return chosen["A"], chosen["B"], digest.hexdigest()


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips, quarter turns (square images), shifts and blur of a batch: the domains differ in their
    instances, not in where the instances are, which way they face or how sharp their edges are. Without the blur,
    a classifier trained on the toy data's sharp shapes told discs by their pixel staircases: it called 66% of the
    real test discs domain B once blurred by a Gaussian of σ = 1 px, so it scored how sharp a translation is rather
    than which shape it drew (docs/EXPERIMENTS.md, "The domain classifier")."""
    if x.shape[2] == x.shape[3]:
        x = torch.rot90(x, int(torch.randint(0, 4, (), generator=gen)), dims=(2, 3))
    elif torch.rand((), generator=gen) < 0.5:
        x = x.flip(2)
    if torch.rand((), generator=gen) < 0.5:
        x = x.flip(3)
    h, w = x.shape[2:]
    dy, dx = (int(torch.randint(-s // 8, s // 8 + 1, (), generator=gen)) for s in (h, w))
    x = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    if torch.rand((), generator=gen) < BLUR_P:
        sigma = float(torch.empty(()).uniform_(*BLUR_SIGMA, generator=gen))
        kernel = min(2 * math.ceil(2 * sigma) + 1, 2 * ((min(h, w) - 1) // 2) + 1)  # odd, reflect padding fits
        x = TF.gaussian_blur(x, [kernel, kernel], [sigma, sigma])
    return x


def train_classifier(
    images_a: torch.Tensor, images_b: torch.Tensor, epochs: int = 60, seed: int = 0, device="cpu", batch_size: int = 32
) -> tuple[DomainClassifier, float]:
    """Train from scratch on ``[N, 3, H, W]`` uint8 images of each domain. Returns the network (eval mode) and its
    accuracy on the training images."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the caller's random state (a training run's) is left as it was
        torch.manual_seed(seed)
        net = DomainClassifier().to(device)
    data = torch.cat([images_a, images_b])
    labels = torch.cat([torch.zeros(len(images_a)), torch.ones(len(images_b))])
    # Balanced classes: the rarer domain's examples weigh more.
    weights = torch.where(labels > 0, len(data) / (2 * len(images_b)), len(data) / (2 * len(images_a)))
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    steps = epochs * max(1, -(-len(data) // batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=gen)
        for start in range(0, len(data), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            half = len(idx) // 2  # two augmentations per batch
            x = torch.cat([_augment(to_unit(data[idx[:half]]), gen), _augment(to_unit(data[idx[half:]]), gen)]).to(
                device
            )
            loss = F.binary_cross_entropy_with_logits(net(x), labels[idx].to(device), weights[idx].to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    net.eval()
    correct = 0
    for start in range(0, len(data), 256):
        correct += int((net.predict_b(to_unit(data[start : start + 256])) == (labels[start : start + 256] > 0)).sum())
    return net, correct / len(data)


def load_or_train(
    path: str | Path,
    dataroot: str | Path,
    size: tuple[int, int],
    device: str | torch.device = "cpu",
    seed: int = 0,
    log=print,
) -> DomainClassifier:
    """The classifier kept at ``path`` when it was trained on the same images at the same ``size`` (H, W) with this
    recipe; otherwise one trained now and saved there (atomically)."""
    path = Path(path)
    files_a, files_b, fingerprint = training_files(dataroot, seed)
    wanted = {"version": VERSION, "size": list(size), "fingerprint": fingerprint, "seed": seed}
    if path.is_file():
        try:
            kept = torch.load(path, map_location="cpu", weights_only=True)
            if all(kept.get(k) == v for k, v in wanted.items()):
                net = DomainClassifier()
                net.load_state_dict(kept["state_dict"])
                log(
                    f"domain classifier: {path} (trained on {kept['num_a']} + {kept['num_b']} images at "
                    f"{size[0]}x{size[1]}, training accuracy {kept['train_acc']:.3f})"
                )
                return net.to(device).eval()
            log(
                f"domain classifier: {path} was trained on other images, at another size or by another recipe; "
                "training a new one"
            )
        except Exception as e:  # a damaged file is replaced, never trusted
            log(f"domain classifier: cannot read {path} ({type(e).__name__}: {e}); training a new one")
    images_a, images_b = load_images(files_a, size), load_images(files_b, size)
    net, acc = train_classifier(images_a, images_b, seed=seed, device=device)
    atomic_torch_save(
        {
            **wanted,
            "state_dict": net.cpu().state_dict(),
            "dataroot": str(Path(dataroot).resolve()),
            "num_a": len(files_a),
            "num_b": len(files_b),
            "train_acc": acc,
        },
        path,
    )
    log(
        f"domain classifier: trained on {len(files_a)} + {len(files_b)} images of {dataroot} at {size[0]}x{size[1]} "
        f"(training accuracy {acc:.3f}); saved to {path}"
    )
    return net.to(device).eval()
