"""FID and KID on Inception-v3 pool features, from local weights only (nothing is ever downloaded here).

The weights are torchvision's ``inception_v3`` ImageNet file, found in torch's usual cache
(``torch.hub.get_dir()/checkpoints/inception_v3_google-*.pth``, where torchvision puts it) or given as a path.
FID and KID follow torchmetrics' definitions (tests/test_evaluate.py checks them against it on the same
features): FID is ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½) with unbiased covariances; KID is the unbiased MMD² with the
kernel (x·y / d + 1)³, averaged over random subsets. Note that the published FIDs of most papers use the
TensorFlow Inception graph, whose weights differ: compare numbers computed by this code only with each other.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.models import Inception_V3_Weights, inception_v3

WEIGHTS = Inception_V3_Weights.IMAGENET1K_V1
FEATURES = 2048  # the pool layer before the classifier
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def default_weights_path() -> Path:
    """Where ``torchvision.models.inception_v3(weights="IMAGENET1K_V1")`` caches its file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS.url.rsplit("/", 1)[-1]


def find_weights(path: str | Path | None = None) -> Path | None:
    """The weights file to use: ``path`` when given (it must exist), else the cached file when present."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"--inception_weights {path} does not exist (FID/KID need it). {how_to_get_weights()}"
            )
        return path
    cached = default_weights_path()
    return cached if cached.is_file() else None


def how_to_get_weights() -> str:
    target = default_weights_path()
    return (
        f"torchvision's Inception-v3 weights are not at {target}. On a machine with internet, run "
        "`python -c \"import torchvision; torchvision.models.inception_v3(weights='IMAGENET1K_V1')\"` (it saves "
        f"{target.name} in torch.hub.get_dir()/checkpoints; or download {WEIGHTS.url}), copy that file to {target} "
        "here, or pass --inception_weights FILE"
    )


class InceptionFeatures(torch.nn.Module):
    """Images ``[B, 3, H, W]`` in [-1, 1] -> pool features ``[B, 2048]`` (resized to 299×299, ImageNet-normalized)."""

    def __init__(self, weights_path: str | Path):
        super().__init__()
        # transform_input=True is what torchvision sets for these weights: they expect the Google preprocessing.
        net = inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        except Exception as e:
            raise RuntimeError(
                f"cannot load Inception-v3 weights from {weights_path} ({type(e).__name__}: {e}); it must be the "
                f"state_dict of torchvision's inception_v3. {how_to_get_weights()}"
            ) from e
        net.fc = torch.nn.Identity()
        self.net = net.eval()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.float().clamp(-1, 1) + 1) / 2
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.net((x - self.mean) / self.std).double()


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to ``real`` and ``fake`` features ``[N, D]`` (N ≥ 2 each).

    With the centred features A ``[D, n₁]`` and B ``[D, n₂]``, Σ₁ = AAᵀ/(n₁−1) and Σ₂ = BBᵀ/(n₂−1), and the
    eigenvalues of Σ₁Σ₂ are the squared singular values of AᵀB/√((n₁−1)(n₂−1)): Tr((Σ₁Σ₂)^½) is that matrix's
    nuclear norm. With fewer images than dimensions (the usual case here) this small n₁×n₂ problem replaces a
    D×D matrix square root and stays real where the covariances are singular; otherwise the D×D form is used."""
    if real.shape[0] < 2 or fake.shape[0] < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {real.shape[0]} real and {fake.shape[0]} fake")
    x, y = real.double().cpu(), fake.double().cpu()
    mu1, mu2 = x.mean(dim=0), y.mean(dim=0)
    a, b = (x - mu1) / math.sqrt(x.shape[0] - 1), (y - mu2) / math.sqrt(y.shape[0] - 1)  # [n, D], scaled
    traces = a.square().sum() + b.square().sum()
    if min(a.shape[0], b.shape[0]) <= a.shape[1]:
        trace_root = torch.linalg.svdvals(a @ b.T).sum()
    else:  # Σ₁^½ Σ₂ Σ₁^½ is symmetric, with the eigenvalues of Σ₁Σ₂
        s1, s2 = a.T @ a, b.T @ b
        vals, vecs = torch.linalg.eigh(s1)
        root1 = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T
        middle = root1 @ s2 @ root1
        trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + traces - 2 * trace_root)


def _poly_mmd(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD² of two equal-size sets with the kernel (x·y / d + 1)³ (as torchmetrics and the KID paper)."""
    m, d = x.shape
    k_xx = (x @ x.T / d + 1) ** 3
    k_yy = (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
    return within - 2 * k_xy.sum() / m**2


def kid(
    real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """Kernel Inception Distance: the mean and (population) std of the MMD² over ``subsets`` random subsets of
    ``min(subset_size, N_real, N_fake)`` features each, drawn from a generator seeded with ``seed``."""
    size = min(subset_size, real.shape[0], fake.shape[0])
    if size < 2:
        raise ValueError(f"KID needs at least 2 images per set, got {real.shape[0]} real and {fake.shape[0]} fake")
    gen = torch.Generator().manual_seed(seed)
    real, fake = real.double().cpu(), fake.double().cpu()
    scores = []
    for _ in range(subsets):
        x = real[torch.randperm(real.shape[0], generator=gen)[:size]]
        y = fake[torch.randperm(fake.shape[0], generator=gen)[:size]]
        scores.append(_poly_mmd(x, y))
    scores = torch.stack(scores)
    return float(scores.mean()), float(scores.std(unbiased=False))
