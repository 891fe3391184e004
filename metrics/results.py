"""test.py's results folder, as the evaluation reads it, and the evaluation's marks on it.

    <results_dir>/images/<stem>_<visual>.png        the visuals (real_A_img, fake_B_img, real_A_seg, ...)
    <results_dir>/masks/<stem>_<key>_<k>.png        instance mask k of real_A, fake_B, real_B, fake_A (255 inside)
    <results_dir>/index.html                        the results page; evaluate.py adds its metrics section
    <results_dir>/metrics.json                      evaluate.py's numbers

Mask k of fake_B is the translation of mask k of real_A (and fake_A of real_B), so a slot is written for both
whenever the input's slot holds an instance, even when the translated mask came out empty.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from util.util import atomic_write_bytes, atomic_write_text

IMAGE_VISUALS = ("real_A_img", "fake_B_img", "real_B_img", "fake_A_img")
MERGED_MASKS = {"real_A": "real_A_seg", "fake_B": "fake_B_seg", "real_B": "real_B_seg", "fake_A": "fake_A_seg"}
MASK_KEYS = ("real_A", "fake_B", "real_B", "fake_A")
PAIRED = {"fake_B": "real_A", "fake_A": "real_B"}  # translated masks -> the input masks their slots come from
SECTION_START, SECTION_END = "<!-- metrics -->", "<!-- /metrics -->"


def _png(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def save_instance_masks(mask_dir: str | Path, stem: str, masks: dict[str, torch.Tensor]) -> list[Path]:
    """Write the first sample's instance masks as ``<stem>_<key>_<k>.png`` (255 inside, 0 outside).

    ``masks``: key -> ``[B, K, H, W]`` in [-1, 1], empty slot all -1 (the model's ``get_instance_masks()``). A slot
    is written when it, or the input slot it was translated from, holds an instance."""
    mask_dir = Path(mask_dir)
    written = []
    binary = {k: (v[0] > 0).cpu() for k, v in masks.items()}
    for key, m in binary.items():
        source = binary.get(PAIRED.get(key, key), m)
        for k in range(m.shape[0]):
            if m[k].any() or (k < source.shape[0] and source[k].any()):
                path = mask_dir / f"{stem}_{key}_{k}.png"
                atomic_write_bytes(path, _png(m[k].numpy().astype(np.uint8) * 255))
                written.append(path)
    return written


def read_image(path: Path) -> torch.Tensor:
    """An RGB PNG -> ``[3, H, W]`` in [-1, 1]."""
    try:
        with Image.open(path) as im:
            array = np.asarray(im.convert("RGB"), dtype=np.float32)
    except OSError as e:
        raise RuntimeError(f"cannot read {path} ({e}); rerun test.py to write the results folder again") from e
    return torch.from_numpy(array / 127.5 - 1).permute(2, 0, 1)


def read_mask(path: Path, size: tuple[int, int]) -> torch.Tensor:
    """A mask PNG -> ``[H, W]`` in {-1, 1} at ``size`` (nearest neighbour: saved visuals may be stretched by
    test.py's --aspect_ratio, the masks are not)."""
    try:
        with Image.open(path) as im:
            im = im.convert("L")
            if im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.NEAREST)
            array = np.asarray(im)
    except OSError as e:
        raise RuntimeError(f"cannot read mask {path} ({e}); rerun test.py to write the results folder again") from e
    return torch.from_numpy(array >= 128).float() * 2 - 1


class ResultsFolder:
    """The inputs of a results folder, in name order, as batches of tensors."""

    def __init__(self, results_dir: str | Path):
        self.root = Path(results_dir)
        self.image_dir, self.mask_dir = self.root / "images", self.root / "masks"
        if not self.image_dir.is_dir():
            raise FileNotFoundError(
                f"{self.image_dir} is missing: --results_dir must be the folder test.py wrote, "
                "results/<name>/<phase>_<epoch> (the one holding index.html and images/)"
            )
        suffix = "_real_A_img.png"
        self.stems = sorted(p.name[: -len(suffix)] for p in self.image_dir.glob(f"*{suffix}"))
        if not self.stems:
            raise FileNotFoundError(f"{self.image_dir} holds no <stem>{suffix}: not a results folder of test.py")
        self.masks_by_stem = self._index_masks()
        # A folder from before test.py wrote instance masks (or of a model without them): the merged masks only.
        self.instance_masks = bool(self.masks_by_stem)

    def _index_masks(self) -> dict[str, dict[str, dict[int, Path]]]:
        if not self.mask_dir.is_dir():
            return {}
        stems = set(self.stems)
        pattern = re.compile(r"^(?P<stem>.+)_(?P<key>real_A|fake_B|real_B|fake_A)_(?P<k>\d+)\.png$")
        index: dict[str, dict[str, dict[int, Path]]] = {}
        for path in self.mask_dir.iterdir():
            match = pattern.match(path.name)
            if match and match["stem"] in stems:
                index.setdefault(match["stem"], {}).setdefault(match["key"], {})[int(match["k"])] = path
        return index

    def image_size(self) -> tuple[int, int]:
        """(H, W) of the translated images."""
        with Image.open(self.image_dir / f"{self.stems[0]}_real_A_img.png") as im:
            return im.size[1], im.size[0]

    def _sample(self, stem: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        visuals = {}
        for name in IMAGE_VISUALS:
            path = self.image_dir / f"{stem}_{name}.png"
            if path.is_file():
                visuals[name] = read_image(path)
        size = tuple(visuals["real_A_img"].shape[1:])
        masks = {}
        if self.instance_masks:
            by_key = self.masks_by_stem.get(stem, {})
            slots = 1 + max((k for key in by_key.values() for k in key), default=-1)
            for key in MASK_KEYS:
                if key not in by_key and not any(key in m for m in self.masks_by_stem.values()):
                    continue  # a model without this key (CycleGAN has no translated masks)
                stack = -torch.ones(slots, *size)
                for k, path in by_key.get(key, {}).items():
                    stack[k] = read_mask(path, size)
                masks[key] = stack
        else:
            for key, visual in MERGED_MASKS.items():
                path = self.image_dir / f"{stem}_{visual}.png"
                if path.is_file():
                    masks[key] = read_mask(path, size)[None]
        return visuals, masks

    def batches(self, batch_size: int = 16) -> Iterator[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
        """``(visuals, masks)`` of up to ``batch_size`` inputs: ``[B, 3, H, W]`` and ``[B, K, H, W]`` in [-1, 1]."""
        for start in range(0, len(self.stems), batch_size):
            samples = [self._sample(s) for s in self.stems[start : start + batch_size]]
            visuals = {
                k: torch.stack([v[k] for v, _ in samples]) for k in samples[0][0] if all(k in v for v, _ in samples)
            }
            keys = [k for k in samples[0][1] if all(k in m for _, m in samples)]
            masks = {}
            for key in keys:
                slots = max(m[key].shape[0] for _, m in samples)
                padded = [
                    torch.cat([m[key], -torch.ones(slots - m[key].shape[0], *m[key].shape[1:])]) for _, m in samples
                ]
                masks[key] = torch.stack(padded)
            yield visuals, masks


def metrics_section(table: list[tuple[str, str, str]], notes: list[str]) -> str:
    """The results page's metrics block: a table (metric, AtoB, BtoA) and notes, between markers so that a later
    evaluation replaces it."""
    esc = html.escape
    rows = "".join(f"<tr><td>{esc(a)}</td><td>{esc(b)}</td><td>{esc(c)}</td></tr>" for a, b, c in table)
    notes_html = "".join(f"<li>{esc(n)}</li>" for n in notes)
    return (
        f'{SECTION_START}<section id="metrics"><h2 style="font-size:1.15em">Metrics (evaluate.py)</h2>'
        '<table class="metrics" border="1" style="border-collapse:collapse"><thead><tr><th>metric</th><th>AtoB</th>'
        f"<th>BtoA</th></tr></thead><tbody>{rows}</tbody></table>"
        f'<ul class="metrics-notes">{notes_html}</ul><p>Numbers in metrics.json.</p></section>{SECTION_END}'
    )


def add_metrics_to_page(index: str | Path, section: str) -> bool:
    """Put ``section`` on the results page: in place of an earlier one, else in place of test.py's placeholder
    ``<section id="metrics">``, else after the title. Atomic; False when the page does not exist."""
    index = Path(index)
    if not index.is_file():
        return False
    page = index.read_text(encoding="utf-8")
    if SECTION_START in page and SECTION_END in page:
        head, rest = page.split(SECTION_START, 1)
        page = head + section + rest.split(SECTION_END, 1)[1]
    elif re.search(r'<section id="metrics">.*?</section>', page, flags=re.S):  # test.py's placeholder
        page = re.sub(r'<section id="metrics">.*?</section>', lambda _: section, page, count=1, flags=re.S)
    elif "</h1>" in page:
        page = page.replace("</h1>", "</h1>" + section, 1)
    else:
        page = page.replace("<body>", "<body>" + section, 1)
    atomic_write_text(index, page)
    return True
