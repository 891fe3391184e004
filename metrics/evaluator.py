"""All metrics of both directions, accumulated batch by batch: used by evaluate.py on a results folder and by
training's ``--eval_freq`` on the model's outputs.

    ev = Evaluator(classifier, inception)
    for visuals, masks in batches:      # visuals: real_A_img, fake_B_img, real_B_img, fake_A_img [B, 3, H, W]
        ev.add(visuals, masks)          # masks: real_A, fake_B, real_B, fake_A [B, K, H, W] in [-1, 1] (any missing)
    ev.result()                         # {"AtoB": {...}, "BtoA": {...}}

Direction AtoB compares real_A_img with fake_B_img under the masks real_A / fake_B; BtoA likewise. Names are the
model's: with ``--direction BtoA`` the model's A is the dataset's B, which ``swap_domains`` tells the classifier.
"""

from __future__ import annotations

import json
import math

import torch

from .inception import fid, kid
from .pixels import MaskChange, RegionError, union

DIRECTIONS = {"AtoB": ("A", "B"), "BtoA": ("B", "A")}
# The headline metrics (tables of evaluate.py and scripts/ablation.py), then the counts behind them.
METRICS = (
    "bg_l1",
    "bg_psnr",
    "fg_l1",
    "fg_psnr",
    "mask_iou",
    "area_change",
    "aspect_change",
    "extent_change",
    "domain_score",
    "classifier_acc",
    "fid",
    "kid",
)
KEYS = (*METRICS, "kid_std", "num_images", "num_instances", "domain_images")


class Evaluator:
    def __init__(
        self, classifier=None, inception=None, swap_domains: bool = False, kid_subsets: int = 100, seed: int = 0
    ):
        """``classifier``: a ``DomainClassifier`` (None: no domain score); ``inception``: an ``InceptionFeatures``
        (None: no FID/KID); ``swap_domains``: the model's A is the classifier's B (a ``--direction BtoA`` run)."""
        self.classifier, self.inception = classifier, inception
        self.swap, self.kid_subsets, self.seed = swap_domains, kid_subsets, seed
        self.background = {d: RegionError() for d in DIRECTIONS}
        self.foreground = {d: RegionError() for d in DIRECTIONS}
        self.masks = {d: MaskChange() for d in DIRECTIONS}
        self.has_masks = {d: False for d in DIRECTIONS}
        self.has_instances = False
        self.images = dict.fromkeys(DIRECTIONS, 0)
        self.to_target = dict.fromkeys(DIRECTIONS, 0)  # translations classified as the target domain
        self.judged = dict.fromkeys(DIRECTIONS, 0)  # translations judged (of inputs with an instance)
        self.real_correct = self.real_count = 0
        self.features: dict[str, list[torch.Tensor]] = {}

    @staticmethod
    def _with_instances(masks: torch.Tensor | None, images: torch.Tensor) -> torch.Tensor:
        """``[B]`` bool: the images the domain classifier judges, those with an instance (all when the masks are
        unknown). An image without one shows nothing of its domain: the toy data's backgrounds are shared, and a
        translation of such an image is meant to change nothing."""
        if masks is None:
            return torch.ones(images.shape[0], dtype=torch.bool)
        return union(masks, images).flatten(1).any(dim=1).cpu()

    def _is_b(self, images: torch.Tensor) -> torch.Tensor:
        """The classifier's verdict, in the model's naming: True = the model's domain B."""
        verdict = self.classifier.predict_b(images)
        return ~verdict if self.swap else verdict

    def add(
        self, visuals: dict[str, torch.Tensor], masks: dict[str, torch.Tensor] | None = None, instances: bool = True
    ) -> None:
        """One batch: ``visuals`` name -> ``[B, 3, H, W]`` in [-1, 1]; ``masks`` key -> ``[B, K, H, W]`` in [-1, 1],
        slot-aligned. ``instances=False``: the masks are merged ones (one slot), good for the regions only."""
        masks = masks or {}
        for d, (src, dst) in DIRECTIONS.items():
            real, fake = visuals.get(f"real_{src}_img"), visuals.get(f"fake_{dst}_img")
            if real is None or fake is None:
                continue
            if real.shape != fake.shape:
                raise ValueError(
                    f"{d}: real_{src}_img {tuple(real.shape)} and fake_{dst}_img {tuple(fake.shape)} differ in shape"
                )
            m_in, m_out = masks.get(f"real_{src}"), masks.get(f"fake_{dst}")
            for m, key in ((m_in, f"real_{src}"), (m_out, f"fake_{dst}")):
                if m is not None and (m.shape[0] != real.shape[0] or m.shape[2:] != real.shape[2:]):
                    raise ValueError(f"{d}: masks {key} {tuple(m.shape)} do not match the images {tuple(real.shape)}")
            inside = union(m_in, real).to(real.device)
            self.background[d].add(real, fake, ~(inside | union(m_out, real).to(real.device)))
            if m_in is not None:
                self.has_masks[d] = True
                self.has_instances |= instances
                self.foreground[d].add(real, fake, inside)
                if m_out is not None and instances:
                    self.masks[d].add(m_in, m_out)
            self.images[d] += real.shape[0]
            if self.classifier is not None:
                shown = self._with_instances(m_in, real)
                is_b = self._is_b(fake)[shown]
                self.to_target[d] += int((is_b if dst == "B" else ~is_b).sum())
                self.judged[d] += len(is_b)
            if self.inception is not None:
                self.features.setdefault(f"fake_{dst}", []).append(self.inception(fake).cpu())
        if self.classifier is not None:
            for side in "AB":
                real = visuals.get(f"real_{side}_img")
                if real is not None:
                    is_b = self._is_b(real)[self._with_instances(masks.get(f"real_{side}"), real)]
                    self.real_correct += int((is_b if side == "B" else ~is_b).sum())
                    self.real_count += len(is_b)
        if self.inception is not None:
            for side in "AB":
                if f"real_{side}_img" in visuals:
                    self.features.setdefault(f"real_{side}", []).append(
                        self.inception(visuals[f"real_{side}_img"]).cpu()
                    )

    def result(self) -> dict[str, dict]:
        out = {}
        acc = self.real_correct / self.real_count if self.real_count else None
        for d, (_, dst) in DIRECTIONS.items():
            n = self.images[d]
            r = dict.fromkeys(KEYS)
            r["num_images"] = n
            r["bg_l1"], r["bg_psnr"] = self.background[d].l1(), self.background[d].psnr()
            if self.has_masks[d]:
                r["fg_l1"], r["fg_psnr"] = self.foreground[d].l1(), self.foreground[d].psnr()
                if self.masks[d].iou:
                    r.update(self.masks[d].result())
                elif self.has_instances:
                    r["num_instances"] = 0
            if self.classifier is not None and self.judged[d]:
                r["domain_score"], r["classifier_acc"] = self.to_target[d] / self.judged[d], acc
                r["domain_images"] = self.judged[d]
            real, fake = self.features.get(f"real_{dst}"), self.features.get(f"fake_{dst}")
            if real and fake:
                real, fake = torch.cat(real), torch.cat(fake)
                if min(len(real), len(fake)) >= 2:
                    r["fid"] = fid(real, fake)
                    r["kid"], r["kid_std"] = kid(real, fake, subsets=self.kid_subsets, seed=self.seed)
            out[d] = r
        return out


# ------------------------------------------------------------------ presentation

ROWS = (  # (key, label, format)
    ("bg_l1", "background L1 (kept context, lower is better)", "{:.4f}"),
    ("bg_psnr", "background PSNR, dB (higher is better)", "{:.2f}"),
    ("fg_l1", "instance L1 (inside the input masks)", "{:.4f}"),
    ("fg_psnr", "instance PSNR, dB", "{:.2f}"),
    ("mask_iou", "mask IoU, input vs translated", "{:.3f}"),
    ("area_change", "mask area change (fraction of the image)", "{:+.4f}"),
    ("aspect_change", "mask aspect change (box height / width)", "{:+.3f}"),
    ("extent_change", "mask extent change (area / box area)", "{:+.3f}"),
    ("domain_score", "domain score (translations classified as target)", "{:.3f}"),
    ("classifier_acc", "classifier accuracy on real test images", "{:.3f}"),
    ("fid", "FID (lower is better)", "{:.2f}"),
    ("kid", "KID (lower is better)", "{:.4f}"),
    ("num_images", "images", "{}"),
    ("num_instances", "instances", "{}"),
    ("domain_images", "images with instances (judged by the classifier)", "{}"),
)


def fmt(value, spec: str = "{:.4g}") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return spec.format(value)


def table_rows(metrics: dict[str, dict]) -> list[tuple[str, str, str]]:
    """``(label, AtoB, BtoA)`` per metric, values formatted ("n/a" where missing)."""
    rows = []
    for key, label, spec in ROWS:
        cells = []
        for d in DIRECTIONS:
            value = metrics.get(d, {}).get(key)
            text = fmt(value, spec)
            if key == "kid" and value is not None and metrics[d].get("kid_std") is not None:
                text += f" ± {metrics[d]['kid_std']:.4f}"
            cells.append(text)
        rows.append((label, *cells))
    return rows


def format_table(metrics: dict[str, dict]) -> str:
    rows = [("metric", *DIRECTIONS)] + table_rows(metrics)
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}" for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


_INF = "\u0000inf\u0000"  # a string no metric or path holds, swapped for the number after json has written it


def jsonable(value):
    """NaN becomes None; inf becomes a marker that ``dumps`` writes as 1e999."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return _INF if value > 0 else "-" + _INF
    return value


def dumps(value, **kwargs) -> str:
    """Metrics as strict JSON: an infinite PSNR is written as 1e999, valid JSON that Python and JavaScript read
    back as infinity (json's own ``Infinity`` is not JSON); NaN as null."""
    text = json.dumps(jsonable(value), allow_nan=False, **kwargs)
    marker = json.dumps(_INF)
    return text.replace(json.dumps("-" + _INF), "-1e999").replace(marker, "1e999")
