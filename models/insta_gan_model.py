"""InstaGAN (Mo, Cho, Shin, ICLR 2019): CycleGAN on an image together with the set of its instance masks.

Names in code (paper): G_A (G: X→Y), G_B (F: Y→X), D_A (D_Y, judges domain B), D_B (D_X, judges domain A).

Sequential mini-batch translation (SPEC §3): the ``ins_max`` masks of each image are split into
``ins_max / ins_per`` groups. At step m the current image x_m and group a_m are translated to (y'_m, b'_m);
x_{m+1} = y'_m, detached, so memory does not grow with the number of instances. G and D are updated at every
step. Content losses (cycle, identity, context) act on the step's own (x_m, a_m) → (y'_m, b'_m); the domain loss
judges y'_m with every mask translated so far (earlier ones detached, later slots empty).

Empty groups. A sample whose group m ≥ 2 holds no instance sits the step out: its image is carried over
unchanged and its losses are weighted 0. The first step always runs, so an image with no instance at all is
translated as a set with no members. A step runs a direction (A→B or B→A) when any sample of the *global*
batch has an instance in that group; with several processes that decision is all-reduced, so every rank runs
the same passes. With one process and batch 1 this is exactly the 2018 code's rule.
"""

from __future__ import annotations

import warnings

import torch
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
            help="torch.compile the convolutional sub-networks (slow first iterations; GPU)",
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
        return parser  # fmt: skip

    def __init__(self, opt, device: torch.device):
        super().__init__(opt, device)
        if opt.ins_per < 1 or opt.ins_max < opt.ins_per or opt.ins_max % opt.ins_per:
            raise ValueError(
                f"--ins_max ({opt.ins_max}) must be a positive multiple of --ins_per ({opt.ins_per}), "
                f"e.g. --ins_max {max(opt.ins_per, opt.ins_max // max(opt.ins_per, 1) * max(opt.ins_per, 1))}"
            )
        self.ins_iter = opt.ins_max // opt.ins_per  # number of sequential steps
        self.loss_names = ["D_A", "G_A", "cyc_A", "idt_A", "ctx_A", "D_B", "G_B", "cyc_B", "idt_B", "ctx_B"]
        self.visual_names = [
            "real_A_img", "fake_B_img", "rec_A_img", "real_A_seg", "fake_B_seg", "rec_A_seg",
            "real_B_img", "fake_A_img", "rec_B_img", "real_B_seg", "fake_A_seg", "rec_B_seg",
        ]  # fmt: skip
        self.model_names = ["G_A", "G_B", "D_A", "D_B"] if self.isTrain else ["G_A", "G_B"]

        g_args = (opt.ngf, opt.netG, opt.norm, not opt.no_dropout, opt.init_type, opt.init_gain)
        n_blocks = getattr(opt, "n_blocks", 9)  # option files written before --n_blocks existed
        self.netG_A = define_G(opt.input_nc, opt.output_nc, *g_args, n_blocks=n_blocks).to(device)
        self.netG_B = define_G(opt.output_nc, opt.input_nc, *g_args, n_blocks=n_blocks).to(device)
        for name in self.loss_names:
            setattr(self, f"loss_{name}", 0.0)
        self.amp_dtype = AMP_DTYPES[getattr(opt, "amp", "none")]
        if self.amp_dtype == torch.float16 and device.type != "cuda":
            raise ValueError("--amp fp16 needs a CUDA GPU (float16 gradients need its GradScaler); "
                             "use --amp bf16 on the CPU")  # fmt: skip
        if self.amp_dtype == torch.bfloat16 and device.type == "cpu" and not _cpu_has_native_bf16():
            warnings.warn("--amp bf16: this CPU has no native bfloat16 (AVX512-BF16/AMX), so convolutions fall back "
                          "to a slow path (25x slower than float32 for the default generator here); drop --amp",
                          stacklevel=2)  # fmt: skip
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
        self.optimizer_G = torch.optim.Adam(g_params, lr=opt.lr, betas=(opt.beta1, 0.999))
        self.optimizer_D = torch.optim.Adam(d_params, lr=opt.lr_D, betas=(opt.beta1, 0.999))
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
                # D stays eager: its spectral norm updates u and v in place during the forward, which compiled
                # autograd rejected ("modified by an inplace operation") with torch 2.14.
                torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
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
        self.groups_A = self._group_activity(segs_A)
        self.groups_B = self._group_activity(segs_B)
        # Whether each step runs each direction: all-reduced, so every rank makes the same decision.
        self.run_A, self.run_B = any_across_ranks(torch.stack([self.groups_A.any(0), self.groups_B.any(0)])).unbind(0)
        nb = self.device.type == "cuda"
        self.real_A_img = data[src].to(self.device, non_blocking=nb)
        self.real_B_img = data[dst].to(self.device, non_blocking=nb)
        self.real_A_segs = segs_A.to(self.device, non_blocking=nb)
        self.real_B_segs = segs_B.to(self.device, non_blocking=nb)
        self.real_A = torch.cat([self.real_A_img, self.real_A_segs], dim=1)
        self.real_B = torch.cat([self.real_B_img, self.real_B_segs], dim=1)
        self.real_A_seg = merge_masks(self.real_A_segs)
        self.real_B_seg = merge_masks(self.real_B_segs)
        self.image_paths = data[f"{src}_paths"]

    def _group_activity(self, segs: torch.Tensor) -> torch.Tensor:
        """``[B, ins_max, H, W] -> [B, ins_iter]`` bool: group m of sample b holds an instance; group 0 always runs."""
        active = nonempty(segs).view(segs.shape[0], self.ins_iter, self.opt.ins_per).any(-1)
        active[:, 0] = True
        return active

    # ---------------------------------------------------------- translation

    def _translate(self, m: int, x: torch.Tensor, segs: torch.Tensor, G, G_back, history: list[torch.Tensor]):
        """One direction of step m: ``x`` the current image, ``segs`` all selected masks, ``history`` the
        translated masks of earlier steps (detached). Returns the step's tensors."""
        group = segs[:, m * self.opt.ins_per : (m + 1) * self.opt.ins_per]
        real = torch.cat([x, group], dim=1)
        fake = G(real)
        rec = G_back(fake)
        fake_img, fake_seg = split(fake, x.shape[1])
        later = segs.new_full((segs.shape[0], (self.ins_iter - m - 1) * self.opt.ins_per, *segs.shape[2:]), -1.0)
        fake_mul = torch.cat([fake_img, *history, fake_seg, later], dim=1)  # for D: all masks so far
        return {"real": real, "group": group, "fake": fake, "rec": rec, "fake_img": fake_img, "fake_seg": fake_seg,
                "fake_mul": fake_mul}  # fmt: skip

    def _step(self, m: int) -> tuple[dict | None, dict | None]:
        A = B = None
        if self.run_A[m]:
            A = self._translate(m, self.x_A, self.real_A_segs, self.netG_A, self.netG_B, self.fake_B_seg_list)
            A["active"] = self.groups_A[:, m]  # CPU copy: no device sync where it is read
            A["weight"] = A["active"].to(self.device, torch.float32)
        if self.run_B[m]:
            B = self._translate(m, self.x_B, self.real_B_segs, self.netG_B, self.netG_A, self.fake_A_seg_list)
            B["active"] = self.groups_B[:, m]
            B["weight"] = B["active"].to(self.device, torch.float32)
        return A, B

    def _advance(self, m: int, A: dict | None, B: dict | None) -> None:
        """Carry the step's results to the next step (graph cut) and keep what the visuals need."""
        for side, out, other in (("A", A, "B"), ("B", B, "A")):
            seg_list, rec_list = getattr(self, f"fake_{other}_seg_list"), getattr(self, f"rec_{side}_seg_list")
            x = getattr(self, f"x_{side}")
            if out is None:  # nobody in the batch has instances in this group
                empty = x.new_full((x.shape[0], self.opt.ins_per, *x.shape[2:]), -1.0)
                seg_list.append(empty)
                rec_list.append(empty)
                continue
            active = out["weight"].bool().view(-1, 1, 1, 1)
            setattr(self, f"x_{side}", torch.where(active, out["fake_img"], x).detach())
            seg_list.append(out["fake_seg"].detach())  # empty groups pass through G unchanged
            rec_list.append(split(out["rec"], x.shape[1])[1].detach())
            if m == 0:
                setattr(self, f"rec_{side}_img", split(out["rec"], x.shape[1])[0].detach())

    def _start(self) -> None:
        self.x_A, self.x_B = self.real_A_img, self.real_B_img
        self.fake_A_seg_list, self.fake_B_seg_list = [], []
        self.rec_A_seg_list, self.rec_B_seg_list = [], []

    def _finish_visuals(self) -> None:
        self.fake_B_img, self.fake_A_img = self.x_A, self.x_B
        self.fake_B_seg = merge_masks(torch.cat(self.fake_B_seg_list, dim=1))
        self.fake_A_seg = merge_masks(torch.cat(self.fake_A_seg_list, dim=1))
        self.rec_A_seg = merge_masks(torch.cat(self.rec_A_seg_list, dim=1))
        self.rec_B_seg = merge_masks(torch.cat(self.rec_B_seg_list, dim=1))

    @torch.no_grad()
    def test(self) -> None:
        """Translate both directions with the sequential loop, no gradients."""
        self._start()
        for m in range(self.ins_iter):
            with self._autocast():
                A, B = self._step(m)
            self._advance(m, A, B)
        self._finish_visuals()

    def forward(self) -> None:
        self.test()

    # ---------------------------------------------------------------- training

    def compute_G_loss(self, A: dict | None, B: dict | None) -> dict[str, torch.Tensor]:
        """Generator losses of one step. D is called unwrapped: its parameters are frozen here and DDP must not
        expect their gradients."""
        opt, losses = self.opt, {}
        if A is not None:
            w = A["weight"]
            losses["G_A"] = self.criterionGAN(unwrap(self.netD_A)(A["fake_mul"]), True, w)
            losses["cyc_A"] = l1_loss(A["rec"], A["real"], w) * opt.lambda_A
            if opt.lambda_idt > 0:  # G_B should leave a domain-A input as it is
                losses["idt_B"] = l1_loss(self.netG_B(A["real"]), A["real"].detach(), w) * opt.lambda_A * opt.lambda_idt
            losses["ctx_A"] = context_loss(self.x_A, A["fake_img"], A["group"], A["fake_seg"], w) * (
                opt.lambda_A * opt.lambda_ctx
            )
        if B is not None:
            w = B["weight"]
            losses["G_B"] = self.criterionGAN(unwrap(self.netD_B)(B["fake_mul"]), True, w)
            losses["cyc_B"] = l1_loss(B["rec"], B["real"], w) * opt.lambda_B
            if opt.lambda_idt > 0:
                losses["idt_A"] = l1_loss(self.netG_A(B["real"]), B["real"].detach(), w) * opt.lambda_B * opt.lambda_idt
            losses["ctx_B"] = context_loss(self.x_B, B["fake_img"], B["group"], B["fake_seg"], w) * (
                opt.lambda_B * opt.lambda_ctx
            )
        return losses

    def _D_loss(self, netD, real: torch.Tensor, fake: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        loss_real = self.criterionGAN(netD(real), True, weight)
        loss_fake = self.criterionGAN(netD(fake.detach()), False, weight)
        return (loss_real + loss_fake) * 0.5

    def compute_D_loss(self, A: dict | None, B: dict | None) -> dict[str, torch.Tensor]:
        losses = {}
        if A is not None:
            fake_B = self.fake_B_pool.query(A["fake_mul"], keep=A["active"])
            losses["D_A"] = self._D_loss(self.netD_A, self.real_B, fake_B, A["weight"])
        if B is not None:
            fake_A = self.fake_A_pool.query(B["fake_mul"], keep=B["active"])
            losses["D_B"] = self._D_loss(self.netD_B, self.real_A, fake_A, B["weight"])
        return losses

    def optimize_parameters(self) -> None:
        """One batch: for each sequential step, translate, update G_A and G_B, then D_A and D_B."""
        self._start()
        sums = {name: 0.0 for name in self.loss_names}
        counts = {name: 0 for name in self.loss_names}
        D_nets = [self.netD_A, self.netD_B]
        for m in range(self.ins_iter):
            with self._autocast():
                A, B = self._step(m)
            if A is None and B is None:  # no sample anywhere has an instance in this group
                self._advance(m, A, B)
                continue
            self.set_requires_grad(D_nets, False)
            self.optimizer_G.zero_grad(set_to_none=False)
            with self._autocast():
                loss_G = self.compute_G_loss(A, B)
            self.check_finite(loss_G, m)  # --skip_nonfinite: stop before a NaN reaches the weights
            self.scaler_G.scale(sum(loss_G.values())).backward()
            self.scaler_G.step(self.optimizer_G)
            self.scaler_G.update()

            self.set_requires_grad(D_nets, True)
            self.optimizer_D.zero_grad(set_to_none=False)
            with self._autocast():
                loss_D = self.compute_D_loss(A, B)
            self.check_finite(loss_D, m)
            self.scaler_D.scale(sum(loss_D.values())).backward()
            self.scaler_D.step(self.optimizer_D)
            self.scaler_D.update()

            for name, value in {**loss_G, **loss_D}.items():
                sums[name] = sums[name] + value.detach()
                counts[name] += 1
            self._advance(m, A, B)
        # Reported losses: the mean over the steps that ran each term (the 2018 code printed the last step's).
        for name in self.loss_names:
            setattr(self, f"loss_{name}", sums[name] / counts[name] if counts[name] else 0.0)
        self._finish_visuals()
