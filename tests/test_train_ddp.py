"""DDP on CPU: two gloo processes train the same recipe; their weights must stay bit-identical.

Each rank sees a different half of every epoch (checked through the dataset tags it recorded); DDP averages the
gradients, so after every step both ranks hold the same parameters, BatchNorm buffers included (broadcast from
rank 0). Rank 0 alone writes the checkpoint and logs.

A stage switch (`head_then_full` unfreezing the backbone after epoch 1) changes the trainable set: the engine must
re-wrap DDP, or the backbone's gradients are never all-reduced and the ranks drift apart. At the end of every DDP
run the ranks compare weight checksums and fail in one line if they differ.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from poseadapt.errors import PoseAdaptError
from poseadapt.train import Hook, build_trainer, engine, recipe_from_dict
from poseadapt.train.checkpointing import load_train_state
from poseadapt.train.distributed import check_ranks_agree, teardown

WORLD = 2
# the DDP tests run on one xdist worker, one at a time: their gloo sockets cannot take each other's port
pytestmark = pytest.mark.xdist_group("ddp")


class RecordSamples(Hook):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.losses: list[float] = []

        self.after_epoch: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch_start(self, trainer) -> None:
        self.seen += [(e, i) for _, i, e in trainer.sampler]

    def on_epoch_end(self, trainer) -> None:
        self.after_epoch[trainer.epoch] = {k: v.detach().clone() for k, v in trainer.module.state_dict().items()}

    def after_step(self, trainer, logs) -> None:
        self.losses.append(float(logs["losses"]["loss"]))


def recipe(kind: str = "plain") -> dict:
    r = {
        "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "classic"},
        "data": {"train": {"synth": {"population": "adult", "n": 16, "size": 96, "seed": 5}}},
        "optim": {"lr": 1e-3, "layer_decay": 0.75},
        "schedule": {"epochs": 2, "warmup_iters": 2},
        "train": {"batch_size": 2, "workers": 0, "device": "cpu", "progress": False, "tensorboard": False},
    }
    if kind == "head_then_full":  # each rank's data differs: unsynced backbone gradients would diverge
        r["model"]["head"] = "simple"
        r["optim"] = {"lr": 1e-3}
        r["adapt"] = [{"head_then_full": {"head_epochs": 1}}]
    return r


def _rank_main(rank: int, port: int, out: str, kind: str = "plain") -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    # `amp: auto` as if the ranks timed bf16 differently (rank 1 alone would pick it): rank 0's choice must hold
    engine.resolve_amp = lambda amp, device: rank == 1
    rec = RecordSamples()
    try:
        trainer = build_trainer(recipe_from_dict(recipe(kind)), Path(out) / "run", hooks=(rec,))
        result = trainer.fit()
        state = {k: v.clone() for k, v in trainer.module.state_dict().items()}
        # the end-of-run check itself: ranks holding different weights fail in one line
        differing = torch.nn.Linear(2, 2)
        torch.nn.init.constant_(differing.weight, float(rank))
        try:
            check_ranks_agree(differing, torch.device("cpu"))
            refused = ""
        except PoseAdaptError as exc:
            refused = str(exc)
        torch.save({"state": state, "seen": rec.seen, "losses": rec.losses, "iteration": result.iteration,
                    "after_epoch": rec.after_epoch, "refused": refused, "wrapped": trainer.wrapped_trainable,
                    "autocast": trainer.autocast},
                   Path(out) / f"rank{rank}.pt")  # fmt: skip
    finally:
        teardown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(fn, *args: str, tries: int = 3) -> None:
    """Run `fn(rank, port, *args)` on WORLD processes, on a fresh port if the chosen one was taken meanwhile.

    A port found free can be taken before rank 0 listens on it (CI saw EADDRINUSE once: another test's gloo
    connections draw from the same ephemeral range). Rendezvous fails before any training or writing, so a retry
    on a new port repeats nothing.
    """
    for attempt in range(tries):
        try:
            mp.spawn(fn, args=(_free_port(), *args), nprocs=WORLD, join=True)
            return
        except mp.ProcessRaisedException as exc:
            if "EADDRINUSE" not in str(exc) or attempt == tries - 1:
                raise


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_two_process_ddp_on_cpu_keeps_ranks_identical(tmp_path: Path) -> None:
    _spawn(_rank_main, str(tmp_path))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD))

    # 16 samples, 2 ranks, batch 2: 4 steps per epoch on each rank, 8 in all
    assert r0["iteration"] == r1["iteration"] == 8
    assert r0["autocast"] is False and r1["autocast"] is False  # rank 0's amp decision, on every rank
    for key, a in r0["state"].items():
        assert torch.equal(a, r1["state"][key]), f"ranks differ at {key}"
    init = build_model_weights()
    assert any(not torch.equal(init[k], v) for k, v in r0["state"].items()), "training changed nothing"
    # the ranks split each epoch: disjoint halves that together cover the dataset
    for epoch in (0, 1):
        a = {i for e, i in r0["seen"] if e == epoch}
        b = {i for e, i in r1["seen"] if e == epoch}
        assert not a & b and a | b == set(range(16))
    # different data, so different losses, yet one model
    assert r0["losses"] != r1["losses"]
    saved = load_train_state(tmp_path / "run" / "last.pt")
    assert saved["world_size"] == WORLD and len(saved["rng"]) == WORLD
    assert all(torch.equal(saved["model"][k], v) for k, v in r0["state"].items())
    assert (tmp_path / "run" / "final.safetensors").is_file()


def build_model_weights(kind: str = "plain") -> dict[str, torch.Tensor]:
    from poseadapt.train.build import build_model

    return build_model(recipe_from_dict(recipe(kind))).state_dict()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_two_process_ddp_head_then_full_rewraps_at_the_switch(tmp_path: Path) -> None:
    _spawn(_rank_main, str(tmp_path), "head_then_full")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(WORLD))
    assert r0["iteration"] == r1["iteration"] == 8
    # the ranks agree to the bit at the end (the run's own checksum check passed too, or fit() would have raised)
    for key, a in r0["state"].items():
        assert torch.equal(a, r1["state"][key]), f"ranks differ at {key}"
    init = build_model_weights("head_then_full")
    epoch1, epoch2 = r0["after_epoch"][1], r0["after_epoch"][2]
    backbone = [k for k in init if k.startswith("backbone.")]
    assert all(torch.equal(init[k], epoch1[k]) for k in backbone)  # stage 1: heads only
    assert any(not torch.equal(init[k], epoch1[k]) for k in init if k.startswith("heads."))
    moved = [k for k in backbone if not torch.equal(epoch1[k], epoch2[k])]
    assert len(moved) == len(backbone), sorted(set(backbone) - set(moved))  # every backbone tensor trained after it
    assert all(torch.equal(epoch1[k], r1["after_epoch"][1][k]) for k in epoch1)
    assert all(torch.equal(epoch2[k], r1["after_epoch"][2][k]) for k in epoch2)
    # DDP was wrapped last with the full trainable set
    assert r0["wrapped"] is not None and any(n.startswith("backbone.") for n in r0["wrapped"])
    assert r0["losses"] != r1["losses"]
    for r in (r0, r1):
        assert r["refused"].startswith("DDP ranks ended with different weights") and "\n" not in r["refused"]


class StopAfter(Hook):
    """Interrupt every rank after step `k` (what a second Ctrl-C does): state is saved, the run stops."""

    def __init__(self, k: int) -> None:
        self.k = k

    def after_step(self, trainer, logs) -> None:
        if trainer.iteration == self.k:
            raise KeyboardInterrupt


def _resume_rank(rank: int, port: int, out: str, phase: str) -> None:
    """phase 'full' trains uninterrupted; 'stop' stops after step 3 (mid epoch 0); 'resume' continues it."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    resume = phase == "resume"
    rec = RecordSamples()
    hooks = (rec, StopAfter(3)) if phase == "stop" else (rec,)
    try:
        run_dir = Path(out) / ("full" if phase == "full" else "split")
        trainer = build_trainer(recipe_from_dict(recipe()), run_dir, resume=resume, hooks=hooks)
        result = trainer.fit(resume=resume)
        state = {k: v.clone() for k, v in trainer.module.state_dict().items()}
        torch.save({"state": state, "iteration": result.iteration, "status": result.status, "losses": rec.losses},
                   Path(out) / f"{phase}{rank}.pt")  # fmt: skip
    finally:
        teardown()


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_two_process_ddp_resume_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    for phase in ("full", "stop", "resume"):
        _spawn(_resume_rank, str(tmp_path), phase)
    load = lambda phase, r: torch.load(tmp_path / f"{phase}{r}.pt", weights_only=True)  # noqa: E731
    for r in range(WORLD):
        full, stop, resumed = load("full", r), load("stop", r), load("resume", r)
        assert full["status"] == "completed" and full["iteration"] == 8
        assert stop["status"] == "interrupted" and stop["iteration"] == 3
        assert resumed["status"] == "completed" and resumed["iteration"] == 8
        # each rank's losses: 3 before the stop and 5 after are the uninterrupted run's 8
        assert stop["losses"] + resumed["losses"] == pytest.approx(full["losses"], abs=1e-6)
        for key, a in full["state"].items():
            assert torch.allclose(a, resumed["state"][key], atol=1e-6), f"rank {r}: resumed run differs at {key}"
    saved = load_train_state(tmp_path / "split" / "last.pt")
    assert saved["world_size"] == WORLD and saved["iteration"] == 8
