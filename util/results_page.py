"""test.py's results page: per input, the model's visuals and its instance masks drawn over the images.

``results_page`` builds the page (a title, the run's description and options), ``save_images`` adds one input's
row. Which masks go over which image is the model's choice, not the page's: the model names them in
``overlay_visuals`` (image visual -> key of its ``get_instance_masks()``), so that the page works for any model and
imports none.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from html import escape as html_escape
from pathlib import Path

import numpy as np
import torch

from . import html
from .loss_plot import COLORS, rgb
from .util import save_image, tensor2im


def overlay_masks(image: np.ndarray, masks: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Instances drawn over an image, one colour each, filled at ``alpha`` with a solid outline.

    ``image``: ``[H, W, 3]`` uint8; ``masks``: ``[N, H, W]`` in [-1, 1] (> 0 on the instance; empty slots ignored).
    """
    if image.shape[:2] != masks.shape[1:]:
        raise ValueError(f"image {image.shape[:2]} and masks {masks.shape[1:]} differ in size")
    out = image.astype(np.float32)
    for k, mask in enumerate(masks > 0):
        if not mask.any():
            continue
        color = np.array(rgb(COLORS[k % len(COLORS)]), dtype=np.float32)
        out[mask] = (1 - alpha) * out[mask] + alpha * color
        inner = mask.copy()  # 4-neighbour erosion; what it removes is the outline
        inner[1:] &= mask[:-1]
        inner[:-1] &= mask[1:]
        inner[:, 1:] &= mask[:, :-1]
        inner[:, :-1] &= mask[:, 1:]
        out[mask & ~inner] = color
    return out.round().clip(0, 255).astype(np.uint8)


def overlay_visuals(model) -> OrderedDict[str, np.ndarray]:
    """``<mask key>_overlay`` (e.g. ``real_A_overlay``) for each ``image visual -> mask key`` pair of the model's
    ``overlay_visuals``: the first sample of that visual with the masks ``get_instance_masks()[key]`` drawn over it.
    Pairs whose image or masks the model does not have (yet) are skipped."""
    pairs = getattr(model, "overlay_visuals", {})
    masks = model.get_instance_masks() if pairs else {}
    out = OrderedDict()
    for visual, key in pairs.items():
        image = getattr(model, visual, None)
        if image is None or key not in masks:
            continue
        out[f"{key}_overlay"] = overlay_masks(tensor2im(image), masks[key][0].detach().float().cpu().numpy())
    return out


def results_visuals(model) -> OrderedDict[str, np.ndarray]:
    """The model's visuals with the overlays among them, as ``[H, W, 3]`` uint8 images.

    The visuals are cut into blocks, each starting at an image that has an overlay when the visual before it has
    none; each block's overlays follow it. For InstaGAN that gives two rows of 8: domain A's six visuals,
    ``real_A_overlay``, ``fake_B_overlay``, then the same for B.
    """
    overlays = overlay_visuals(model)
    label_of = {visual: f"{key}_overlay" for visual, key in getattr(model, "overlay_visuals", {}).items()}
    ordered, pending, after_overlaid = OrderedDict(), [], False
    for name, image in model.get_current_visuals().items():
        overlaid = label_of.get(name) in overlays
        if overlaid and not after_overlaid:  # a new block: the previous block's overlays go first
            ordered.update((label, overlays[label]) for label in pending)
            pending = []
        ordered[name] = tensor2im(image)
        if overlaid:
            pending.append(label_of[name])
        after_overlaid = overlaid
    ordered.update((label, overlays[label]) for label in pending)
    return ordered


def results_page(web_dir: str | Path, opt, epoch: str, options: str) -> html.HTML:
    """Build test.py's page in ``web_dir``, headed by the run's name, phase and epoch, its options folded below.
    Rows are added with ``save_images``; ``page.save()`` writes ``index.html``."""
    page = html.HTML(web_dir, f"Experiment = {opt.name}, Phase = {opt.phase}, Epoch = {epoch}")
    page.add_text(
        f"Written {time.strftime('%Y-%m-%d %H:%M:%S')} from checkpoint '{epoch}' of {opt.name} "
        f"({Path(opt.checkpoints_dir) / opt.name}); dataroot {opt.dataroot}. Each input shows its translations, "
        "the merged masks, and the instance masks drawn over the images (*_overlay)."
    )
    page.add_details("options", options)
    # evaluate.py puts its metrics table here (metrics/results.py); until then, how to get it.
    page.add_raw(
        f'<section id="metrics"><p>Metrics: <code>python evaluate.py --results_dir {html_escape(str(web_dir))}'
        "</code> adds them here.</p></section>"
    )
    return page


def save_images(
    webpage: html.HTML,
    visuals: OrderedDict,
    image_path: str,
    aspect_ratio: float = 1.0,
    width: int = 256,
    ncols: int = 8,
) -> None:
    """Add one input's row to the page: a header with the input's name, then ``<stem>_<label>.png`` for each
    visual (tensors ``[B, C, H, W]`` in [-1, 1], first sample, or ``[H, W, 3]`` uint8 arrays), ``ncols`` per row."""
    stem = Path(image_path).stem
    webpage.add_header(stem)
    names, labels = [], []
    for label, image in visuals.items():
        name = f"{stem}_{label}.png"
        save_image(tensor2im(image) if torch.is_tensor(image) else image, webpage.get_image_dir() / name, aspect_ratio)
        names.append(name)
        labels.append(label)
    webpage.add_images(names, labels, names, width=width, ncols=ncols)
