"""InstaGAN (Mo, Cho, Shin, ICLR 2019): CycleGAN on an image together with the set of its instance masks.

Names in code (paper): G_A (G: X→Y), G_B (F: Y→X), D_A (D_Y, judges domain B), D_B (D_X, judges domain A).

Sequential mini-batch translation (the paper's §2.3; docs/DESIGN.md §3): the ``ins_max`` masks of each image are
split into ``ins_max / ins_per`` groups. At step m the current image x_m and group a_m are translated to (y'_m, b'_m);
x_{m+1} = y'_m, detached, so memory does not grow with the number of instances. G and D are updated at every
step. Content losses (cycle, identity, context) act on the step's own (x_m, a_m) → (y'_m, b'_m); the domain loss
judges y'_m with every mask translated so far (earlier ones detached, later slots empty). The state of each
direction through the loop is one ``Direction``: ``model.A`` (A→B) and ``model.B`` (B→A).

Empty groups. A sample whose group m ≥ 2 holds no instance sits the step out: its image is carried over
unchanged and its losses are weighted 0. The first step always runs, so an image with no instance at all is
translated as a set with no members. A step runs a direction (A→B or B→A) when any sample of the *global*
batch has an instance in that group; with several processes that decision is all-reduced, so every rank runs
the same passes. With one process and batch 1 this is exactly the 2018 code's rule.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.nn.utils import parametrize

from util.distributed import any_across_ranks, unwrap

from .base_model import BaseModel
from .discriminators import D_INITS, define_D
from .generators import define_G
from .image_pool import ImagePool
from .layers import SPECTRAL_NORMS
from .losses import GANLoss, context_loss, l1_loss
from .masks import SET_ORDERS, merge_masks, nonempty, select_masks, split

AMP_MODES = ("none", "bf16", "fp16")
AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _cpu_has_native_bf16() -> bool:
    try:  # a private query of oneDNN; assume native support where this torch build lacks it
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return True


@dataclass(eq=False)
class Direction:
    """One direction of the translation, A→B or B→A, through the sequential loop of one batch.

    Written for A→B: the source image x with its selected masks a is translated into the target domain, and
    ``target`` is a real image of that domain with all its masks (what D calls real). For B→A read B for A.
    Shapes: images ``[B, C, H, W]``, masks ``[B, N, H, W]`` in [-1, 1] with empty slots = -1.
    """

    name: str  # "A": A→B with G_A, cycled back by G_B, judged by D_A; "B": B→A
    real_img: torch.Tensor  # x: [B, C, H, W]
    segs: torch.Tensor  # a: [B, ins_max, H, W], the selected masks
    target: torch.Tensor  # (y, b): [B, C + ins_max, H, W]
    groups: torch.Tensor  # [B, ins_iter] bool, on the CPU: group m of sample b holds an instance (group 1 always)
    runs: torch.Tensor  # [ins_iter] bool, on the CPU: some sample of the global batch has an instance in group m
    ins_per: int
    # The loop's state before step m: x_m, and the translated and cycled masks of steps 1 … m-1 (detached).
    x: torch.Tensor | None = None
    fake_segs: list[torch.Tensor] = field(default_factory=list)  # b'_1 … b'_{m-1}: [B, ins_per, H, W] each
    rec_segs: list[torch.Tensor] = field(default_factory=list)  # masks of G_back(y'_k, b'_k), k < m
    rec_img: torch.Tensor | None = None  # image of G_back(G(x_1, a_1)), the visual rec_*_img
    # Step m. ``ran`` is False when no sample anywhere has an instance in group m: the step's tensors are then None.
    ran: bool = False
    group: torch.Tensor | None = None  # a_m: [B, ins_per, H, W]
    real: torch.Tensor | None = None  # (x_m, a_m): [B, C + ins_per, H, W]
    fake: torch.Tensor | None = None  # (y'_m, b'_m) = G(x_m, a_m)
    rec: torch.Tensor | None = None  # G_back(y'_m, b'_m)
    fake_mul: torch.Tensor | None = None  # (y'_m, b'_1 … b'_m, empty slots): [B, C + ins_max, H, W], D's input
    idt: torch.Tensor | None = None  # G_back(x_m, a_m) for the identity loss, when computed with the other passes
    active: torch.Tensor | None = None  # [B] bool, on the CPU: sample b has an instance in a_m
    weight: torch.Tensor | None = None  # [B] float on the device: ``active`` as each sample's loss weight

    @property
    def fake_img(self) -> torch.Tensor:
        return split(self.fake, self.real_img.shape[1])[0]

    @property
    def fake_seg(self) -> torch.Tensor:
        return split(self.fake, self.real_img.shape[1])[1]

    def start(self) -> None:
        """Before step 1: x_1 = x, nothing translated yet."""
        self.x, self.fake_segs, self.rec_segs, self.rec_img = self.real_img, [], [], None

    def translate(self, m: int, G: nn.Module, G_back: nn.Module) -> None:
        """Step m: (x_m, a_m) → (y'_m, b'_m) = G(x_m, a_m) and the cycle G_back(y'_m, b'_m), with gradients."""
        if self.prepare(m):
            fake = G(self.real)
            self.translated(m, fake, G_back(fake))

    def prepare(self, m: int) -> bool:
        """Step m's input (x_m, a_m); returns whether the step runs."""
        self.group = self.segs[:, m * self.ins_per : (m + 1) * self.ins_per]
        self.ran = bool(self.runs[m])
        self.real = self.fake = self.rec = self.fake_mul = self.active = self.weight = self.idt = None
        if self.ran:
            self.real = torch.cat([self.x, self.group], dim=1)
        return self.ran

    def translated(self, m: int, fake: torch.Tensor, rec: torch.Tensor) -> None:
        """Step m's outputs: ``fake`` = G(x_m, a_m), ``rec`` = G_back(fake)."""
        self.fake, self.rec = fake, rec
        b, n, h, w = self.segs.shape
        later = self.segs.new_full((b, n - (m + 1) * self.ins_per, h, w), -1.0)  # slots of the steps to come
        self.fake_mul = torch.cat([self.fake_img, *self.fake_segs, self.fake_seg, later], dim=1)
        self.active = self.groups[:, m]  # the CPU copy: reading it costs no device sync
        self.weight = self.active.to(self.fake.device, torch.float32)

    def advance(self) -> None:
        """Carry step m's results to step m+1, detached (the graph cut), and keep what the visuals need."""
        if not self.ran:  # nobody in the batch has instances in this group
            empty = torch.full_like(self.group, -1.0)
            self.fake_segs.append(empty)
            self.rec_segs.append(empty)
            return
        active = self.weight.bool().view(-1, 1, 1, 1)
        self.x = torch.where(active, self.fake_img, self.x).detach()  # inactive samples keep their image
        self.fake_segs.append(self.fake_seg.detach())  # empty groups pass through G unchanged
        rec_img, rec_seg = split(self.rec, self.real_img.shape[1])
        self.rec_segs.append(rec_seg.detach())
        if self.rec_img is None:
            self.rec_img = rec_img.detach()

    def visuals(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """After the last step: the translated image and merged masks, the cycled image (step 1) and merged masks."""
        return self.x, merge_masks(torch.cat(self.fake_segs, 1)), self.rec_img, merge_masks(torch.cat(self.rec_segs, 1))


class InstaGANModel(BaseModel):
    @staticmethod
    def modify_commandline_options(parser, is_train: bool = True):
        parser.set_defaults(no_dropout=True)  # CycleGAN's default generator has no dropout
        parser.add_argument(
            "--set_order",
            type=str,
            default="decreasing",
            choices=SET_ORDERS,
            help="order of the instances: by decreasing area, or random among the non-empty ones",
        )
        parser.add_argument(
            "--ins_max", type=int, default=4, help="instances used per image (at test, up to --max_instances, e.g. 20)"
        )
        parser.add_argument(
            "--ins_per",
            type=int,
            default=2,
            help="instances translated per sequential step; --ins_max must be a multiple of it",
        )
        parser.add_argument(
            "--init_D",
            type=str,
            default="pytorch",
            choices=D_INITS,
            help="'pytorch': PyTorch's default init for D, which the 2018 code effectively used; "
            "'same': --init_type/--init_gain as for G",
        )
        parser.add_argument(
            "--spectral_norm",
            type=str,
            default="original",
            choices=SPECTRAL_NORMS,
            help="power-iteration order of D's spectral norm: the 2018 code's (v then u) or torch's",
        )
        # Speed (docs/PERFORMANCE.md). All off by default: each changes the numbers or only pays off on a GPU.
        parser.add_argument(
            "--amp",
            type=str,
            default="none",
            choices=AMP_MODES,
            help="mixed precision: bf16 autocast (Ampere+ GPUs, recent CPUs), or fp16 autocast with "
            "gradient scaling (CUDA only); 'none' is float32",
        )
        parser.add_argument(
            "--channels_last",
            action="store_true",
            help="NHWC memory format for the networks (faster convolutions on tensor-core GPUs)",
        )
        parser.add_argument(
            "--compile",
            action="store_true",
            help="torch.compile the convolutional sub-networks of G and D (D's power steps stay eager); the first "
            "iteration compiles for minutes, and on the CPU it was not faster (docs/PERFORMANCE.md)",
        )
        if is_train:
            parser.add_argument("--lambda_A", type=float, default=10.0, help="weight of the cycle loss A→B→A")
            parser.add_argument("--lambda_B", type=float, default=10.0, help="weight of the cycle loss B→A→B")
            parser.add_argument(
                "--lambda_idt",
                type=float,
                default=1.0,
                help="identity loss weight, relative to lambda_A/lambda_B (0 disables it)",
            )
            parser.add_argument(
                "--lambda_ctx",
                type=float,
                default=1.0,
                help="context-preserving loss weight, relative to lambda_A/lambda_B",
            )
        return parser

    def __init__(self, opt, device: torch.device):
        super().__init__(opt, device)
        self.ins_iter = opt.ins_max // opt.ins_per  # number of sequential steps (options check the multiple)
        self.loss_names = ["D_A", "G_A", "cyc_A", "idt_A", "ctx_A", "D_B", "G_B", "cyc_B", "idt_B", "ctx_B"]
        visuals_A = ["real_A_img", "fake_B_img", "rec_A_img", "real_A_seg", "fake_B_seg", "rec_A_seg"]
        visuals_B = ["real_B_img", "fake_A_img", "rec_B_img", "real_B_seg", "fake_A_seg", "rec_B_seg"]
        self.visual_names = visuals_A + visuals_B
        # Image visual -> key of get_instance_masks() drawn over it on the results page.
        self.overlay_visuals = {
            "real_A_img": "real_A",
            "fake_B_img": "fake_B",
            "real_B_img": "real_B",
            "fake_A_img": "fake_A",
        }
        self.model_names = ["G_A", "G_B", "D_A", "D_B"] if self.isTrain else ["G_A", "G_B"]

        g_args = (opt.ngf, opt.netG, opt.norm, not opt.no_dropout, opt.init_type, opt.init_gain)
        n_blocks = getattr(opt, "n_blocks", 9)  # option files written before --n_blocks existed
        self.netG_A = define_G(opt.input_nc, opt.output_nc, *g_args, n_blocks=n_blocks).to(device)
        self.netG_B = define_G(opt.output_nc, opt.input_nc, *g_args, n_blocks=n_blocks).to(device)
        # Several inputs of one generator in one call (forward): per-sample networks only (batch norm would mix the
        # samples' statistics, dropout would draw its masks in another order).
        self.batch_generators = opt.norm != "batch" and opt.no_dropout
        for name in self.loss_names:
            setattr(self, f"loss_{name}", 0.0)
        self.amp_dtype = AMP_DTYPES[getattr(opt, "amp", "none")]
        if self.amp_dtype == torch.float16 and device.type != "cuda":
            raise ValueError(
                "--amp fp16 needs a CUDA GPU (float16 gradients need its GradScaler); use --amp bf16 on the CPU"
            )
        if self.amp_dtype == torch.bfloat16 and device.type == "cpu" and not _cpu_has_native_bf16():
            warnings.warn(
                "--amp bf16: this CPU has no native bfloat16 (AVX512-BF16/AMX), so convolutions fall back to a slow "
                "path (25x slower than float32 for the default generator here); drop --amp",
                stacklevel=2,
            )
        if not self.isTrain:
            self._speed_up([self.netG_A, self.netG_B])
            return

        d_args = (opt.ndf, opt.netD, opt.n_layers_D, opt.norm, opt.no_lsgan, opt.init_type, opt.init_gain)
        self.netD_A = define_D(opt.output_nc, *d_args, init_D=opt.init_D, spectral_norm=opt.spectral_norm).to(device)
        self.netD_B = define_D(opt.input_nc, *d_args, init_D=opt.init_D, spectral_norm=opt.spectral_norm).to(device)
        self.fake_A_pool = ImagePool(opt.pool_size)
        self.fake_B_pool = ImagePool(opt.pool_size)
        self.criterionGAN = GANLoss("vanilla" if opt.no_lsgan else "lsgan")
        g_params = list(self.netG_A.parameters()) + list(self.netG_B.parameters())
        d_params = list(self.netD_A.parameters()) + list(self.netD_B.parameters())
        # fused: one kernel per step instead of a dozen passes per parameter; the same update to rounding.
        fused = device.type in ("cpu", "cuda")
        self.optimizer_G = torch.optim.Adam(g_params, lr=opt.lr, betas=(opt.beta1, 0.999), fused=fused)
        self.optimizer_D = torch.optim.Adam(d_params, lr=opt.lr_D, betas=(opt.beta1, 0.999), fused=fused)
        self.optimizers = [self.optimizer_G, self.optimizer_D]
        # Loss scaling for float16 (a no-op otherwise: scale() returns the loss, step() is optimizer.step()).
        fp16 = self.amp_dtype == torch.float16
        self.scaler_G = torch.amp.GradScaler(device.type, enabled=fp16)
        self.scaler_D = torch.amp.GradScaler(device.type, enabled=fp16)
        self._speed_up([self.netG_A, self.netG_B, self.netD_A, self.netD_B])

    def _speed_up(self, nets: list[torch.nn.Module]) -> None:
        """``--channels_last`` and ``--compile``, before any DDP wrapping. Only the convolutional sub-networks are
        compiled (in place, so state_dict names do not change): the set logic around them has data-dependent
        shapes (how many masks are non-empty) that would break the graph anyway."""
        for net in nets:
            if getattr(self.opt, "channels_last", False):
                net.to(memory_format=torch.channels_last)
            if getattr(self.opt, "compile", False):
                # The sub-networks share one compiled entry point, and every input shape (masks per batch) is
                # a variant: room for all of them. dynamic=False: inductor's CPU code for symbolic batch sizes
                # failed here (torch 2.14), and the few batch sizes recompile once each.
                torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
                if hasattr(net, "compile_layers"):
                    # D: its spectral norms' power steps update u, v in place, which compiled autograd rejects
                    # ("modified by an inplace operation"), so they run eagerly before the compiled layers.
                    net.compile_layers(dynamic=False)
                    continue
                for child in net.children():
                    if not any(parametrize.is_parametrized(m) for m in child.modules()):
                        child.compile(dynamic=False)

    def _autocast(self):
        """Mixed precision for the forward passes and losses (``--amp``); disabled, it changes nothing."""
        dtype = self.amp_dtype or torch.float32
        return torch.autocast(self.device.type, dtype=dtype, enabled=self.amp_dtype is not None)

    # ------------------------------------------------------------------ input

    def set_input(self, data: dict) -> None:
        """``data``: ``A``, ``B`` ``[B, 3, H, W]``; ``A_segs``, ``B_segs`` ``[B, N, H, W]`` (N ≥ 0); paths."""
        a_to_b = self.opt.direction == "AtoB"
        src, dst = ("A", "B") if a_to_b else ("B", "A")
        segs_A = select_masks(data[f"{src}_segs"], self.opt.ins_max, self.opt.set_order)
        segs_B = select_masks(data[f"{dst}_segs"], self.opt.ins_max, self.opt.set_order)
        # Which (sample, group) holds an instance, decided on the CPU copy: no device sync in the loop.
        groups_A, groups_B = self._group_activity(segs_A), self._group_activity(segs_B)
        # Whether each step runs each direction: all-reduced, so every rank makes the same decision.
        runs_A, runs_B = any_across_ranks(torch.stack([groups_A.any(0), groups_B.any(0)])).unbind(0)
        nb = self.device.type == "cuda"
        self.real_A_img = data[src].to(self.device, non_blocking=nb)
        self.real_B_img = data[dst].to(self.device, non_blocking=nb)
        segs_A, segs_B = segs_A.to(self.device, non_blocking=nb), segs_B.to(self.device, non_blocking=nb)
        self.real_A = torch.cat([self.real_A_img, segs_A], dim=1)
        self.real_B = torch.cat([self.real_B_img, segs_B], dim=1)
        self.real_A_seg = merge_masks(segs_A)
        self.real_B_seg = merge_masks(segs_B)
        self.A = Direction("A", self.real_A_img, segs_A, self.real_B, groups_A, runs_A, self.opt.ins_per)
        self.B = Direction("B", self.real_B_img, segs_B, self.real_A, groups_B, runs_B, self.opt.ins_per)
        self.image_paths = data[f"{src}_paths"]
        self.start()

    def _group_activity(self, segs: torch.Tensor) -> torch.Tensor:
        """``[B, ins_max, H, W] -> [B, ins_iter]`` bool: group m of sample b holds an instance; group 0 always runs."""
        active = nonempty(segs).view(segs.shape[0], self.ins_iter, self.opt.ins_per).any(-1)
        active[:, 0] = True
        return active

    # ---------------------------------------------------------- translation

    def forward(self, m: int = 0) -> None:
        """Step m of the sequential translation, both directions, with gradients (the 2018 code's ``forward(idx)``):
        A→B with G_A, cycled back by G_B; B→A with G_B, cycled back by G_A. ``set_input`` (or ``start``) begins the
        loop; ``advance`` ends each step."""
        with self._autocast():
            A, B = self.A, self.B
            if not (self.batch_generators and A.runs[m] and B.runs[m] and A.segs.shape == B.segs.shape):
                A.translate(m, self.netG_A, self.netG_B)
                B.translate(m, self.netG_B, self.netG_A)
                return
            # The six generator passes of a training step (four without identity) as three batched calls: the
            # generator works per sample, so each output is the one of its own call (docs/PERFORMANCE.md).
            A.prepare(m)
            B.prepare(m)
            idt = self.isTrain and torch.is_grad_enabled() and self.opt.lambda_idt > 0
            n = A.real.shape[0]
            out = self.netG_A(torch.cat([A.real, B.real]) if idt else A.real)  # y'_m of A→B; identity of B→A
            A_fake, B.idt = out[:n], (out[n:] if idt else None)
            out = self.netG_B(torch.cat([B.real, A.real, A_fake] if idt else [B.real, A_fake]))
            B_fake, A.idt, A_rec = out[:n], (out[n : 2 * n] if idt else None), out[-n:]
            A.translated(m, A_fake, A_rec)
            B.translated(m, B_fake, self.netG_A(B_fake))

    def start(self) -> None:
        """Begin the sequential loop of the current batch (x_1 = the real images)."""
        self.A.start()
        self.B.start()

    def advance(self) -> None:
        """End of a step: cut the graph and carry the translated images and masks to the next step."""
        self.A.advance()
        self.B.advance()

    def _finish(self) -> None:
        """After the last step: the visuals of the translated and cycled images and masks."""
        self.fake_B_img, self.fake_B_seg, self.rec_A_img, self.rec_A_seg = self.A.visuals()
        self.fake_A_img, self.fake_A_seg, self.rec_B_img, self.rec_B_seg = self.B.visuals()

    @torch.no_grad()
    def test(self) -> None:
        """The sequential loop without gradients: every step's ``forward``, then the visuals."""
        self.start()
        for m in range(self.ins_iter):
            self.forward(m)
            self.advance()
        self._finish()

    def get_instance_masks(self) -> dict[str, torch.Tensor]:
        """The instance masks of the last ``test()`` or ``optimize_parameters()``, each ``[B, ins_max, H, W]`` in
        [-1, 1], empty slot = -1: ``real_A``, ``real_B`` (the selected input masks) and ``fake_B``, ``fake_A`` (their
        translations: slot k of ``fake_B`` is the translation of slot k of ``real_A``, and likewise for B→A)."""
        return {
            "real_A": self.A.segs,
            "fake_B": torch.cat(self.A.fake_segs, 1),
            "real_B": self.B.segs,
            "fake_A": torch.cat(self.B.fake_segs, 1),
        }

    # ---------------------------------------------------------------- training

    def compute_G_loss(self, A: Direction, B: Direction) -> dict[str, torch.Tensor]:
        """Generator losses of the current step (the paper's §2.2, training loss): domain (LSGAN), cycle,
        identity and context losses of each direction that ran. D is called unwrapped: its parameters are frozen
        here and DDP must not expect their gradients."""
        opt, losses = self.opt, {}
        for d, D, G_back, lam, idt_name in (
            (A, self.netD_A, self.netG_B, opt.lambda_A, "idt_B"),
            (B, self.netD_B, self.netG_A, opt.lambda_B, "idt_A"),
        ):
            if not d.ran:
                continue
            w = d.weight
            losses[f"G_{d.name}"] = self.criterionGAN(unwrap(D)(d.fake_mul), True, w)
            losses[f"cyc_{d.name}"] = l1_loss(d.rec, d.real, w) * lam
            if opt.lambda_idt > 0:  # G_back should leave an input of its own output domain as it is
                idt = d.idt if d.idt is not None else G_back(d.real)
                losses[idt_name] = l1_loss(idt, d.real.detach(), w) * lam * opt.lambda_idt
            losses[f"ctx_{d.name}"] = context_loss(d.x, d.fake_img, d.group, d.fake_seg, w) * (lam * opt.lambda_ctx)
        return losses

    def compute_D_loss(self, A: Direction, B: Direction) -> dict[str, torch.Tensor]:
        """Discriminator losses of the current step: D_A judges real B images against A→B's translations (through
        the image pool), D_B likewise for B→A; each the mean of its real and fake terms."""
        losses = {}
        for d, D, pool in ((A, self.netD_A, self.fake_B_pool), (B, self.netD_B, self.fake_A_pool)):
            if not d.ran:
                continue
            fake = pool.query(d.fake_mul, keep=d.active)  # detached
            pred_real, pred_fake = D([d.target, fake])  # two successive calls, computed together
            loss_real = self.criterionGAN(pred_real, True, d.weight)
            loss_fake = self.criterionGAN(pred_fake, False, d.weight)
            losses[f"D_{d.name}"] = (loss_real + loss_fake) * 0.5
        return losses

    def optimize_parameters(self) -> None:
        """One batch (the paper's §2.3): at each sequential step, translate, update G_A and G_B, then D_A and D_B."""
        sums = {name: 0.0 for name in self.loss_names}
        counts = {name: 0 for name in self.loss_names}
        D_nets = [self.netD_A, self.netD_B]
        self.start()
        for m in range(self.ins_iter):
            self.forward(m)
            if self.A.ran or self.B.ran:  # else no sample anywhere has an instance in this group
                self.set_requires_grad(D_nets, False)
                with self._autocast():
                    loss_G = self.compute_G_loss(self.A, self.B)
                self.step_optimizer(self.optimizer_G, loss_G, self.scaler_G, m)
                self.set_requires_grad(D_nets, True)
                with self._autocast():
                    loss_D = self.compute_D_loss(self.A, self.B)
                self.step_optimizer(self.optimizer_D, loss_D, self.scaler_D, m)
                for name, value in {**loss_G, **loss_D}.items():
                    sums[name] = sums[name] + value.detach()
                    counts[name] += 1
            self.advance()
        # Reported losses: the mean over the steps that ran each term (the 2018 code printed the last step's).
        for name in self.loss_names:
            setattr(self, f"loss_{name}", sums[name] / counts[name] if counts[name] else 0.0)
        self._finish()
