"""The training loop: `Trainer.fit()` in plain PyTorch, short enough to read in one sitting.

Why plain PyTorch and not Lightning Fabric: what Fabric would add here (device placement, DDP wrapping, autocast)
is about twenty lines of this file, while the parts that make the loop *correct* (exact mid-epoch resume with
sampler / RNG / scheduler state, every rank's RNG in the checkpoint, a Ctrl-C that stops all ranks on the same
step and saves) would still be ours, written around Fabric's abstractions. Fabric is also one more large
dependency with its own release cadence pinned against torch; torch alone covers DDP (torchrun, gloo / NCCL)
and bf16 autocast.

Everything optional is a hook (`poseadapt.train.hooks`: EMA, logging, progress, validation) or an adaptation
method (`poseadapt.adapt.methods`, called through the `Method` interface only: which parameters train, extra
losses, pseudo-labels, state, export); the loop itself only runs steps, counts them, and saves.
State is saved at every epoch end, every `checkpoint_interval` iterations and when stopped; `fit(resume=True)`
continues from `last.pt` exactly where it stopped, mid-epoch included.
"""

from __future__ import annotations

import contextlib
import functools
import random
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from poseadapt.adapt.method import Method, StepOutputs
from poseadapt.adapt.params import apply_train_mode, apply_trainable, backbone_depth, trainable_names
from poseadapt.errors import PoseAdaptError
from poseadapt.train import distributed
from poseadapt.train.batch import collate, model_input, to_device
from poseadapt.train.checkpointing import capture_rng, load_train_state, restore_rng, save_train_state
from poseadapt.train.hooks import Hook
from poseadapt.train.logging import MetricLogger
from poseadapt.train.losses import HeatmapMSE, LossTerm
from poseadapt.train.optim import build_scheduler, lr_factor, param_groups
from poseadapt.train.sampler import MixedDataset, MixedSampler

STATE_FILE = "last.pt"
# recipe keys a resumed run must keep (section, key or None for the whole section)
RESUME_FIXED = (
    ("model", None),
    ("data", None),
    ("train", "batch_size"),
    ("train", "seed"),
    ("train", "samples_per_epoch"),
)


@dataclass
class TrainResult:
    status: str  # "completed" | "interrupted"
    epoch: int
    iteration: int
    out_dir: Path
    best_ap: float | None = None
    final_checkpoint: Path | None = None
    epochs: int = 0  # epochs the run planned (the schedule's, fewer when train.max_iters stops it), as progress shows
    iters_per_epoch: int = 0


def _worker_init(seed: int, rank: int, worker_id: int) -> None:
    """DataLoader workers ignore Ctrl-C (the main process stops cleanly) and get their own global seeds.

    The data itself does not depend on them: each sample draws from (seed, epoch, index) (see sampler.py).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    s = np.random.SeedSequence([seed, rank, worker_id]).generate_state(1)[0]
    np.random.seed(s)  # noqa: NPY002 - seeds the legacy global RNG that third-party code may use
    random.seed(int(s))
    torch.manual_seed(int(s))


CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # native bf16 arithmetic (Cooper Lake / Sapphire Rapids and later)


def cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (/proc/cpuinfo); empty elsewhere or when unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.partition(":")[2].split()}


@functools.cache
def cpu_bf16_parity() -> bool:
    """One-off check that bf16 autocast on this CPU computes what fp32 does (a small conv / linear / GELU /
    LayerNorm / attention forward, relative error under 3%). Its own generator leaves the global RNG alone."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 32, 24, generator=g)
    conv = torch.randn(16, 3, 4, 4, generator=g) * 0.2
    w1, w2 = torch.randn(64, 16, generator=g) * 0.2, torch.randn(16, 64, generator=g) * 0.2

    def forward() -> torch.Tensor:
        t = torch.nn.functional.conv2d(x, conv, stride=4).flatten(2).transpose(1, 2)  # (2, 48, 16)
        t = torch.nn.functional.layer_norm(t, (16,))
        t = t + torch.nn.functional.scaled_dot_product_attention(t, t, t)
        return torch.nn.functional.linear(torch.nn.functional.gelu(torch.nn.functional.linear(t, w1)), w2).float()

    try:
        with torch.no_grad():
            ref = forward()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = forward()
    except RuntimeError:
        return False
    err = (low - ref).norm() / ref.norm().clamp(min=1e-12)
    return bool(torch.isfinite(low).all() and err < 0.03)


BF16_MIN_SPEEDUP = 1.2  # 'auto' wants bf16 GEMMs at least this much faster than fp32 ones


@functools.cache
def cpu_bf16_speedup(size: int = 512, rounds: int = 5, reps: int = 3) -> float:
    """One-off measure of a bf16 GEMM's speed against fp32's on this CPU (median of interleaved rounds; ~50 ms).

    The flags alone mislead: some virtual machines report avx512_bf16 while their bf16 GEMMs run at half the fp32
    speed, which made `amp: auto` training 1.75x slower there (docs/BENCHMARKS.md). Its own generator leaves the
    global RNG alone."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=g), torch.randn(size, size, generator=g)
    a16, b16 = a.bfloat16(), b.bfloat16()

    def seconds(x: torch.Tensor, y: torch.Tensor) -> float:
        start = time.perf_counter()
        for _ in range(reps):
            torch.mm(x, y)
        return time.perf_counter() - start

    try:
        seconds(a, b), seconds(a16, b16)  # warm-up: oneDNN picks and caches its kernels
        ratios = sorted(seconds(a, b) / max(seconds(a16, b16), 1e-9) for _ in range(rounds))
    except RuntimeError:
        return 0.0
    return ratios[len(ratios) // 2]


def cpu_has_bf16() -> bool:
    """Native bf16 on this CPU: AVX-512 BF16 or AMX flags, the one-off parity check passes, and bf16 GEMMs are
    measurably faster than fp32 ones."""
    return bool(cpu_flags() & set(CPU_BF16_FLAGS)) and cpu_bf16_parity() and cpu_bf16_speedup() >= BF16_MIN_SPEEDUP


def resolve_amp(amp: bool | str, device: torch.device) -> bool:
    """bf16 autocast: 'auto' turns it on for CUDA devices that support bf16 and for CPUs with native, faster bf16
    (after one-off parity and speed checks), off elsewhere; True demands it (on a CPU without native bf16 it runs,
    emulated, slowly)."""
    if amp == "auto":
        if device.type == "cpu":
            return cpu_has_bf16()
        return device.type == "cuda" and torch.cuda.is_bf16_supported()
    if amp and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PoseAdaptError(f"train.amp: {torch.cuda.get_device_name(device)} does not support bf16 autocast")
    return bool(amp)


class ModelWithLosses(nn.Module):
    """The model, its loss terms and the methods' auxiliary modules as one module, so DDP averages every gradient.

    The forward exposes backbone features and head outputs (`StepOutputs`) to the methods' losses.
    """

    def __init__(self, model: nn.Module, terms: nn.ModuleList, methods: Sequence[Method] = ()) -> None:
        super().__init__()
        self.model = model
        self.terms = terms
        self.aux = nn.ModuleDict({m.name: m.modules() for m in methods if m.modules() is not None})
        self.methods = list(methods)

    def forward(self, x: torch.Tensor, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        index = batch["dataset_index"]
        if hasattr(self.model, "forward_features") and hasattr(self.model, "heads"):
            features = self.model.forward_features(x, index)
            head_outputs = getattr(self.model, "head_outputs", None)
            outputs = head_outputs(features, index) if head_outputs else self.model.heads(features, index)
        else:  # any other module: no features to expose
            features, outputs = None, self.model(x, index)
        losses = {term.name: term.weight * term(batch, outputs) for term in self.terms}
        out = StepOutputs(features, outputs)  # type: ignore[arg-type]
        for method in self.methods:
            for name, value in method.losses(batch, out, self.model).items():
                losses[f"{method.name}/{name}"] = value
        return losses


class Trainer:
    """Trains `model` on `data` as the recipe's optim / schedule / train sections say (see `poseadapt.train.recipe`)."""

    def __init__(
        self,
        recipe: Any,
        model: nn.Module,
        data: MixedDataset,
        out_dir: str | Path,
        *,
        ratios: Sequence[float] | None = None,
        loss_terms: Sequence[LossTerm] | None = None,
        hooks: Sequence[Hook] = (),
        methods: Sequence[Method] = (),
    ) -> None:
        t, sched = recipe.train, recipe.schedule
        self.recipe = recipe
        self.out_dir = Path(out_dir)
        self.device = distributed.resolve_device(t.device, distributed.env_info())
        self.dist = distributed.setup(self.device)
        # rank 0 decides: 'auto' times a GEMM on each rank, and ranks near the threshold could otherwise disagree
        self.autocast = bool(distributed.broadcast_object(resolve_amp(t.amp, self.device)))
        self.module = model.to(self.device)
        self.loss_terms = nn.ModuleList(loss_terms or [HeatmapMSE()]).to(self.device)
        self.hooks = list(hooks)
        self.methods = list(methods)
        self.chooser = next((m for m in self.methods if m.chooses_parameters), None)
        self.ema: Any = None
        self.logger = MetricLogger(self.out_dir, tensorboard=t.tensorboard) if self.dist.is_main else None

        self.batch_size = t.batch_size
        self.sampler = MixedSampler(
            data.sizes, ratios, t.samples_per_epoch, seed=t.seed, rank=self.dist.rank, world_size=self.dist.world_size
        )
        self.iters_per_epoch = self.sampler.per_rank // self.batch_size
        if self.iters_per_epoch == 0:
            raise PoseAdaptError(
                f"train.batch_size {self.batch_size} is larger than the {self.sampler.per_rank} samples per epoch "
                f"and process: lower it or raise train.samples_per_epoch"
            )
        self.loader = torch.utils.data.DataLoader(
            data,
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=t.workers,
            collate_fn=collate,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
            worker_init_fn=functools.partial(_worker_init, t.seed, self.dist.rank) if t.workers else None,
            generator=torch.Generator().manual_seed(t.seed * 1000 + self.dist.rank),
            prefetch_factor=4 if t.workers else None,
        )
        self.max_epochs = sched.epochs
        self.total_iters = sched.epochs * self.iters_per_epoch
        if t.max_iters:
            self.total_iters = min(self.total_iters, t.max_iters)
        self.iteration = self.epoch = self.epoch_iteration = 0
        self.stop_requested = False
        self.saved_iteration: int | None = None  # the iteration last.pt holds (the NaN guard names it)
        torch.manual_seed(t.seed + self.dist.rank)  # drop-path masks differ per rank, reproducibly

        self.call("setup")
        self.depth = backbone_depth(self.module)
        self.apply_parameter_choice(0)
        self.step_module: nn.Module = ModelWithLosses(self.module, self.loss_terms, self.methods)
        self.aux = self.step_module.aux  # the methods' auxiliary modules (also inside the DDP wrapper later)
        self.step_module.to(self.device)  # modules methods added (adapters, classifiers) join the device
        self.wrapped_trainable: tuple[str, ...] | None = None  # the trainable set DDP was wrapped with
        self.optimizer = self.build_optimizer()
        factor = functools.partial(
            lr_factor,
            iters_per_epoch=self.iters_per_epoch,
            warmup_iters=sched.warmup_iters,
            warmup_ratio=sched.warmup_ratio,
            policy=sched.policy,
            milestones=tuple(sched.milestones),
            gamma=sched.gamma,
            epochs=sched.epochs,
            min_lr_ratio=sched.min_lr_ratio,
        )
        self.scheduler = build_scheduler(self.optimizer, factor)

    # ------------------------------------------------------------------------------------------------ parameters
    def apply_parameter_choice(self, epoch: int) -> bool:
        """`requires_grad` as the parameter-choosing method says for `epoch` (all train without one)."""
        chooser, depth = self.chooser, self.depth
        if chooser is None:
            return apply_trainable(self.module, lambda name: True)
        return apply_trainable(self.module, lambda name: chooser.trainable(name, epoch, depth))

    def build_optimizer(self) -> torch.optim.AdamW:
        """AdamW over every parameter that trains in any epoch (the methods say which), loss-term and auxiliary
        parameters, with the chooser's lr scale (layer decay) or the recipe's `optim.layer_decay`.

        Parameters a later stage unfreezes are in it from the start: without a gradient AdamW skips them, so a
        stage switch needs no new optimizer (and loses no moment estimates); only DDP is re-wrapped.
        """
        o, depth, chooser = self.recipe.optim, self.depth, self.chooser
        named = [(n, p) for n, p in self.module.named_parameters() if chooser is None or chooser.ever_trains(n, depth)]
        extra = list(self.loss_terms.named_parameters(prefix="loss_terms"))
        extra += list(self.aux.named_parameters(prefix="aux"))
        scale = None if chooser is None else functools.partial(chooser.lr_scale, depth=depth)
        groups = param_groups(named + extra, o.lr, o.weight_decay, o.layer_decay, depth, lr_scale=scale)
        for g in groups:
            del g["names"]  # names are for inspection; the optimizer state dict should hold only numbers
        return torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas), eps=o.eps, weight_decay=o.weight_decay)

    def start_epoch(self) -> None:
        """Training mode (frozen modules stay in eval), the epoch's parameter choice, the methods' epoch work; DDP
        is re-wrapped when the trainable set changed (or it would never all-reduce newly unfrozen gradients)."""
        self.module.train()
        self.apply_parameter_choice(self.epoch)
        apply_train_mode(self.module)
        if self.dist.enabled and trainable_names(self.module) != self.wrapped_trainable:
            self.wrap_ddp()
        for method in self.methods:
            logs = method.on_epoch_start(self.module, self.epoch)
            if logs:
                self.log_metrics({f"{method.name}/{k}": v for k, v in logs.items()}, kind="adapt")

    # ------------------------------------------------------------------------------------------------ the loop
    def fit(self, resume: bool = False) -> TrainResult:
        """Train to the end of the schedule (or `train.max_iters`); Ctrl-C stops after the current step and saves."""
        if resume:
            self.load_state(self.out_dir / STATE_FILE)
        self.wrap_ddp()
        self.call("on_train_start")
        try:
            with self._stop_on_sigint():
                while self.has_work() and not self.stop_now():
                    self.run_epoch()
        except KeyboardInterrupt:  # a hook (or a second Ctrl-C) raised it: state is consistent between steps
            self.stop_requested = True
        interrupted = self.stop_requested
        distributed.sync_buffers(self.module)
        if self.dist.enabled:
            distributed.check_ranks_agree(self.module, self.device)
        self.save_state()
        final = None if interrupted else self.save_model("final.safetensors", {"status": "completed"})
        self.call("on_train_end")
        if self.logger is not None:
            self.logger.close()
        best = next((h.best_ap for h in self.hooks if hasattr(h, "best_ap")), None)
        status = "interrupted" if interrupted else "completed"
        from poseadapt.train.logging import planned_epochs

        return TrainResult(
            status, self.epoch, self.iteration, self.out_dir, best, final, planned_epochs(self), self.iters_per_epoch
        )

    def run_epoch(self) -> None:
        self.sampler.set_epoch(self.epoch, start=self.epoch_iteration * self.batch_size)
        self.start_epoch()
        self.call("on_epoch_start")
        for batch in self.loader:
            logs = self.train_step(to_device(batch, self.device))
            self.iteration += 1
            self.epoch_iteration += 1
            self.call("after_step", logs)
            interval = self.recipe.train.checkpoint_interval
            if interval and self.iteration % interval == 0:
                self.save_state()
            if self.stop_now() or self.iteration >= self.total_iters and self.epoch_iteration < self.iters_per_epoch:
                return  # stopped, or train.max_iters reached mid-epoch
        self.epoch += 1
        self.epoch_iteration = 0
        distributed.sync_buffers(self.module)
        self.call("on_epoch_end")
        self.save_state()

    def train_step(self, batch: dict[str, Any]) -> dict[str, Any]:
        """One optimizer step; returns detached loss tensors (no device sync), the lr and the gradient norm."""
        self.call("before_step", batch)
        for method in self.methods:
            method.before_step(batch, self.module)
        x = model_input(batch["image"], self.module)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            losses = self.step_module(x, batch)
        loss = sum(losses.values())
        self.stop_if_not_finite(loss, losses)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = None
        if self.recipe.train.grad_clip:
            params = [p for g in self.optimizer.param_groups for p in g["params"] if p.grad is not None]
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.recipe.train.grad_clip).detach()
        self.optimizer.step()
        self.scheduler.step()
        detached = {"loss": loss.detach(), **{k: v.detach() for k, v in losses.items() if len(losses) > 1}}
        lr = max(g["lr"] for g in self.optimizer.param_groups)
        if self.methods and (self.iteration + 1) % self.recipe.train.log_interval == 0:
            extra = {f"{m.name}/{k}": v for m in self.methods for k, v in m.logs().items()}
            if extra:
                self.log_metrics(extra, kind="adapt")
        return {"losses": detached, "lr": lr, "grad_norm": grad_norm, "batch_size": x.shape[0]}

    def stop_if_not_finite(self, loss: torch.Tensor, losses: dict[str, torch.Tensor]) -> None:
        """A NaN or infinite loss stops training before it reaches the weights, with one line naming the iteration;
        nothing is saved, so `last.pt` keeps the last good state. Under DDP every rank stops at the same step."""
        bad = not bool(torch.isfinite(loss.detach()))
        if self.dist.enabled:
            bad = distributed.any_rank(bad, self.device)
        if not bad:
            return
        terms = [k for k, v in losses.items() if not bool(torch.isfinite(v.detach()).all())]
        which = f" (term{'s' if len(terms) > 1 else ''} {', '.join(terms)})" if terms else " (on another process)"
        kept = (
            f"{self.out_dir / STATE_FILE} keeps iteration {self.saved_iteration}"
            if self.saved_iteration is not None
            else "no checkpoint was saved before it"
        )
        if self.logger is not None:
            self.logger.close()
        raise PoseAdaptError(
            f"training stopped at iteration {self.iteration + 1}: the loss is {loss.detach().float().item()}{which}; "
            f"{kept} (lower optim.lr, set train.grad_clip, or check the data)"
        )

    def wrap_ddp(self) -> None:
        """Under DDP, (re)wrap model + loss terms + auxiliary modules. DDP fixes the set of trainable parameters
        when it wraps, so `start_epoch` calls this again whenever that set changes."""
        if not self.dist.enabled:
            return
        plain = ModelWithLosses(self.module, self.loss_terms, self.methods)
        self.wrapped_trainable = trainable_names(self.module)
        find_unused = len(getattr(self.module, "heads", ())) > 1 or self.recipe.train.find_unused_parameters
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.step_module = DistributedDataParallel(plain, device_ids=ids, find_unused_parameters=find_unused)

    def has_work(self) -> bool:
        """Epochs left and iterations left (or an epoch whose last step ran but whose end did not)."""
        if self.epoch >= self.max_epochs:
            return False
        return self.iteration < self.total_iters or self.epoch_iteration == self.iters_per_epoch

    def stop_now(self) -> bool:
        """Whether a stop was requested (Ctrl-C) on this rank or, under DDP, on any rank."""
        return distributed.any_rank(self.stop_requested, self.device) if self.dist.enabled else self.stop_requested

    def call(self, event: str, *args: Any) -> None:
        for hook in self.hooks:
            getattr(hook, event)(self, *args)

    @contextlib.contextmanager
    def _stop_on_sigint(self) -> Iterator[None]:
        """First Ctrl-C: finish the step, save, exit. Second: raise KeyboardInterrupt at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: Any) -> None:
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True

        previous = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    # ------------------------------------------------------------------------------------------------ views
    @property
    def eval_model(self) -> nn.Module:
        """The weights to validate and export: the EMA average when there is one."""
        return self.ema.module if self.ema is not None else self.module

    def barrier(self) -> None:
        distributed.barrier()

    def log_metrics(self, metrics: dict[str, float], kind: str = "train") -> None:
        if self.logger is not None:
            self.logger.log(metrics, self.iteration, kind)

    # ------------------------------------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "epoch": self.epoch,
            "epoch_iteration": self.epoch_iteration,
            "model": self.module.state_dict(),
            "loss_terms": self.loss_terms.state_dict(),
            "aux": self.aux.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler": {**self.sampler.state_dict(), "start": self.epoch_iteration * self.batch_size},
            "hooks": {h.name: h.state_dict() for h in self.hooks if h.state_dict()},
            "methods": {m.key: m.state_dict() for m in self.methods},
            "recipe": self.recipe.to_dict(),
            "world_size": self.dist.world_size,
        }

    def save_state(self) -> None:
        """Write `last.pt` (rank 0), with every rank's RNG state; all ranks must call it at the same step."""
        rngs = distributed.gather_objects(capture_rng())
        if self.dist.is_main:
            save_train_state({**self.state_dict(), "rng": rngs}, self.out_dir / STATE_FILE)
        self.saved_iteration = self.iteration
        self.barrier()

    def load_state(self, path: Path) -> None:
        state = load_train_state(path, map_location=self.device)
        self._check_same_run(state.get("recipe", {}), path)
        if state["world_size"] != self.dist.world_size:
            raise PoseAdaptError(
                f"{path} was saved by {state['world_size']} process(es); resume it with the same number "
                f"(this run has {self.dist.world_size})"
            )
        try:
            self.module.load_state_dict(state["model"])
            self.loss_terms.load_state_dict(state["loss_terms"])
            self.aux.load_state_dict(state.get("aux", {}))
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0]
            raise PoseAdaptError(f"{path} does not match this recipe's model or optimizer: {first}") from None
        self.scheduler.load_state_dict(state["scheduler"])
        self.iteration, self.epoch = state["iteration"], state["epoch"]
        self.saved_iteration = self.iteration
        self.epoch_iteration = state["epoch_iteration"]
        for hook in self.hooks:
            if hook.name in state["hooks"]:
                hook.load_state_dict(state["hooks"][hook.name])
        for method in self.methods:
            method.load_state_dict(state.get("methods", {}).get(method.key, {}))
        restore_rng(state["rng"][self.dist.rank])

    def _check_same_run(self, saved: dict[str, Any], path: Path) -> None:
        """Resuming may change the schedule or optimizer settings (e.g. more epochs), not what defines the data
        order or the model: those would make the saved position and weights meaningless."""
        now = self.recipe.to_dict()
        for section, key in RESUME_FIXED:
            before = saved.get(section, {}) if key is None else saved.get(section, {}).get(key)
            after = now.get(section, {}) if key is None else now[section].get(key)
            if key is None and isinstance(before, dict) and isinstance(after, dict):
                # a key a newer poseadapt added (absent from the saved recipe) changes nothing while at its default
                defaults = type(self.recipe).model_fields[section].default
                default = defaults.model_dump(mode="json", by_alias=True) if hasattr(defaults, "model_dump") else {}
                after = {k: v for k, v in after.items() if k in before or v != default.get(k, object())}
            if before != after:
                name = section if key is None else f"{section}.{key}"
                raise PoseAdaptError(f"cannot resume {path}: recipe key '{name}' changed since it was saved")

    def save_model(self, name: str, provenance: dict[str, Any] | None = None) -> Path | None:
        """Write the eval weights as a poseadapt checkpoint under out_dir (rank 0); returns its path."""
        if not self.dist.is_main:
            return None
        from poseadapt.interop.checkpoint import save_checkpoint

        model = self.eval_model
        for method in self.methods:
            model = method.export(model)
        for hook in self.hooks:
            model = hook.export_model(self, model)
        info = {
            **getattr(self.module, "provenance", {}),
            "adapt": [{m.name: m.provenance()} for m in self.methods],
            "training": {"epoch": self.epoch, "iteration": self.iteration, "recipe": self.recipe.to_dict()},
            **(provenance or {}),
        }
        return save_checkpoint(model, self.out_dir / name, provenance=info)
