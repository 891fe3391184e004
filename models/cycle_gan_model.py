"""CycleGAN (Zhu et al. 2017), the InstaGAN paper's baseline, in the same codebase: ``--model cycle_gan``.

Names in code (paper): G_A (G: X→Y), G_B (F: Y→X), D_A (D_Y, judges domain B), D_B (D_X, judges domain A).

It reads the same data as InstaGAN (``--dataset_mode unaligned_seg``) and ignores the instance masks in training.
They are kept, for the evaluation only: ``get_instance_masks()`` hands test.py the dataset's masks of the inputs,
so evaluate.py measures the background of a CycleGAN translation on the same pixels as InstaGAN's.

Losses, as in the 2018 repository's ``cycle_gan`` model: LSGAN (``--no_lsgan``: BCE), cycle L1 weighted
``lambda_A``/``lambda_B`` (10), identity L1 weighted ``lambda_B * lambda_identity`` for G_A on B images and
``lambda_A * lambda_identity`` for G_B on A images (``lambda_identity`` 1.0, the 2018 repository's default; CycleGAN's
own later default is 0.5). D's loss is 0.5 · (real + pooled fake), one G update then one D update per batch.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

from util.distributed import unwrap

from .base_model import BaseModel
from .cycle_gan_networks import D_SPECTRAL_NORMS, define_patch_D, define_resnet_G
from .image_pool import ImagePool
from .losses import GANLoss, l1_loss
from .masks import nonempty, select_masks


class CycleGANModel(BaseModel):
    # No instance masks are translated, so the results page draws none (see util/visualizer.py).
    overlay_visuals: dict[str, str] = {}

    @staticmethod
    def modify_commandline_options(parser, is_train: bool = True):
        parser.set_defaults(no_dropout=True, netG="resnet_9blocks", netD="basic")  # CycleGAN's defaults
        parser.add_argument(
            "--spectral_norm",
            type=str,
            default="none",
            choices=D_SPECTRAL_NORMS,
            help="spectral norm on D's convolutions: none, as CycleGAN; 'original' as the 2018 InstaGAN "
            "repository's PatchGAN (the 2018 code's power-iteration order), or 'torch' (torch's order)",
        )
        if is_train:
            parser.add_argument("--lambda_A", type=float, default=10.0, help="weight of the cycle loss A→B→A")
            parser.add_argument("--lambda_B", type=float, default=10.0, help="weight of the cycle loss B→A→B")
            parser.add_argument(
                "--lambda_identity",
                "--lambda_idt",
                dest="lambda_identity",
                type=float,
                default=1.0,
                help="identity loss weight, relative to lambda_A/lambda_B (0 disables it); 1.0 is the 2018 "
                "InstaGAN repository's default, 0.5 CycleGAN's",
            )
        return parser

    def __init__(self, opt, device: torch.device):
        super().__init__(opt, device)
        self.loss_names = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]
        # idt_B = G_B(real_A) belongs with domain A's row, idt_A = G_A(real_B) with B's.
        self.visual_names = ["real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A"]
        self.model_names = ["G_A", "G_B", "D_A", "D_B"] if self.isTrain else ["G_A", "G_B"]
        for name in self.loss_names:
            setattr(self, f"loss_{name}", 0.0)

        g_args = (opt.ngf, opt.netG, opt.norm, not opt.no_dropout, opt.init_type, opt.init_gain)
        n_blocks = getattr(opt, "n_blocks", 9)  # option files written before --n_blocks existed
        self.netG_A = define_resnet_G(opt.input_nc, opt.output_nc, *g_args, n_blocks=n_blocks).to(device)
        self.netG_B = define_resnet_G(opt.output_nc, opt.input_nc, *g_args, n_blocks=n_blocks).to(device)
        if not self.isTrain:
            return

        d_args = (opt.ndf, opt.netD, opt.n_layers_D, opt.norm, opt.no_lsgan, opt.init_type, opt.init_gain)
        self.netD_A = define_patch_D(opt.output_nc, *d_args, spectral_norm=opt.spectral_norm).to(device)
        self.netD_B = define_patch_D(opt.input_nc, *d_args, spectral_norm=opt.spectral_norm).to(device)
        self.fake_A_pool = ImagePool(opt.pool_size)
        self.fake_B_pool = ImagePool(opt.pool_size)
        self.criterionGAN = GANLoss("vanilla" if opt.no_lsgan else "lsgan")
        g_params = list(self.netG_A.parameters()) + list(self.netG_B.parameters())
        d_params = list(self.netD_A.parameters()) + list(self.netD_B.parameters())
        # --lr_D (default 0.0001, the paper's for InstaGAN) keeps the baseline's optimizers equal to InstaGAN's;
        # CycleGAN and the 2018 code used --lr for D as well: pass --lr_D 0.0002 for that.
        self.optimizer_G = torch.optim.Adam(g_params, lr=opt.lr, betas=(opt.beta1, 0.999))
        self.optimizer_D = torch.optim.Adam(d_params, lr=opt.lr_D, betas=(opt.beta1, 0.999))
        self.optimizers = [self.optimizer_G, self.optimizer_D]

    # ------------------------------------------------------------------ input

    def set_input(self, data: dict) -> None:
        """``data``: ``A``, ``B`` ``[B, 3, H, W]`` in [-1, 1], paths; ``A_segs``, ``B_segs`` ``[B, N, H, W]`` (kept
        for the evaluation, unused by the networks)."""
        src, dst = ("A", "B") if self.opt.direction == "AtoB" else ("B", "A")
        nb = self.device.type == "cuda"
        self.real_A = data[src].to(self.device, non_blocking=nb)
        self.real_B = data[dst].to(self.device, non_blocking=nb)
        self.segs_A, self.segs_B = data.get(f"{src}_segs"), data.get(f"{dst}_segs")
        self.image_paths = data[f"{src}_paths"]

    def get_current_visuals(self) -> OrderedDict[str, torch.Tensor]:
        """The visuals labelled ``real_A_img``, ``fake_B_img``, ...: the file names of InstaGAN's results pages, so
        that evaluate.py and the results page read both models' results folders alike."""
        return OrderedDict((f"{name}_img", getattr(self, name)) for name in self.visual_names if hasattr(self, name))

    def get_instance_masks(self) -> dict[str, torch.Tensor]:
        """The dataset's masks of the inputs, ``{"real_A", "real_B"}: [B, K, H, W]`` in [-1, 1], largest first, K
        the most instances of any sample (empty slots -1); ``{}`` when the data has no masks. CycleGAN translates
        no masks, so there is no ``fake_B``/``fake_A`` entry."""
        if self.segs_A is None or self.segs_B is None:
            return {}
        out = {}
        for key, segs in (("real_A", self.segs_A), ("real_B", self.segs_B)):
            count = int(nonempty(segs).sum(1).max()) if segs.shape[1] else 0
            out[key] = select_masks(segs, count, "decreasing").to(self.device)
        return out

    # ---------------------------------------------------------- translation

    def forward(self) -> None:
        self.fake_B = self.netG_A(self.real_A)  # G(x)
        self.rec_A = self.netG_B(self.fake_B)  # F(G(x))
        self.fake_A = self.netG_B(self.real_B)  # F(y)
        self.rec_B = self.netG_A(self.fake_A)  # G(F(y))

    @torch.no_grad()
    def test(self) -> None:
        """Both directions, their cycles and the identity mappings (for the results page), no gradients."""
        self.forward()
        self.idt_A = self.netG_A(self.real_B)
        self.idt_B = self.netG_B(self.real_A)

    # ---------------------------------------------------------------- training

    def compute_G_loss(self) -> dict[str, torch.Tensor]:
        """Generator losses after ``forward()``. D is called unwrapped: its parameters are frozen here, and DDP must
        not expect their gradients."""
        opt, losses = self.opt, {}
        if opt.lambda_identity > 0:
            self.idt_A = self.netG_A(self.real_B)  # G_A should leave a domain-B image as it is
            self.idt_B = self.netG_B(self.real_A)
            losses["idt_A"] = l1_loss(self.idt_A, self.real_B) * opt.lambda_B * opt.lambda_identity
            losses["idt_B"] = l1_loss(self.idt_B, self.real_A) * opt.lambda_A * opt.lambda_identity
        losses["G_A"] = self.criterionGAN(unwrap(self.netD_A)(self.fake_B), True)
        losses["G_B"] = self.criterionGAN(unwrap(self.netD_B)(self.fake_A), True)
        losses["cycle_A"] = l1_loss(self.rec_A, self.real_A) * opt.lambda_A
        losses["cycle_B"] = l1_loss(self.rec_B, self.real_B) * opt.lambda_B
        return losses

    def _D_loss(self, netD, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return (self.criterionGAN(netD(real), True) + self.criterionGAN(netD(fake.detach()), False)) * 0.5

    def compute_D_loss(self) -> dict[str, torch.Tensor]:
        return {
            "D_A": self._D_loss(self.netD_A, self.real_B, self.fake_B_pool.query(self.fake_B)),
            "D_B": self._D_loss(self.netD_B, self.real_A, self.fake_A_pool.query(self.fake_A)),
        }

    def optimize_parameters(self) -> None:
        """One batch: forward, update G_A and G_B, then D_A and D_B."""
        self.forward()
        D_nets = [self.netD_A, self.netD_B]
        self.set_requires_grad(D_nets, False)
        loss_G = self.compute_G_loss()
        self.step_optimizer(self.optimizer_G, loss_G)

        self.set_requires_grad(D_nets, True)
        loss_D = self.compute_D_loss()
        self.step_optimizer(self.optimizer_D, loss_D)
        for name in self.loss_names:
            value = {**loss_G, **loss_D}.get(name)
            setattr(self, f"loss_{name}", value.detach() if value is not None else 0.0)
