"""BAM metrics (MCS, relative MCS, IDR, IIR, App. C) on planted ground truth and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import bamkit.metrics as M
from bamkit.errors import ConfigError, DataError
from bamkit.published import BAM_ACC_DROP


def _rect_masks(n: int, size: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, size, size, dtype=torch.bool)
    for i in range(n):
        h, w = torch.randint(2, size // 2, (2,), generator=g).tolist()
        y, x = (
            torch.randint(0, size - h, (1,), generator=g).item(),
            torch.randint(0, size - w, (1,), generator=g).item(),
        )
        masks[i, y : y + h, x : x + w] = True
    return masks


def test_region_attribution_hand_computed():
    sal = torch.tensor([[[1.0, 0.5], [0.0, 0.25]], [[0.2, 0.4], [0.6, 0.8]]])
    masks = torch.tensor([[[1, 1], [0, 0]], [[0, 0], [0, 1]]], dtype=torch.bool)
    g = M.region_attribution(sal, masks)
    torch.testing.assert_close(g, torch.tensor([0.75, 0.8]))


def test_region_attribution_empty_mask_is_nan_and_excluded_with_count():
    sal = torch.rand(3, 4, 4)
    masks = torch.zeros(3, 4, 4, dtype=torch.bool)
    masks[0, :2] = True
    masks[2, 1:3, 1:3] = True
    g = M.region_attribution(sal, masks)
    assert torch.isnan(g[1]) and torch.isfinite(g[[0, 2]]).all()
    s = M.mcs_score(g, torch.zeros(3), torch.ones(3, dtype=torch.bool))
    assert s.n == 2 and s.excluded == {"incorrect": 0, "undefined": 1}
    assert s.value == pytest.approx(float(g[[0, 2]].double().mean()))


def test_planted_ground_truth_mcs_is_the_maximum_and_swapping_flips_sign():
    masks = _rect_masks(20)
    perfect_obj = masks.float()  # f_o attributes exactly the object
    perfect_scene = (~masks).float()  # f_s attributes exactly the scene
    g_o = M.region_attribution(perfect_obj, masks)
    g_s = M.region_attribution(perfect_scene, masks)
    correct = torch.ones(20, dtype=torch.bool)
    assert M.mcs(g_o, g_s, correct) == pytest.approx(1.0)  # g_c in [0, 1] => MCS <= 1
    assert M.mcs(g_s, g_o, correct) == pytest.approx(-1.0)
    rnd = torch.rand(20, 16, 16)
    g1, g2 = M.region_attribution(rnd, masks), M.region_attribution(torch.rand(20, 16, 16), masks)
    assert M.mcs(g1, g2, correct) == pytest.approx(-M.mcs(g2, g1, correct))


def test_identical_maps_give_mcs_zero_and_iir_one():
    masks = _rect_masks(10)
    sal = torch.rand(10, 16, 16) * 0.9 + 0.1
    g = M.region_attribution(sal, masks)
    ok = torch.ones(10, dtype=torch.bool)
    assert M.mcs(g, g.clone(), ok) == 0.0
    assert M.iir(g, g.clone(), ok) == 1.0
    assert M.relative_attribution_change(g, g.clone(), ok).value == 0.0


def test_correctness_filter_uses_the_intersection():
    g1 = torch.tensor([0.9, 0.8, 0.1, 0.7])
    g2 = torch.tensor([0.1, 0.2, 0.9, 0.3])
    correct = torch.tensor([True, True, False, True])  # pair 2 is wrong for one of the models
    s = M.mcs_score(g1, g2, correct)
    assert s.value == pytest.approx((0.8 + 0.6 + 0.4) / 3) and s.n == 3 and s.excluded["incorrect"] == 1


def test_both_correct_is_the_intersection_from_labels_or_logits():
    pred_o = torch.tensor([1, 2, 3, 0])
    logits_s = torch.nn.functional.one_hot(torch.tensor([4, 4, 1, 2]), 5).float()
    ok = M.both_correct(pred_o, torch.tensor([1, 2, 0, 0]), logits_s, torch.tensor([4, 3, 1, 2]))
    assert ok.tolist() == [True, False, False, True]
    with pytest.raises(DataError):
        M.both_correct(pred_o, pred_o[:3], pred_o, pred_o)


def test_no_correct_pair_gives_nan_with_n_zero_not_a_crash():
    g = torch.rand(5)
    none = torch.zeros(5, dtype=torch.bool)
    for fn in (M.mcs_score, M.idr_score, M.iir_score):
        s = fn(g, g, none)
        assert math.isnan(s.value) and s.n == 0 and s.excluded["incorrect"] == 5
    assert math.isnan(M.mcs(g, g, none)) and math.isnan(M.idr(g, g, none)) and math.isnan(M.iir(g, g, none))


def test_idr_planted_is_one_and_strict():
    masks = _rect_masks(30)
    # f_s's true attribution: the pasted object (unimportant) gets nothing, scene pixels get something
    with_cf = (~masks).float()
    without_cf = torch.full((30, 16, 16), 0.5)
    g_w, g_wo = M.region_attribution(with_cf, masks), M.region_attribution(without_cf, masks)
    ok = torch.ones(30, dtype=torch.bool)
    assert M.idr(g_w, g_wo, ok) == 1.0
    assert M.idr(g_wo, g_w, ok) == 0.0
    assert M.idr(g_wo, g_wo.clone(), ok) == 0.0  # ties do not count (strict <)
    hand = M.idr_per_pair(torch.tensor([0.1, 0.5, 0.3]), torch.tensor([0.2, 0.5, 0.1]))
    assert hand.tolist() == [True, False, False]


def test_random_maps_score_the_idr_baseline_within_sampling_error():
    n = 2000
    masks = _rect_masks(n, seed=1)
    g_w = M.region_attribution(torch.rand(n, 16, 16), masks)
    g_wo = M.region_attribution(torch.rand(n, 16, 16), masks)
    v = M.idr(g_w, g_wo, torch.ones(n, dtype=torch.bool))
    assert abs(v - 0.5) < 4 * math.sqrt(0.25 / n)


def test_iir_hand_computed_and_threshold():
    g_x = torch.tensor([0.5, 0.5, 0.0, 0.2])
    g_xd = torch.tensor([0.54, 0.56, 0.0, 0.2])
    ok = torch.ones(4, dtype=torch.bool)
    assert M.iir_per_pair(g_x, g_xd, t=0.1).tolist() == [True, False, False, True]  # g_c(x) = 0 fails
    assert M.iir(g_x, g_xd, ok) == 0.5
    assert M.iir(g_x, g_xd, ok, t=0.2) == 0.75
    with pytest.raises(ConfigError):
        M.iir(g_x, g_xd, ok, t=0)
    ch = M.relative_attribution_change(g_x, g_xd, ok)
    assert ch.n == 3 and ch.excluded["undefined"] == 1
    assert ch.value == pytest.approx((0.08 + 0.12 + 0.0) / 3)


def test_constant_zero_maps_are_valid_and_documented():
    masks = _rect_masks(4)
    g = M.region_attribution(torch.zeros(4, 16, 16), masks)
    assert (g == 0).all()
    ok = torch.ones(4, dtype=torch.bool)
    assert (
        M.mcs(g, g, ok) == 0.0 and M.iir(g, g, ok) == 0.0
    )  # g_c(x) = 0: the IIR pair fails (docs/metrics.md#input-independence-rate-iir)


def test_rmcs_series_and_pearson_variants():
    ks = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
    n = 8
    g_ref = torch.full((n,), 0.1)
    g_k = {k: g_ref + BAM_ACC_DROP[k] / 100 for k in ks}  # MCS_k = drop_k / 100 exactly
    ok = torch.ones(n, dtype=torch.bool)
    res = M.rmcs_series(g_k, g_ref, {k: ok for k in ks}, ok)
    assert res.ks == tuple(ks)
    np.testing.assert_allclose(res.series, [BAM_ACC_DROP[k] / 100 for k in ks], atol=1e-6)
    assert res.rho9 == pytest.approx(1.0)
    drops = [BAM_ACC_DROP[k] for k in ks] + [BAM_ACC_DROP[1.0]]
    exp = stats.pearsonr(drops, [*res.series, 0.0])
    assert res.rho10 == pytest.approx(exp.statistic) and res.p10 == pytest.approx(exp.pvalue)
    # per-k intersection with the reference model's correctness
    bad = ok.clone()
    bad[:3] = False
    res2 = M.rmcs_series(g_k, g_ref, {k: (bad if k == 0.5 else ok) for k in ks}, ok)
    assert res2.n[ks.index(0.5)] == 5 and res2.n[0] == n
    with pytest.raises(DataError):
        M.rmcs_series(g_k, g_ref, {k: ok for k in ks}, ok, acc_drop={0.1: 1.0})


def test_random_region_masks_other_mask_moves_another_rows_mask():
    masks = torch.zeros(6, 20, 20, dtype=torch.bool)
    for i in range(6):  # distinct areas identify the source row
        masks[i, 2 : 2 + i + 2, 3:6] = True
    areas = masks.sum((1, 2)).tolist()
    out = M.random_region_masks(masks, seed=3)
    assert out.shape == masks.shape and out.dtype == torch.bool
    for i in range(6):
        a = int(out[i].sum())
        assert a in areas and a != areas[i]  # another row's mask, whole (it always fits)
    assert torch.equal(out, M.random_region_masks(masks, seed=3))
    assert not torch.equal(out, M.random_region_masks(masks, seed=4))
    empty = torch.zeros(3, 8, 8, dtype=torch.bool)
    assert not M.random_region_masks(empty).any()


def test_random_region_masks_rectangle_has_equal_area():
    masks = _rect_masks(50, size=32, seed=5)
    out = M.random_region_masks(masks, mode="rectangle", seed=0)
    for i in range(50):
        ys, xs = out[i].nonzero(as_tuple=True)
        h, w = int(ys.max() - ys.min() + 1), int(xs.max() - xs.min() + 1)
        assert h * w == int(out[i].sum())  # a filled rectangle
        assert abs(h * w - int(masks[i].sum())) <= h + w  # equal area up to rounding
    with pytest.raises(ConfigError):
        M.random_region_masks(masks, mode="circle")


def test_random_region_baseline_is_below_the_perfect_score():
    masks = _rect_masks(200, size=32, seed=2)
    perfect = masks.float()
    rnd = M.random_region_masks(masks, seed=0)
    ok = torch.ones(200, dtype=torch.bool)
    real = M.mcs(M.region_attribution(perfect, masks), M.region_attribution(1 - perfect, masks), ok)
    base = M.mcs(M.region_attribution(perfect, rnd), M.region_attribution(1 - perfect, rnd), ok)
    assert real == pytest.approx(1.0) and base < 0.0  # random regions mostly miss the object


def test_bad_inputs_raise_bamkit_errors():
    with pytest.raises(DataError):
        M.region_attribution(torch.rand(2, 4, 4), torch.ones(2, 5, 5, dtype=torch.bool))
    with pytest.raises(DataError):
        M.region_attribution(torch.rand(2, 3, 4, 4), torch.ones(2, 3, 4, 4, dtype=torch.bool))
    with pytest.raises(DataError):
        M.mcs(torch.rand(3), torch.rand(4), torch.ones(3, dtype=torch.bool))
    with pytest.raises(DataError):
        M.mcs(torch.rand(3), torch.rand(3), torch.ones(4, dtype=torch.bool))


def test_random_regions_are_one_implementation_and_do_not_depend_on_the_batch():
    """The tensor form equals the keyed form the evaluate stage uses, and a row's region depends only on
    (seed, key): drawing a subset of keys gives the same regions for those keys."""
    import numpy as np

    from bamkit.metrics.bam import keyed_random_regions

    g = torch.Generator().manual_seed(1)
    masks = torch.zeros(6, 12, 12, dtype=torch.bool)
    for i in range(6):
        y, x = torch.randint(0, 8, (2,), generator=g).tolist()
        masks[i, y : y + 3 + i % 2, x : x + 2 + i % 3] = True
    full = M.random_region_masks(masks, seed=5)
    pool = np.arange(6)
    keyed = keyed_random_regions(lambda r: masks.numpy()[r], pool, pool, pool, (12, 12), 5, "tensor")
    assert torch.equal(full, torch.from_numpy(keyed))
    part = keyed_random_regions(lambda r: masks.numpy()[r], pool[[4, 1]], pool, pool, (12, 12), 5, "tensor")
    assert np.array_equal(part, keyed[[4, 1]])
    # each region is another row's mask, moved: same pixel count as its donor, never the row's own mask
    counts = masks.flatten(1).sum(1)
    assert all(int(full[i].sum()) in counts.tolist() for i in range(6))
