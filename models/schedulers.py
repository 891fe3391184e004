"""Learning-rate schedules, stepped once per epoch (CycleGAN's)."""

from __future__ import annotations

from torch.optim import Optimizer, lr_scheduler

LR_POLICIES = ("lambda", "step", "plateau", "cosine")


class LinearDecay:
    """Constant for ``niter`` epochs, then linearly to zero over ``niter_decay`` epochs.

    A callable object rather than a closure so that the scheduler's state_dict can be saved and restored.
    """

    def __init__(self, epoch_count: int, niter: int, niter_decay: int):
        self.epoch_count, self.niter, self.niter_decay = epoch_count, niter, niter_decay

    def __call__(self, step: int) -> float:
        return 1.0 - max(0, step + self.epoch_count - self.niter) / float(self.niter_decay + 1)


def get_scheduler(
    optimizer: Optimizer, opt, start_epoch: int | None = None
) -> lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau:
    """The ``--lr_policy`` schedule of ``optimizer``, whose step 0 is epoch ``start_epoch`` (default --epoch_count)."""
    start = opt.epoch_count if start_epoch is None else start_epoch
    if opt.lr_policy == "lambda":
        return lr_scheduler.LambdaLR(optimizer, lr_lambda=LinearDecay(start, opt.niter, opt.niter_decay))
    if opt.lr_policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=opt.lr_decay_iters, gamma=0.1)
    if opt.lr_policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
    if opt.lr_policy == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=opt.niter, eta_min=0)
    raise ValueError(f"unknown --lr_policy {opt.lr_policy!r}; choose one of {LR_POLICIES}")
