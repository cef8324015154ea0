"""RCAP, deletion/insertion AUC and AUPC: hand-computed cases on linear models, a slow reference loop, and
GAG's propositions (a perfect map beats its reversed / misplaced version)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torchvision.transforms import v2

import bamkit.metrics as M
from bamkit.errors import DataError
from bamkit.metrics.functional import gaussian_blur

ID = {"mean": (0.0,), "std": (1.0,)}  # 1-channel model space == pixel space: black is 0


class RegionLogit(nn.Module):
    """Two classes: logit_1 = a · Σ_{region} x + b, logit_0 = 0 (so p_1 = sigmoid(a·Σ + b))."""

    def __init__(self, region: torch.Tensor, a: float = 0.5, b: float = 0.0):
        super().__init__()
        self.register_buffer("w", region.float() * a)
        self.b = b

    def forward(self, x):
        z = (x * self.w).flatten(1).sum(1) + self.b
        return torch.stack([torch.zeros_like(z), z], 1)


def sig(v):
    return 1 / (1 + math.exp(-v))


def misplaced(m: torch.Tensor, remain: float = 0.07, mis: float = 0.10, seed: int = 0) -> torch.Tensor:
    """GAG's "reversed" map (docs/methods.md): keep the top ``remain``, swap the lowest ``mis`` with the band just
    below the kept top (both shuffled)."""
    g = torch.Generator().manual_seed(seed)
    flat = m.reshape(-1).clone()
    n = flat.numel()
    order = torch.argsort(flat)
    n_keep, n_mis = int(n * remain), int(n * mis)
    low = order[:n_mis]
    band = order[n - n_keep - n_mis : n - n_keep]
    lv, bv = flat[low].clone(), flat[band].clone()
    flat[low] = bv[torch.randperm(n_mis, generator=g)]
    flat[band] = lv[torch.randperm(n_mis, generator=g)]
    return flat.reshape(m.shape)


# --------------------------------------------------------------------------------------------- RCAP
def test_rcap_hand_computed_on_a_4x4_map():
    sal = (torch.arange(1, 17, dtype=torch.float32) / 16).reshape(1, 4, 4)  # distinct, max 1.0
    x = torch.ones(1, 1, 4, 4)
    model = RegionLogit(torch.ones(4, 4), a=0.5)
    res = M.rcap_details(model, x, sal, torch.tensor([1]), **ID)
    # rates .5..9 -> sorted indices 7, 8, 10, 11, 13 -> q = 8,9,11,12,14 (/16); descending steps recover the
    # pixels above 14/16, 12/16, 11/16, 9/16, 8/16: 2, 4, 5, 7, 8 pixels with mass 31, 58, 70, 91, 100 (/16).
    counts = [2, 4, 5, 7, 8]
    hits = [31 / 136, 58 / 136, 70 / 136, 91 / 136, 100 / 136]
    probs = [sig(0.5 * c) for c in counts]
    np.testing.assert_allclose(res.hit_rate[0].numpy(), hits, rtol=1e-6)
    np.testing.assert_allclose(res.prob[0].numpy(), probs, rtol=1e-6)
    expected = float(np.mean([h * p for h, p in zip(hits, probs)]))
    assert float(res.rcap[0]) == pytest.approx(expected, rel=1e-6)
    assert float(M.rcap(model, x, sal, torch.tensor([1]), **ID)[0]) == pytest.approx(expected, rel=1e-6)


def test_rcap_head_rule_drops_a_threshold_equal_to_one():
    v = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16, 16, 16], dtype=torch.float32) / 16
    sal = v.reshape(1, 4, 4)  # q_0.9 (index 13) == 1.0, the other four distinct
    x = torch.ones(1, 1, 4, 4)
    model = RegionLogit(torch.ones(4, 4), a=0.5)
    res = M.rcap_details(model, x, sal, torch.tensor([1]), **ID)
    assert torch.isnan(res.hit_rate[0, 0]) and torch.isfinite(res.hit_rate[0, 1:]).all()
    # remaining thresholds 12/16, 11/16, 9/16, 8/16 -> 3+1, 5, 7, 8 pixels above
    total = float(v.sum())
    above = [v[v > t / 16] for t in (12, 11, 9, 8)]
    exp = np.mean([float(a.sum()) / total * sig(0.5 * len(a)) for a in above])
    assert float(res.rcap[0]) == pytest.approx(exp, rel=1e-6)


def test_rcap_saturated_map_recovers_every_nonzero_pixel_and_zero_map_scores_zero():
    x = torch.ones(2, 1, 4, 4)
    model = RegionLogit(torch.ones(4, 4), a=0.5)
    sal = torch.zeros(2, 4, 4)
    sal[0] = 1.0  # constant ones: thresholds all 1 -> not distinct -> lower bound 0: everything recovered
    out = M.rcap(model, x, sal, torch.tensor([1, 1]), **ID)
    assert float(out[0]) == pytest.approx(sig(0.5 * 16), rel=1e-6)
    assert float(out[1]) == 0.0  # all-zero map: nothing recovered, hit rate defined as 0 (never NaN)


def _rcap_reference(model, x, sal, target, lower_bound=50, interval=10):
    """docs/metrics.md#rcap step by step, one image at a time (the GAG loop: partitions, cumulative recovery)."""
    out = []
    for i in range(x.shape[0]):
        m = sal[i]
        v = torch.sort(m.flatten()).values
        rates = [round(float(r), 2) for r in np.arange(lower_bound / 100, 1, interval / 100)]
        q = [v[int(v.numel() * r) - 1].item() for r in rates][::-1]
        if len(set(q)) == len(q) and len(q) > 1 and q[0] == 1:
            q = q[1:]
        img, upper, terms = torch.zeros_like(x[i]), 1.0, []
        for qk in q:
            lower = qk if qk < 1 else 0.0
            img = torch.where((m > lower) & (m <= upper), x[i], img)  # black = 0 in this 1-channel space
            hit = m[(m > lower) & (m <= 1)].sum().item() / m.sum().item()
            with torch.no_grad():
                terms.append(hit * model(img[None]).softmax(1)[0, target[i]].item())
            upper = lower
        out.append(float(np.mean(terms)))
    return out


@pytest.mark.parametrize("kind", ["ties", "saturated", "sparse"])
def test_rcap_matches_the_reference_loop_on_tied_and_saturated_maps(kind):
    g = torch.Generator().manual_seed(0)
    raw = torch.rand(4, 10, 10, generator=g)
    if kind == "ties":
        sal = (raw * 4).round() / 4  # five levels: many ties, 1.0 present
    elif kind == "saturated":
        sal = (raw / 0.7).clamp(max=1.0)  # ~30 % at exactly 1.0 (a p99-clipped-like map)
    else:
        sal = torch.where(raw > 0.85, raw, torch.zeros_like(raw))  # mostly zeros
        sal = sal / sal.amax((1, 2), keepdim=True)
    x = torch.rand(4, 1, 10, 10, generator=g)
    model = RegionLogit(torch.ones(10, 10), a=0.3, b=-10.0)
    t = torch.ones(4, dtype=torch.long)
    got = M.rcap(model, x, sal, t, **ID)
    np.testing.assert_allclose(got.numpy(), _rcap_reference(model, x, sal, t), rtol=1e-5, atol=1e-7)


def test_rcap_batched_equals_per_image_and_rejects_unclipped_maps():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)
    ).eval()
    x = torch.randn(4, 3, 8, 8)
    sal = torch.rand(4, 8, 8)
    t = torch.tensor([0, 1, 2, 3])
    full = M.rcap(model, x, sal, t, batch_size=64)
    single = torch.cat(
        [M.rcap(model, x[i : i + 1], sal[i : i + 1], t[i : i + 1], batch_size=1) for i in range(4)]
    )
    torch.testing.assert_close(full, single)
    with pytest.raises(DataError):
        M.rcap(model, x, sal * 2, t)
    with pytest.raises(DataError):
        M.rcap(model, x, sal[:, :4], t)


# --------------------------------------------------------------------------------------------- GAG props
def _region_setup(size=16, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    region = torch.zeros(size, size, dtype=torch.bool)
    region[2:8, 3:9] = True  # 36 of 256 pixels carry all the evidence
    x = region.float().expand(n, 1, size, size).clone()  # evidence in the region, black elsewhere
    perfect = torch.where(
        region,
        0.5 + 0.5 * torch.rand(n, size, size, generator=g),
        0.4 * torch.rand(n, size, size, generator=g),
    )
    perfect = (perfect - perfect.amin((1, 2), keepdim=True)) / (
        perfect.amax((1, 2), keepdim=True) - perfect.amin((1, 2), keepdim=True)
    )
    model = RegionLogit(region, a=0.25, b=-4.5)  # p_1 ~ 0.99 on the full image, ~0.01 with the region gone
    return model, x, perfect, torch.ones(n, dtype=torch.long)


@pytest.mark.parametrize("reverse", ["flip", "misplaced"])
def test_gag_propositions_perfect_beats_reversed(reverse):
    model, x, perfect, t = _region_setup()
    rev = (
        1 - perfect
        if reverse == "flip"
        else torch.stack([misplaced(m, seed=i) for i, m in enumerate(perfect)])
    )
    r_p, r_r = M.rcap(model, x, perfect, t, **ID), M.rcap(model, x, rev, t, **ID)
    assert (r_p > r_r).all()
    for proto in ("gag10", "rise"):
        d_p = M.deletion_auc(model, x, perfect, t, protocol=proto, **ID).auc
        d_r = M.deletion_auc(model, x, rev, t, protocol=proto, **ID).auc
        i_p = M.insertion_auc(model, x, perfect, t, protocol=proto, **ID).auc
        i_r = M.insertion_auc(model, x, rev, t, protocol=proto, **ID).auc
        assert (d_p < d_r).all(), proto  # DAUC: lower is better
        assert (i_p >= i_r).all() and (i_p.mean() > i_r.mean()), proto


# --------------------------------------------------------------------------------------------- DAUC/IAUC
def test_gag10_deletion_trapezoid_on_a_known_curve():
    sal = torch.randperm(100).float().reshape(1, 10, 10) / 99  # distinct values
    x = torch.ones(1, 1, 10, 10)
    model = RegionLogit(torch.ones(10, 10), a=0.05, b=-2.0)
    res = M.deletion_auc(model, x, sal, torch.tensor([1]), fill="black", **ID)
    kept = [100 - 10 * k for k in range(10)]  # 0 %, 10 %, ... 90 % deleted
    curve = [sig(0.05 * c - 2.0) for c in kept]
    np.testing.assert_allclose(res.curve[0].numpy(), curve, rtol=1e-6)
    xs = np.linspace(0.1, 1.0, 10)
    assert float(res.auc[0]) == pytest.approx(float(np.trapezoid(curve, xs)), rel=1e-6)
    # the default gag10 fill is 0 in model space (the mean colour); with mean 0 that is black too
    np.testing.assert_allclose(M.deletion_auc(model, x, sal, torch.tensor([1]), **ID).auc, res.auc)


def test_rise_deletion_hand_computed():
    sal = torch.arange(16, dtype=torch.float32).reshape(1, 4, 4)  # any real ranking works for RISE
    x = torch.ones(1, 1, 4, 4)
    model = RegionLogit(torch.ones(4, 4), a=0.5, b=-4.0)
    res = M.deletion_auc(model, x, sal, torch.tensor([1]), protocol="rise", pixels_per_step=4, **ID)
    curve = [sig(0.5 * c - 4.0) for c in (16, 12, 8, 4, 0)]
    np.testing.assert_allclose(res.curve[0].numpy(), curve, rtol=1e-6)
    # RISE's auc(): (sum - y0/2 - yn/2) / n_steps
    assert float(res.auc[0]) == pytest.approx((sum(curve) - curve[0] / 2 - curve[-1] / 2) / 4, rel=1e-6)


def test_gag10_insertion_matches_a_slow_reference_loop():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)
    ).eval()
    x = torch.randn(2, 3, 40, 40)
    sal = torch.rand(2, 40, 40)
    t = torch.tensor([0, 2])
    res = M.insertion_auc(model, x, sal, t, batch_size=7)
    blur = v2.GaussianBlur(kernel_size=33, sigma=16)
    for i in range(2):
        v = torch.sort(sal[i].flatten()).values
        qs = [v[int(1600 * r) - 1] for r in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)][::-1]
        b = blur(x[i])
        with torch.no_grad():
            probs = [model(torch.where(sal[i] > q, x[i], b)[None]).softmax(1)[0, t[i]].item() for q in qs]
        np.testing.assert_allclose(res.curve[i].numpy(), probs, rtol=1e-5, atol=1e-6)
        assert float(res.auc[i]) == pytest.approx(
            float(np.trapezoid(probs, np.linspace(0.1, 1, 10))), rel=1e-5
        )


def test_gaussian_blur_matches_torchvision():
    x = torch.randn(2, 3, 40, 36)
    ref = v2.GaussianBlur(kernel_size=33, sigma=16)(x)
    torch.testing.assert_close(gaussian_blur(x, 33, 16.0), ref, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------------------------- AUPC
def test_aupc_window_selection_is_greedy_and_non_overlapping():
    from bamkit.metrics.faithfulness import _select_windows

    heat = torch.zeros(1, 20, 20)
    heat[0, 4:7, 4:7] = 5.0  # strongest window at (4,4)
    heat[0, 5:8, 5:8] += 1.0  # overlaps the first: must be skipped
    heat[0, 12:15, 2:5] = 3.0  # second at (12,2)
    wins = _select_windows(heat, 3, 3)[0].tolist()
    assert wins[0] == 4 * 20 + 4 and wins[1] == 12 * 20 + 2
    y, x = divmod(wins[2], 20)
    assert not (abs(y - 4) < 3 and abs(x - 4) < 3) and not (abs(y - 12) < 3 and abs(x - 2) < 3)


def test_aupc_ignored_region_is_flat_and_relevant_region_is_more_sensitive():
    size = 24
    region = torch.zeros(size, size, dtype=torch.bool)
    region[2:10, 2:10] = True
    model = RegionLogit(region, a=0.1, b=0.5)
    x = torch.ones(2, 1, size, size)
    good = torch.where(region, 1.0, 0.0).expand(2, -1, -1).clone()
    bad = torch.zeros(2, size, size)
    bad[:, 14:22, 14:22] = 1.0  # points at pixels the model ignores
    t = torch.ones(2, dtype=torch.long)
    r_bad = M.aupc(model, x, bad, t, kernel_size=3, n_regions=4, n_perturbations=8, seed=0, **ID)
    assert torch.allclose(r_bad.curve, torch.ones_like(r_bad.curve))  # logit never moves
    assert torch.allclose(r_bad.aupc, torch.full((2,), 4.0))  # Simpson of 5 ones, dx = 1
    r_good = M.aupc(model, x, good, t, kernel_size=3, n_regions=4, n_perturbations=8, seed=0, **ID)
    assert (r_good.aupc < r_bad.aupc).all()  # uniform patches lower Σ over the relevant region
    assert (r_good.curve[:, 1:] < 1).all() and (r_good.curve[:, 1:].diff(dim=1) < 0).all()  # accumulates
    again = M.aupc(model, x, good, t, kernel_size=3, n_regions=4, n_perturbations=8, seed=0, **ID)
    torch.testing.assert_close(again.aupc, r_good.aupc)  # seeded
    chunked = M.aupc(
        model, x, good, t, kernel_size=3, n_regions=4, n_perturbations=8, seed=0, batch_size=8, **ID
    )
    torch.testing.assert_close(chunked.curve, r_good.curve)  # one image per forward pass: same result
    kw = {"kernel_size": 3, "n_regions": 4, "n_perturbations": 8, **ID}
    both = M.aupc(model, x, good, t, seeds=[11, 12], **kw)
    for i, sd in enumerate((11, 12)):  # per-image seeds: independent of the batch an image falls in
        one = M.aupc(model, x[i : i + 1], good[i : i + 1], t[i : i + 1], seed=sd, **kw)
        torch.testing.assert_close(both.curve[i : i + 1], one.curve)


def test_aupc_stops_when_no_window_is_left():
    model = RegionLogit(torch.ones(8, 8), a=0.1, b=1.0)
    x = torch.ones(1, 1, 8, 8)
    res = M.aupc(
        model, x, torch.rand(1, 8, 8), torch.tensor([1]), kernel_size=3, n_regions=30, n_perturbations=4, **ID
    )
    # 5×5 window positions, blocked ±2: at most 4 non-overlapping windows fit
    assert int(res.n_regions[0]) <= 4 and torch.isnan(res.curve[0, int(res.n_regions[0]) + 1 :]).all()
    assert math.isfinite(float(res.aupc[0]))


@pytest.mark.gpu
def test_cpu_equals_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    model, x, sal, t = _region_setup(size=32, n=4)
    cpu = M.rcap(model, x, sal, t, **ID)
    gpu = M.rcap(model.cuda(), x.cuda(), sal.cuda(), t.cuda(), **ID)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)
    d_cpu = M.deletion_auc(model.cpu(), x, sal, t, **ID).auc
    d_gpu = M.deletion_auc(model.cuda(), x.cuda(), sal.cuda(), t.cuda(), **ID).auc
    torch.testing.assert_close(d_gpu.cpu(), d_cpu, rtol=1e-4, atol=1e-5)
