"""Mask predictor (``--model mask_predictor``): per domain, an image → instance masks network (paper §3.1).

The InstaGAN authors trained a pix2pix segmenter per class on the training masks and used its predictions where
images had none, but released none of it. Here, per domain (S_A for domain A images, S_B for B), a U-Net
(``models/unet.py``) predicts two maps from the image, trained with binary cross-entropy on the dataset's own
``trainA_seg`` / ``trainB_seg``:

- channel 0, the *union*: 1 on any instance;
- channel 1, the *core*: 1 on each instance eroded by ``--erode`` pixels (at the training resolution), so that
  two touching instances have separate cores (``--erode 0`` trains the union only).

Instances are then found by ``models/instances.split_instances``: the cores' connected components grown back into
the union, each at least ``--min_area`` pixels, ordered by decreasing area.

    python train.py --model mask_predictor --dataroot ./datasets/toy --name toy_masks --loadSizeH 72 \
        --loadSizeW 72 --fineSizeH 64 --fineSizeW 64 --niter 10 --niter_decay 10 --batch_size 4 --gpu_ids -1
    python test.py --model mask_predictor --dataroot ./datasets/toy --name toy_masks --loadSizeH 72 ...

test.py reports the IoU of the predicted against the real masks (the union, and each real instance's best
match) on the console and the results page, and writes it to ``mask_iou.json``. The checkpoints are
``<epoch>_net_S_A.pth`` / ``<epoch>_net_S_B.pth``; each holds its training image size (``train_size``), and
images of any other size are resized to it before prediction and the masks resized back (docs/MASKS.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from util.loss_plot import COLORS
from util.util import atomic_write_text

from .base_model import BaseModel
from .instances import iou_matrix, split_instances
from .unet import define_unet

DEFAULT_MIN_AREA = 16


def erode(masks: torch.Tensor, radius: int) -> torch.Tensor:
    """Binary erosion of ``[B, N, H, W]`` {0, 1} masks by a square of side ``2 * radius + 1``. Pixels outside the
    image do not erode, so an instance cut by the border keeps its core up to the border."""
    if radius <= 0:
        return masks
    return -F.max_pool2d(-masks, 2 * radius + 1, stride=1, padding=radius)


def label_image(masks: list[torch.Tensor], shape: tuple[int, int]) -> torch.Tensor:
    """Instances as one colour image ``[1, 3, H, W]`` in [-1, 1]: instance k in colour k, background black."""
    out = torch.full((3, *shape), -1.0)
    for k, mask in enumerate(masks):
        colour = torch.tensor([int(COLORS[k % len(COLORS)][i : i + 2], 16) / 127.5 - 1 for i in (1, 3, 5)])
        out[:, mask.cpu()] = colour[:, None]
    return out[None]


class MaskPredictorModel(BaseModel):
    @staticmethod
    def modify_commandline_options(parser, is_train: bool = True):
        parser.set_defaults(ngf=32)  # small enough to train on the CPU; pix2pix used 64
        parser.add_argument(
            "--unet_downs",
            type=int,
            default=3,
            help="mask predictor: U-Net levels (halvings); pix2pix used 8 for 256x256 images",
        )
        parser.add_argument(
            "--erode",
            type=int,
            default=2,
            help="mask predictor: depth in pixels of the instance borders left out of the core map that keeps "
            "touching instances apart (0: predict the union only, instances are its connected components)",
        )
        if is_train:
            parser.set_defaults(lr=0.003, niter=5, niter_decay=5)
            parser.add_argument("--lambda_core", type=float, default=1.0, help="mask predictor: core-map loss weight")
            parser.add_argument("--lambda_dice", type=float, default=1.0, help="mask predictor: Dice loss weight")
        return parser

    def __init__(self, opt, device: torch.device):
        super().__init__(opt, device)
        self.loss_names = ["S_A", "S_B"]
        self.visual_names = [
            "real_A_img",
            "real_A_seg",
            "pred_A_seg",
            "real_A_inst",
            "pred_A_inst",
            "real_B_img",
            "real_B_seg",
            "pred_B_seg",
            "real_B_inst",
            "pred_B_inst",
        ]
        self.model_names = ["S_A", "S_B"]
        self.overlay_visuals: dict[str, str] = {}  # its own instance maps are visuals (real_A_inst, pred_A_inst)
        self.use_core = opt.erode > 0
        out = 2 if self.use_core else 1
        for d, nc in (("A", opt.input_nc), ("B", opt.output_nc)):
            net = define_unet(nc, out, opt.ngf, opt.unet_downs, opt.norm, opt.init_type, opt.init_gain).to(device)
            if self.isTrain:
                net.train_size.copy_(torch.tensor([opt.fineSizeH, opt.fineSizeW]))
            setattr(self, f"netS_{d}", net)
        self.min_area = getattr(opt, "min_area", DEFAULT_MIN_AREA)
        for name in self.loss_names:
            setattr(self, f"loss_{name}", 0.0)
        if self.isTrain:
            params = list(self.netS_A.parameters()) + list(self.netS_B.parameters())
            self.optimizers = [torch.optim.Adam(params, lr=opt.lr, betas=(opt.beta1, 0.999))]
        self.scores: dict[str, dict[str, float]] = {
            d: {"inter": 0, "union": 0, "images": 0, "ious": 0.0, "instances": 0, "found": 0, "best": 0.0} for d in "AB"
        }

    # ------------------------------------------------------------------ input and targets

    def set_input(self, data: dict) -> None:
        """``data``: ``A``, ``B`` ``[B, 3, H, W]`` in [-1, 1]; ``A_segs``, ``B_segs`` ``[B, N, H, W]`` (+1 on the
        instance, empty slots -1); paths."""
        for d in "AB":
            img = data[d].to(self.device)
            segs = (data[f"{d}_segs"].to(self.device) > 0).float()  # [B, N, H, W] in {0, 1}
            if segs.shape[0] != img.shape[0] or segs.shape[-2:] != img.shape[-2:]:
                raise ValueError(f"{d}_segs {tuple(segs.shape)} does not match image {tuple(img.shape)}")
            setattr(self, f"real_{d}_img", img)
            setattr(self, f"inst_{d}", segs)
            union = segs.amax(1, keepdim=True) if segs.shape[1] else torch.zeros_like(img[:, :1])
            core = erode(segs, self.opt.erode).amax(1, keepdim=True) if segs.shape[1] else torch.zeros_like(union)
            setattr(self, f"target_{d}", torch.cat([union, core], 1) if self.use_core else union)
            setattr(self, f"real_{d}_seg", union * 2 - 1)
        self.image_paths = data["A_paths"]

    # ------------------------------------------------------------------ training

    def forward(self) -> None:
        self.logits_A = self.netS_A(self.real_A_img)
        self.logits_B = self.netS_B(self.real_B_img)
        self.pred_A_seg = torch.sigmoid(self.logits_A[:, :1]).detach() * 2 - 1
        self.pred_B_seg = torch.sigmoid(self.logits_B[:, :1]).detach() * 2 - 1

    def compute_losses(self) -> dict[str, torch.Tensor]:
        """Per domain: binary cross-entropy plus ``--lambda_dice`` times the Dice loss (1 - soft Dice coefficient,
        per image: it weighs small instances as much as the background), of the union map and, weighted by
        ``--lambda_core``, of the core map."""
        weight = torch.tensor([1.0, self.opt.lambda_core], device=self.device)[: self.logits_A.shape[1]]
        losses = {}
        for d in "AB":
            bce = F.binary_cross_entropy_with_logits(
                getattr(self, f"logits_{d}"), getattr(self, f"target_{d}"), reduction="none"
            ).mean((0, 2, 3))
            prob, target = torch.sigmoid(getattr(self, f"logits_{d}")), getattr(self, f"target_{d}")
            dice = 1 - (2 * (prob * target).sum((2, 3)) + 1) / (prob.sum((2, 3)) + target.sum((2, 3)) + 1)
            losses[f"S_{d}"] = (bce * weight).sum() + self.opt.lambda_dice * (dice.mean(0) * weight).sum()
        return losses

    def optimize_parameters(self) -> None:
        self.forward()
        losses = self.compute_losses()
        self.step_optimizer(self.optimizers[0], losses)
        for name, value in losses.items():
            setattr(self, f"loss_{name}", value.detach())

    def get_current_visuals(self):
        if self.isTrain and hasattr(self, "logits_A"):  # instance maps only when shown: not at every step
            for d in "AB":
                shape = getattr(self, f"real_{d}_img").shape[-2:]
                setattr(self, f"real_{d}_inst", label_image(self._instances(getattr(self, f"inst_{d}")[0]), shape))
                setattr(
                    self, f"pred_{d}_inst", label_image(self.split(getattr(self, f"logits_{d}")[:1].detach())[0], shape)
                )
        return super().get_current_visuals()

    # ------------------------------------------------------------------ prediction

    def predict_logits(self, image: torch.Tensor, domain: str) -> torch.Tensor:
        """``image: [B, 3, H, W]`` in [-1, 1] → logits ``[B, 1 or 2, H, W]`` (union, core).

        An image of another size than the training size (``train_size``) is resized to it (bilinear) and the
        logits resized back, so the network sees instances at the scale it learnt.
        """
        net = getattr(self, f"netS_{domain}")
        h, w = image.shape[-2:]
        th, tw = (int(v) for v in net.train_size.tolist())
        resize = th > 0 and (th, tw) != (h, w)
        x = image.to(self.device)
        if resize:
            x = F.interpolate(x, size=(th, tw), mode="bilinear", align_corners=False, antialias=True)
        logits = net(x)
        if resize:
            logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
        return logits

    def split(self, logits: torch.Tensor) -> list[list[torch.Tensor]]:
        """Logits ``[B, 1 or 2, H, W]`` → per sample, its instance masks (bool ``[H, W]``, largest first)."""
        out = []
        for sample in logits:
            union = sample[0] > 0
            core = sample[1] > 0 if sample.shape[0] > 1 else None
            out.append(split_instances(union, core, self.min_area))
        return out

    @torch.no_grad()
    def predict(self, image: torch.Tensor, domain: str) -> list[list[torch.Tensor]]:
        """``image: [B, 3, H, W]`` in [-1, 1] of ``domain`` ('A' or 'B') → per sample its instance masks."""
        return self.split(self.predict_logits(image, domain))

    def _instances(self, segs: torch.Tensor) -> list[torch.Tensor]:
        return [m.bool() for m in segs if m.any()]

    @torch.no_grad()
    def test(self) -> None:
        """Predict both domains' masks and score them against the real ones (accumulated for ``test_summary``)."""
        for d in "AB":
            img = getattr(self, f"real_{d}_img")
            logits = self.predict_logits(img, d)
            setattr(self, f"pred_{d}_seg", torch.sigmoid(logits[:, :1]) * 2 - 1)
            instances = self.split(logits)
            real = getattr(self, f"inst_{d}")
            for b, pred in enumerate(instances):
                self._score(d, pred, self._instances(real[b]), logits[b, 0] > 0)
            setattr(self, f"pred_{d}_inst", label_image(instances[0], img.shape[-2:]))
            setattr(self, f"real_{d}_inst", label_image(self._instances(real[0]), img.shape[-2:]))

    def _score(self, d: str, pred: list[torch.Tensor], real: list[torch.Tensor], union: torch.Tensor) -> None:
        s = self.scores[d]
        real_union = torch.stack(real).any(0) if real else torch.zeros_like(union)
        inter, uni = int((union & real_union).sum()), int((union | real_union).sum())
        s["inter"] += inter
        s["union"] += uni
        s["images"] += 1
        s["ious"] += inter / uni if uni else 1.0  # both empty: a perfect prediction
        if real:
            iou = iou_matrix([m.cpu().numpy() for m in real], [m.cpu().numpy() for m in pred])
            best = iou.max(1) if iou.shape[1] else np.zeros(len(real))
            s["instances"] += len(real)
            s["found"] += int((best >= 0.5).sum())
            s["best"] += float(best.sum())

    def get_instance_masks(self) -> dict[str, torch.Tensor]:
        """``real_A``, ``real_B`` (the dataset's) and ``pred_A``, ``pred_B`` (predicted): ``[B, N, H, W]`` in
        [-1, 1], empty slot = -1 (first sample's predicted instances, at least one slot)."""
        out = {}
        for d in "AB":
            out[f"real_{d}"] = getattr(self, f"inst_{d}") * 2 - 1
            pred = self.predict(getattr(self, f"real_{d}_img")[:1], d)[0]
            h, w = getattr(self, f"real_{d}_img").shape[-2:]
            out[f"pred_{d}"] = (torch.stack(pred).float() * 2 - 1)[None] if pred else -torch.ones(1, 1, h, w)
        return out

    def metrics(self) -> dict[str, dict[str, float | int | None]]:
        """Per domain: ``iou`` (the union masks' IoU pooled over the images), ``mean_image_iou``,
        ``instance_iou`` (each real instance's best-matching prediction, averaged), ``instances_found`` (share
        of real instances matched at IoU ≥ 0.5), ``images``."""
        out = {}
        for d, s in self.scores.items():
            n = s["instances"]
            out[d] = {
                "iou": s["inter"] / s["union"] if s["union"] else None,
                "mean_image_iou": s["ious"] / s["images"] if s["images"] else None,
                "instance_iou": s["best"] / n if n else None,
                "instances_found": s["found"] / n if n else None,
                "instances": n,
                "images": s["images"],
            }
        return out

    def test_summary(self, web_dir: str | Path | None = None) -> str:
        """One line per domain with the IoU; also written to ``<web_dir>/mask_iou.json``."""
        metrics = self.metrics()

        def fmt(v: float | None) -> str:
            return "n/a" if v is None else f"{v:.3f}"

        lines = []
        for d, m in metrics.items():
            lines.append(
                f"mask IoU {d}: {fmt(m['iou'])} (union, pooled over {m['images']} images; mean per image "
                f"{fmt(m['mean_image_iou'])}); instances: best-match IoU {fmt(m['instance_iou'])}, "
                f"{fmt(m['instances_found'])} of {m['instances']} found at IoU >= 0.5"
            )
        if web_dir is not None:
            atomic_write_text(Path(web_dir) / "mask_iou.json", json.dumps(metrics, indent=2) + "\n")
        return "\n".join(lines)
