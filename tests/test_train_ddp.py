"""DDP on CPU: two gloo processes train the same recipe; their weights must stay bit-identical.

Each rank sees a different half of every epoch (checked through the dataset tags it recorded); DDP averages the
gradients, so after every step both ranks hold the same parameters, BatchNorm buffers included (broadcast from
rank 0). Rank 0 alone writes the checkpoint and logs.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from poseadapt.train import Hook, build_trainer, recipe_from_dict
from poseadapt.train.checkpointing import load_train_state
from poseadapt.train.distributed import teardown

WORLD = 2


class RecordSamples(Hook):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []
        self.losses: list[float] = []

    def on_epoch_start(self, trainer) -> None:
        self.seen += [(e, i) for _, i, e in trainer.sampler]

    def after_step(self, trainer, logs) -> None:
        self.losses.append(float(logs["losses"]["loss"]))


def recipe() -> dict:
    return {
        "model": {"name": "vit_tiny", "input_size": [48, 64], "schema": "coco17", "head": "classic"},
        "data": {"train": {"synth": {"population": "adult", "n": 16, "size": 96, "seed": 5}}},
        "optim": {"lr": 1e-3, "layer_decay": 0.75},
        "schedule": {"epochs": 2, "warmup_iters": 2},
        "train": {"batch_size": 2, "workers": 0, "device": "cpu", "progress": False, "tensorboard": False},
    }


def _rank_main(rank: int, port: int, out: str) -> None:
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    rec = RecordSamples()
    try:
        trainer = build_trainer(recipe_from_dict(recipe()), Path(out) / "run", hooks=(rec,))
        result = trainer.fit()
        state = {k: v.clone() for k, v in trainer.module.state_dict().items()}
        torch.save({"state": state, "seen": rec.seen, "losses": rec.losses, "iteration": result.iteration},
                   Path(out) / f"rank{rank}.pt")  # fmt: skip
    finally:
        teardown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch built without distributed")
def test_two_process_ddp_on_cpu_keeps_ranks_identical(tmp_path: Path) -> None:
    mp.spawn(_rank_main, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD))

    # 16 samples, 2 ranks, batch 2: 4 steps per epoch on each rank, 8 in all
    assert r0["iteration"] == r1["iteration"] == 8
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


def build_model_weights() -> dict[str, torch.Tensor]:
    from poseadapt.train.build import build_model

    return build_model(recipe_from_dict(recipe())).state_dict()
