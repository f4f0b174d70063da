"""The ratio-mixing sampler: exact counts, permutations, rank splits, resume positions; dataset tags; collate."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from poseadapt.train.batch import collate
from poseadapt.train.sampler import MixedDataset, MixedSampler, mix_counts


def test_mix_counts_split_the_total_by_ratio_exactly() -> None:
    assert mix_counts([10, 30]) == [10, 30]
    assert mix_counts([10, 30], [1, 1]) == [20, 20]
    assert mix_counts([10, 30], [3, 1], total=101) == [76, 25]
    assert sum(mix_counts([7, 5, 3], [0.2, 0.5, 0.3], total=1000)) == 1000
    with pytest.raises(ValueError):
        mix_counts([0, 5])


def test_single_dataset_epochs_are_seeded_permutations() -> None:
    s = MixedSampler([11], seed=3)
    orders = []
    for epoch in range(3):
        s.set_epoch(epoch)
        idx = list(s)
        assert [d for d, _, _ in idx] == [0] * 11 and {e for _, _, e in idx} == {epoch}
        assert sorted(i for _, i, _ in idx) == list(range(11))
        orders.append([i for _, i, _ in idx])
    assert orders[0] != orders[1] != orders[2]
    again = MixedSampler([11], seed=3)
    again.set_epoch(1)
    assert [i for _, i, _ in again] == orders[1]


def test_ratio_mixing_cycles_small_datasets_before_repeating() -> None:
    s = MixedSampler([4, 100], ratios=[1, 1], samples_per_epoch=40, seed=0)
    idx = list(s)
    counts = Counter(d for d, _, _ in idx)
    assert counts == {0: 20, 1: 20}
    small = Counter(i for d, i, _ in idx if d == 0)
    assert set(small.values()) == {5}  # 20 draws of 4 samples: five full passes
    big = [i for d, i, _ in idx if d == 1]
    assert len(set(big)) == 20  # 20 of 100, no repeats
    assert [d for d, _, _ in idx] != sorted(d for d, _, _ in idx)  # the datasets are interleaved


def test_ranks_get_disjoint_shares_and_resume_skips_exactly() -> None:
    ranks = [MixedSampler([10, 7], seed=1, rank=r, world_size=3) for r in range(3)]
    shares = [list(r) for r in ranks]
    assert all(len(s) == 17 // 3 == ranks[0].per_rank for s in shares)
    flat = [x for s in shares for x in s]
    assert len(set(flat)) == len(flat)
    whole = ranks[0].epoch_indices(0)
    assert sorted(flat) == sorted(whole[: 3 * 5])
    ranks[1].set_epoch(0, start=2)
    assert list(ranks[1]) == shares[1][2:] and len(ranks[1]) == 3


class _Numbers(torch.utils.data.Dataset):
    def __init__(self, k: int, n: int) -> None:
        self.k, self.n = k, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {
            "image": np.full((4, 3, 3), i, np.uint8),
            "target": np.full((self.k, 2, 2), float(i), np.float32),
            "target_weight": np.ones(self.k, np.float32),
        }


def test_mixed_dataset_tags_heads_and_collate_pads_keypoints() -> None:
    data = MixedDataset([_Numbers(3, 5), _Numbers(5, 2)], head_index=[1, 0])
    assert data.sizes == [5, 2] and len(data) == 7
    a, b = data[(0, 4, 0)], data[(1, 1, 0)]
    assert a["dataset_index"] == 1 and b["dataset_index"] == 0
    batch = collate([a, b])
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (2, 4, 3, 3)
    assert batch["target"].shape == (2, 5, 2, 2) and batch["dataset_index"].tolist() == [1, 0]
    assert batch["target_weight"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert torch.all(batch["target"][0, 3:] == 0) and torch.all(batch["target"][0, :3] == 4)


def test_topdown_items_draw_augmentation_from_seed_epoch_index() -> None:
    from poseadapt.codecs import UDPHeatmap
    from poseadapt.data.coco import coco_keypoints_from_dict
    from poseadapt.data.dataset import TopDownDataset
    from poseadapt.synth import render_dataset

    images, coco = render_dataset("adult", n=3, size=96, seed=0)
    data = coco_keypoints_from_dict(coco, "coco17")
    memory = {int(info["id"]): im[..., ::-1].copy() for info, im in zip(coco["images"], images, strict=True)}
    ds = TopDownDataset(data, None, UDPHeatmap((48, 64), (12, 16), 1.0), (48, 64), images_in_memory=memory, seed=7)
    mixed = MixedDataset([ds])
    ds.set_epoch(2)
    direct = ds[1]
    tagged = mixed[(0, 1, 2)]
    assert np.array_equal(direct["image"], tagged["image"]) and np.array_equal(direct["target"], tagged["target"])
    other_epoch = mixed[(0, 1, 3)]
    assert not np.array_equal(direct["image"], other_epoch["image"])  # augmentation changes with the epoch
