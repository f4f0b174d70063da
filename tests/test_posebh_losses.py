"""PoseBH building blocks against hand-computed small cases: Sinkhorn-Knopp, PPC, PPD, the momentum update,
CSS matching and fusion, clusters."""

from __future__ import annotations

import math

import pytest
import torch

from poseadapt.adapt import posebh


def test_sinkhorn_knopp_two_by_two_by_hand() -> None:
    # Q = exp(L / eps)^T = [[e, 1], [1, e]]: one row/column pass gives [[e, 1], [1, e]] / (e + 1)
    q = posebh.sinkhorn_knopp(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), eps=1.0, iters=3)
    e = math.e
    torch.testing.assert_close(q, torch.tensor([[e, 1.0], [1.0, e]]) / (e + 1))


def test_sinkhorn_knopp_balances_prototypes() -> None:
    # four pixels all closest to prototype 0: argmax would give [0, 0, 0, 0]; the balanced assignment splits them
    logits = torch.tensor([[0.9, 0.1], [0.9, 0.5], [0.8, 0.7], [0.9, 0.2]])
    q = posebh.sinkhorn_knopp(logits, eps=0.05, iters=3)
    torch.testing.assert_close(q.sum(dim=1), torch.ones(4))  # every pixel's assignment sums to 1
    assert q.argmax(dim=1).tolist() == [0, 0, 1, 0]  # the pixel relatively closest to prototype 1 goes there
    assert q.sum(dim=0)[1] > 1.0  # prototype 1 gets mass (plain softmax: ~0)
    many = posebh.sinkhorn_knopp(logits, eps=0.05, iters=200)
    torch.testing.assert_close(many.sum(dim=0), torch.full((2,), 2.0), rtol=0.02, atol=0.02)  # n / M each


def test_ppc_and_ppd_by_hand() -> None:
    logits = torch.tensor([[0.9, 0.1], [0.2, 0.8]])
    target = torch.tensor([0, 1])
    want = (math.log(1 + math.exp(-0.8)) + math.log(1 + math.exp(-0.6))) / 2
    assert posebh.ppc_loss(logits, target).item() == pytest.approx(want, rel=1e-6)
    assert posebh.ppc_loss(logits, target, temperature=0.5).item() == pytest.approx(
        (math.log(1 + math.exp(-1.6)) + math.log(1 + math.exp(-1.2))) / 2, rel=1e-6
    )
    assert posebh.ppd_loss(logits, target).item() == pytest.approx((0.1**2 + 0.2**2) / 2)


def test_momentum_update_by_hand_and_global_indexing() -> None:
    bank = posebh.PrototypeBank([2, 3], per_keypoint=2, dim=2)  # dataset 1 owns global rows 2..4
    bank.prototypes.zero_()
    bank.prototypes[..., 0] = 1.0  # every prototype [1, 0]
    before = bank.prototypes.clone()
    emb = torch.tensor([[0.0, 1.0], [0.0, 1.0], [0.6, 0.8]])
    keypoint = torch.tensor([1, 1, 2])  # LOCAL keypoints of dataset 1
    proto = torch.tensor([0, 0, 1])
    conf = torch.tensor([1.0, 0.5, 1.0])
    moved = bank.update(1, emb, keypoint, proto, conf, gamma=0.5)
    assert moved.tolist() == [[False, False], [True, False], [False, True]]
    s = 1 / math.sqrt(2)
    torch.testing.assert_close(bank.prototypes[3, 0], torch.tensor([s, s]))  # normalise(0.5 [1,0] + 0.5 [0,1])
    torch.testing.assert_close(bank.prototypes[4, 1], torch.nn.functional.normalize(torch.tensor([0.8, 0.4]), dim=0))
    untouched = torch.ones(5, 2, dtype=torch.bool)
    untouched[3, 0] = untouched[4, 1] = False
    assert torch.equal(bank.prototypes[untouched], before[untouched])  # dataset 0 and unassigned rows kept


def test_prototype_heatmap_is_abs_cos_max_over_m() -> None:
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, -1.0]]), dim=1)  # 2 pixels, D=2
    emb = emb.t().reshape(1, 2, 1, 2)  # (B=1, D=2, H=1, W=2)
    protos = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # K=1, M=2
    hm = posebh.prototype_heatmaps(emb, protos)
    assert hm.shape == (1, 1, 1, 2)
    torch.testing.assert_close(hm, torch.full((1, 1, 1, 2), 1 - 1e-4))  # |cos| = 1 for both (clamped)


def _peaks(points: list[tuple[int, int, float]], size: tuple[int, int] = (10, 10)) -> torch.Tensor:
    hm = torch.zeros(1, len(points), *size)
    for k, (x, y, c) in enumerate(points):
        hm[0, k, y, x] = c
    return hm


def test_css_matching_and_fusion_by_hand() -> None:
    head = _peaks([(5, 3, 0.8), (5, 3, 0.9), (4, 4, 0.9), (2, 2, 0.2)])
    proto = _peaks([(6, 3, 0.4), (5, 6, 0.9), (4, 8, 0.9), (2, 2, 0.9)])
    point, weight = posebh.css_pseudo_labels(head, proto, threshold=0.25, max_distance=2.1)
    # joint 0: 1 px apart -> kept; point = (0.8 * 5 + 0.4 * 6) / 1.2 in x, 3 in y; weight = min(0.8, 0.4)
    torch.testing.assert_close(point[0, 0], torch.tensor([6.4 / 1.2, 3.0]))
    assert weight[0, 0].item() == pytest.approx(0.4)
    # joint 1: 3 px apart in y -> dropped; joint 2: same x, y 4 vs 8 (the reference's x-vs-y bug would keep it)
    # -> dropped; joint 3: the head is not confident -> dropped
    assert weight[0, 1:].tolist() == [0.0, 0.0, 0.0]


def test_gaussian_heatmap_peak_and_width() -> None:
    hm = posebh.gaussian_heatmaps(torch.tensor([[[3.0, 2.0]]]), (5, 7), sigma=2.0)
    assert hm[0, 0, 2, 3].item() == pytest.approx(1.0)
    assert hm[0, 0, 2, 5].item() == pytest.approx(math.exp(-4 / 8))


def test_foreground_pixels_label_and_confidence() -> None:
    t = torch.zeros(1, 2, 2, 2)
    t[0, 0, 0, 0], t[0, 1, 0, 0] = 0.3, 0.7  # pixel 0: keypoint 1 wins
    t[0, 0, 1, 1] = 0.5  # pixel 3: keypoint 0
    t[0, 1, 1, 0] = 0.9  # pixel 2: keypoint 1, but keypoint 1 is unlabelled in the second call
    ids, label, conf = posebh.foreground_pixels(t, torch.ones(1, 2))
    assert ids.tolist() == [0, 2, 3] and label.tolist() == [1, 1, 0]
    torch.testing.assert_close(conf, torch.tensor([0.7, 0.9, 0.5]))
    ids, label, _ = posebh.foreground_pixels(t, torch.tensor([[1.0, 0.0]]))
    assert ids.tolist() == [0, 3] and label.tolist() == [0, 0]


def test_clusters_group_near_prototypes_and_members_are_prototype_ids() -> None:
    a, b = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0])
    noise = 0.01 * torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    points = torch.nn.functional.normalize(torch.stack([a, a, a, b, b, b]) + noise, dim=1)
    cent, labels = posebh.soft_kmeans(points, 2, seed=1)
    assert len(set(labels[:3].tolist())) == 1 and len(set(labels[3:].tolist())) == 1
    assert labels[0] != labels[3]
    members = posebh.cluster_members(points, cent, 3)
    assert sorted(members[labels[0]].tolist()) == [0, 1, 2] and sorted(members[labels[3]].tolist()) == [3, 4, 5]
