"""Mixing datasets by ratio, with every sample tagged by its dataset index; deterministic, resumable, DDP-aware.

One code path serves the single-dataset case (one dataset, ratio 1: a plain shuffled permutation), methods that mix in
(target data mixed with a fraction of source data) and multi-dataset training (one head per dataset, chosen by the
`dataset_index` tag that every sample carries).

An epoch's order depends only on (seed, epoch): the sampler draws `count_d` samples from dataset d (walking through
fresh permutations of it, so a small dataset repeats only after it is exhausted), shuffles the union, and rank r of
W takes every W-th entry. Its state is (epoch, position), so a run stopped mid-epoch resumes at the next sample.
Indices are `(dataset, sample, epoch)` triples: the dataset draws its augmentation from (seed, epoch, sample)
itself, so the data does not depend on DataLoader workers, their order, or whether they outlive an epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch.utils.data

Index = tuple[int, int, int]  # (dataset index, sample index within it, epoch)


def mix_counts(sizes: Sequence[int], ratios: Sequence[float] | None = None, total: int | None = None) -> list[int]:
    """Samples per dataset in one epoch: `total` (default: the sum of sizes) split by `ratios` (default: sizes).

    Rounding keeps the exact total (largest remainders get the leftover samples).
    """
    sizes = [int(s) for s in sizes]
    if not sizes or min(sizes) <= 0:
        raise ValueError(f"every dataset needs at least one sample, got sizes {sizes}")
    weights = np.asarray(sizes if ratios is None else ratios, dtype=np.float64)
    if len(weights) != len(sizes) or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(f"ratios {list(weights)} do not fit {len(sizes)} datasets")
    total = sum(sizes) if total is None else int(total)
    exact = weights / weights.sum() * total
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - int(counts.sum())]] += 1
    return counts.tolist()


class MixedDataset(torch.utils.data.Dataset):
    """Several datasets behind one `(dataset, sample, epoch)` index; each item gains `dataset_index`.

    A dataset with `get(index, rng)` (TopDownDataset) is given `default_rng([seed, epoch, index])`, the same draws
    as its own `rng_for` after `set_epoch(epoch)`; any other map-style dataset is simply indexed.
    """

    def __init__(self, datasets: Sequence[Any], head_index: Sequence[int] | None = None) -> None:
        self.datasets = list(datasets)
        self.head_index = list(head_index) if head_index is not None else list(range(len(self.datasets)))
        if len(self.head_index) != len(self.datasets):
            raise ValueError("one head index per dataset")

    @property
    def sizes(self) -> list[int]:
        return [len(d) for d in self.datasets]

    def __len__(self) -> int:
        return sum(self.sizes)

    def __getitem__(self, index: Index) -> dict[str, Any]:
        d, i, epoch = index
        ds = self.datasets[d]
        if hasattr(ds, "item"):  # a stream that renders per (index, epoch)
            item = ds.item(i, epoch)
        elif hasattr(ds, "get") and hasattr(ds, "seed"):
            item = ds.get(i, np.random.default_rng([ds.seed, epoch, i]))
        else:
            item = ds[i]
        item["dataset_index"] = self.head_index[d]
        return item


class MixedSampler(torch.utils.data.Sampler[Index]):
    """Yields `(dataset, sample, epoch)` for this rank: ratio-mixed, shuffled by (seed, epoch), resumable.

    `samples_per_epoch` is the epoch length over all ranks (default: the sum of dataset sizes); each rank gets
    `samples_per_epoch // world_size` of them (the remainder is dropped so every rank runs the same steps).
    """

    def __init__(
        self,
        sizes: Sequence[int],
        ratios: Sequence[float] | None = None,
        samples_per_epoch: int | None = None,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        self.sizes = [int(s) for s in sizes]
        self.counts = mix_counts(self.sizes, ratios, samples_per_epoch)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.shuffle = shuffle
        self.epoch = 0
        self.start = 0  # position within this rank's share of the epoch

    def __len__(self) -> int:
        return sum(self.counts) // self.world_size - self.start

    @property
    def per_rank(self) -> int:
        return sum(self.counts) // self.world_size

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's order and skip the first `start` samples of this rank's share (resuming)."""
        self.epoch = int(epoch)
        self.start = int(start)

    def epoch_indices(self, epoch: int) -> list[Index]:
        """All ranks' samples of `epoch`, in order, before the split across ranks."""
        rng = np.random.default_rng([self.seed, epoch])
        parts = []
        for d, (size, count) in enumerate(zip(self.sizes, self.counts, strict=True)):
            reps = -(-count // size)
            idx = np.concatenate([rng.permutation(size) if self.shuffle else np.arange(size) for _ in range(reps)])
            parts.append(np.stack([np.full(count, d), idx[:count]], axis=1))
        pairs = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)
        if self.shuffle:
            pairs = pairs[rng.permutation(len(pairs))]
        return [(int(d), int(i), int(epoch)) for d, i in pairs]

    def __iter__(self) -> Iterator[Index]:
        mine = self.epoch_indices(self.epoch)[self.rank : self.per_rank * self.world_size : self.world_size]
        return iter(mine[self.start :])

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.set_epoch(state["epoch"], state.get("start", 0))
