"""CycleGAN's history of generated images, so D also sees older fakes (Shrivastava et al. 2017)."""

from __future__ import annotations

import random

import torch


class ImagePool:
    """Holds up to ``pool_size`` earlier fakes (image and mask channels together, docs/DESIGN.md §3).

    ``query`` returns, for each sample, either the sample itself or, with probability 1/2 once the pool is full,
    a stored older one (which the sample replaces). Python's ``random`` draws the choices, as in CycleGAN.
    """

    def __init__(self, pool_size: int):
        self.pool_size = pool_size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
        """``images: [B, C, H, W]`` (detached here). Samples with ``keep[b] == False`` are returned as they are
        and neither stored nor counted (they carry no loss)."""
        images = images.detach()
        if self.pool_size == 0:
            return images
        keep_list = [True] * images.shape[0] if keep is None else keep.tolist()
        out = []
        for image, kept in zip(images, keep_list):
            image = image.unsqueeze(0)
            if not kept:
                out.append(image)
            elif len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif random.uniform(0, 1) > 0.5:
                index = random.randint(0, self.pool_size - 1)
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> dict:
        return {"pool_size": self.pool_size, "images": [im.cpu() for im in self.images]}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        self.pool_size = state["pool_size"]
        self.images = [im.to(device) for im in state["images"]]
