"""The epochs and batches of ``train.py``, made to survive: exact resume, signals, NaN guard, bad samples.

    session = TrainingSession(opt, model, loader)   # resumes when --continue_train
    for epoch in session.epochs():
        for data in session.batches():                # counts; saves 'latest'; stops cleanly on SIGINT/SIGTERM
            if not session.train_step(data):          # False: a non-finite loss skipped this batch
                continue
            ...                                       # display and print, by session.total_iters
        session.end_epoch()                           # learning rate, 'latest' and per-epoch checkpoints

Counters are CycleGAN's: ``epoch``, ``epoch_iter`` (images read this epoch), ``total_iters`` (images read in all),
counted over all ranks; ``batch`` is the size of the last global batch. The position saved with 'latest' is the
number of batches done in the epoch; a resumed run skips exactly those (``data.sampler.ResumableSampler``) and
restores every random state, so on the CPU with ``--deterministic`` it produces the same weights as a run that was
never stopped.
"""

from __future__ import annotations

import signal
from pathlib import Path

import torch

from data.sampler import derive_seed
from models.base_model import NonFiniteLossError, raise_if_nonfinite
from util.checkpoint import CheckpointError, checkpoint_tag, remove_stale_temp_files
from util.distributed import any_across_ranks, barrier, get_rank, get_world_size, is_main_process, seed_everything
from util.visualizer import append_to_loss_log

from .state import (
    gather_rank_states,
    load_training_state,
    option_changes,
    save_training_state,
    set_rng_state,
    state_path,
)

MAX_CONSECUTIVE_SKIPS = 20  # --skip_nonfinite: this many bad batches in a row means the run has diverged


class TrainingStopped(SystemExit):
    """Raised after SIGINT/SIGTERM once 'latest' is saved: exits with 128 + the signal number, no traceback."""


class TrainingSession:
    def __init__(self, opt, model, loader, log=print):
        self.opt, self.model, self.loader = opt, model, loader
        self.log = log if is_main_process() else (lambda *args, **kwargs: None)
        self.sampler = loader.sampler
        self.batch_size = loader.batch_size  # per process
        self.save_dir = Path(model.save_dir)
        self.last_epoch = opt.niter + opt.niter_decay
        self.epoch = opt.epoch_count
        self.batches_done = self.epoch_iter = self.total_iters = 0
        self.bad_samples: list[str] = []
        self.skipped_batches = 0
        self._consecutive_skips = 0
        self._signal: int | None = None
        self._old_handlers: dict = {}
        self.main = is_main_process()
        if opt.continue_train:
            self.resume()
        elif self.main and self.save_dir.is_dir():
            remove_stale_temp_files(self.save_dir)
            if state_path(self.save_dir, "latest").is_file():
                self.log(
                    f"{self.save_dir} holds the training state of an earlier run: this run starts afresh and "
                    "will overwrite it (pass --continue_train to resume it instead)"
                )

    # ----------------------------------------------------------------------------------------------- resume

    def resume(self) -> None:
        """Restore the state saved as ``--epoch`` (normally 'latest'); without a state file, the networks only."""
        opt = self.opt
        tag = checkpoint_tag(opt)
        path = state_path(self.save_dir, tag)
        if not path.is_file():
            if not self.model.network_path(tag, self.model.model_names[0]).is_file():
                raise FileNotFoundError(
                    f"--continue_train: nothing to resume in {self.save_dir} (no {path.name}, no "
                    f"{tag}_net_*.pth). Check --name, --checkpoints_dir and --epoch, or drop --continue_train"
                )
            self.model.load_networks(tag)
            self.log(
                f"--continue_train: {path} not found, so only the networks {tag}_net_*.pth were loaded; "
                f"optimizers, learning-rate schedule, image pools and random state start afresh, at epoch "
                f"{opt.epoch_count} (--epoch_count)"
            )
            return
        state = load_training_state(path, "cpu")  # optimizers and networks copy to their devices as they load
        changes = option_changes(state.get("options", {}), opt)
        self._check_schedule_reaches(state, path)
        try:
            self.model.load_training_state_dict(state, str(path))
        except RuntimeError as e:
            hint = f" Options that differ from the checkpoint's: {'; '.join(changes)}." if changes else ""
            raise CheckpointError(f"{e}{hint}") from e
        self.epoch, self.batches_done = state["epoch"], state["batches_done"]
        self.epoch_iter, self.total_iters = state["epoch_iter"], state["total_iters"]
        self.bad_samples = list(state.get("bad_samples", []))
        self.skipped_batches = state.get("skipped_batches", 0)
        # Each rank takes its own random state (restored when the loop starts, so that nothing in between draws from
        # it) and image pools when the run had as many ranks; otherwise rank 0's, and the random state is reseeded
        # per rank (the data order is exact either way).
        ranks, rank, world = state.get("ranks", []), get_rank(), get_world_size()
        mine = ranks[rank] if len(ranks) == world else {"rng": state["rng"]}
        for name, pool in self.model.pools().items():
            if name in mine.get("pools", {}):
                pool.load_state_dict(mine["pools"][name], self.model.device)
        self._rng = mine["rng"]
        self._reseed = world > 1 and len(ranks) != world
        if ranks and len(ranks) != world:
            self.log(
                f"--continue_train: {path.name} was written by {len(ranks)} process(es), this run has {world}: "
                "rank 0's random state and image pools are used on every rank, so the run is not bit-exact"
            )
        if changes:
            self.log(f"--continue_train: options changed since {path.name}: {'; '.join(changes)}")
        lr = self.model.optimizers[0].param_groups[0]["lr"] if self.model.optimizers else 0.0
        self.log(
            f"--continue_train: resuming {path} at epoch {self.epoch}, batch {self.batches_done} of the epoch, "
            f"total_iters {self.total_iters}, learning rate {lr:.7f} (the schedule of this run's options)"
        )
        if self.epoch > self.last_epoch:
            self.log(
                f"--continue_train: training already finished ({self.last_epoch} epochs); raise --niter or "
                "--niter_decay to train longer"
            )
        if self.main:
            remove_stale_temp_files(self.save_dir)

    def _check_schedule_reaches(self, state: dict, path: Path) -> None:
        """A schedule may be extended or shortened on resume, but not to end before the epochs already trained."""
        epoch, batches = state["epoch"], state["batches_done"]
        reached = epoch - 1 + (batches > 0)  # epochs trained, the current one counted when it has begun
        if self.last_epoch >= reached:
            return
        saved = state.get("options", {})
        was = f" (the run had --niter {saved.get('niter')} --niter_decay {saved.get('niter_decay')})" if saved else ""
        raise CheckpointError(
            f"--continue_train: {path} has trained {reached} epoch(s) (it stopped at epoch {epoch}, batch {batches} "
            f"of the epoch), but --niter {self.opt.niter} + --niter_decay {self.opt.niter_decay} = {self.last_epoch} "
            f"epoch(s): a schedule cannot end before the epoch already reached{was}. Pass --niter and --niter_decay "
            f"that add up to at least {reached}, or start a new run under another --name"
        )

    def check_first_sample(self) -> None:
        """Read the first sample the loop will read, so that a bad file fails before anything is written."""
        self._position_sampler()
        first = next(iter(self.sampler), None)
        if first is not None:
            self.loader.dataset[first]

    # ------------------------------------------------------------------------------------------------ loop

    def epochs(self):
        self._install_signal_handlers()
        if getattr(self, "_rng", None) is not None:
            set_rng_state(self._rng)
            if self._reseed:
                seed_everything(derive_seed(self.opt.seed, get_rank(), self.total_iters))
            self._rng = None
        try:
            while self.epoch <= self.last_epoch:
                yield self.epoch
        finally:
            self._restore_signal_handlers()
        if self.bad_samples and self.main:
            self.log(f"{len(self.bad_samples)} bad sample(s) were skipped (--skip_bad_samples); see loss_log.txt")

    def _position_sampler(self) -> None:
        self.sampler.set_epoch(self.epoch)
        self.sampler.skip(min(self.batches_done * self.batch_size, self.sampler.per_rank))

    def batches(self):
        """The epoch's remaining batches; after each: the stop flag, then the periodic 'latest' checkpoint."""
        self._position_sampler()
        self._stop_if_requested()  # a signal during the end-of-epoch save
        for data in self.loader:
            n = self.batch = data["A"].shape[0] * get_world_size()  # images of the global batch (ranks read alike)
            self.batches_done += 1
            self.epoch_iter += n
            self.total_iters += n
            self._note_bad_samples(data)
            yield data
            self._stop_if_requested()
            if self.total_iters % self.opt.save_latest_freq < n:
                self.log(f"saving the latest model (epoch {self.epoch}, total_iters {self.total_iters})")
                self.save("latest", f"iter_{self.total_iters}" if self.opt.save_by_iter else None)

    def train_step(self, data: dict) -> bool:
        """``set_input`` + ``optimize_parameters`` under the NaN/inf guard. False when the batch was skipped."""
        model = self.model
        try:
            model.set_input(data)
            model.optimize_parameters()
            self._check_losses()
        except NonFiniteLossError as e:
            where = (
                f"epoch {self.epoch}, iteration {self.epoch_iter} of the epoch (total_iters "
                f"{self.total_iters}); input files: {', '.join(_paths(data))}"
            )
            if not getattr(self.opt, "skip_nonfinite", False):
                e.args = (f"{e} at {where}. {self._last_good()}",)
                self._restore_signal_handlers()
                raise
            self.skipped_batches += 1
            self._consecutive_skips += 1
            self.log(f"skipped batch: {e} at {where} (--skip_nonfinite; {self.skipped_batches} skipped so far)")
            self._append_log(f"skipped batch: {e} at {where}")
            if self._consecutive_skips >= MAX_CONSECUTIVE_SKIPS:
                e.args = (
                    f"{MAX_CONSECUTIVE_SKIPS} batches in a row had a non-finite loss (last: {e} at {where}): "
                    f"the run has diverged. {self._last_good()}",
                )
                self._restore_signal_handlers()
                raise
            return False
        self._consecutive_skips = 0
        return True

    def _check_losses(self) -> None:
        """One sync per batch: are the reported (mean) losses finite? All-reduced, so every rank agrees."""
        raise_if_nonfinite({name: getattr(self.model, f"loss_{name}") for name in self.model.loss_names})

    def end_epoch(self) -> float:
        """Step the learning rate, then save 'latest' (and ``<epoch>``) as the start of the next epoch."""
        lr = self.model.update_learning_rate()
        epoch = self.epoch
        self.epoch, self.batches_done, self.epoch_iter = epoch + 1, 0, 0
        tag = epoch if epoch % self.opt.save_epoch_freq == 0 else None
        if tag is not None:
            self.log(f"saving the model at the end of epoch {epoch}, iters {self.total_iters}")
        self.save("latest", tag)
        self._position_sampler()
        return lr

    # ------------------------------------------------------------------------------------------------ saving

    def position(self) -> dict:
        return {
            "epoch": self.epoch,
            "batches_done": self.batches_done,
            "epoch_iter": self.epoch_iter,
            "total_iters": self.total_iters,
            "bad_samples": list(self.bad_samples),
            "skipped_batches": self.skipped_batches,
        }

    def save(self, tag: str = "latest", extra_tag: int | str | None = None) -> None:
        """The training state first, then the network-only files (``<tag>_net_G_A.pth`` ...), on the main process.
        Each file is atomic; the state alone is what --continue_train reads, so a kill between files is harmless."""
        ranks = gather_rank_states(self.model)  # a collective: every rank takes part
        if self.main:
            save_training_state(self.model, self.opt, self.position(), tag, ranks)
            self.model.save_networks(tag)
            if extra_tag is not None:
                if getattr(self.opt, "keep_epoch_state", False) or str(extra_tag).startswith("iter_"):
                    save_training_state(self.model, self.opt, self.position(), extra_tag, ranks)
                self.model.save_networks(extra_tag)
        barrier()

    def _last_good(self) -> str:
        path = state_path(self.save_dir, "latest")
        if not path.is_file():
            return "Training stopped before any checkpoint was written; lower --lr/--lr_D or pass --skip_nonfinite."
        return (
            f"Training stopped; the last good checkpoint, {path}, is kept: resume from it with --continue_train "
            "(perhaps with a lower --lr/--lr_D), or pass --skip_nonfinite to skip such batches."
        )

    # ----------------------------------------------------------------------------------- signals, bad samples

    def _install_signal_handlers(self) -> None:
        def handler(signum, frame):
            self._signal = signum
            # A second signal acts at once (the atomic writes keep 'latest' loadable).
            for s, old in self._old_handlers.items():
                signal.signal(s, old)

        try:
            for s in (signal.SIGINT, signal.SIGTERM):
                self._old_handlers[s] = signal.signal(s, handler)
        except ValueError:  # not the main thread: leave signals alone
            self._old_handlers = {}

    def _restore_signal_handlers(self) -> None:
        for s, old in self._old_handlers.items():
            signal.signal(s, old)
        self._old_handlers = {}

    def _stop_if_requested(self) -> None:
        """After SIGINT/SIGTERM (on any rank): save 'latest' and exit with 128 + the signal number."""
        if not any_across_ranks(torch.tensor([self._signal is not None])).item():
            return
        name = signal.Signals(self._signal).name if self._signal else "a stop request on another rank"
        self.save("latest")
        self.log(
            f"{name}: saved 'latest' at epoch {self.epoch}, batch {self.batches_done}, total_iters "
            f"{self.total_iters}; resume with --continue_train"
        )
        self._restore_signal_handlers()
        raise TrainingStopped(128 + (self._signal or signal.SIGTERM))

    def _note_bad_samples(self, data: dict) -> None:
        for text in data.get("bad", []):
            for problem in filter(None, text.split("\n")):
                if problem not in self.bad_samples:
                    self.bad_samples.append(problem)
                    self.log(f"skipped bad sample ({len(self.bad_samples)} so far): {problem}")
                    self._append_log(f"skipped bad sample: {problem}")

    def _append_log(self, line: str) -> None:
        if self.main:
            append_to_loss_log(self.save_dir, line, timestamp=True)


def _paths(data: dict) -> list[str]:
    paths = []
    for key in ("A_paths", "B_paths"):
        value = data.get(key, [])
        paths += [value] if isinstance(value, str) else list(value)
    return paths
