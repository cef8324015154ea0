"""``to_saliency`` on hand-computed cases, against numpy's percentile, and on the degenerate maps of docs/conventions.md#saliency-modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bamkit.attribution.postprocess import MODES, to_saliency
from bamkit.errors import ConfigError


def test_bam_positive_sum_and_p99_clip_matches_numpy():
    a = torch.randn(2, 3, 10, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = to_saliency(a, "bam")
    for j in range(2):
        m = np.clip(a[j].numpy(), 0, None).sum(0)  # BAM visualize_pos_attr
        lo, hi = m.min(), np.percentile(m, 99)
        ref = np.clip((m - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(got[j].numpy(), ref, rtol=1e-12, atol=1e-12)
    assert int((got == 1).sum()) >= 2  # ≥ 1 % of the 2·100 pixels saturate at the p99 clip


def test_bam_hand_computed():
    a = torch.zeros(1, 2, 1, 4)
    a[0, 0, 0] = torch.tensor([1.0, -5.0, 2.0, 3.0])
    a[0, 1, 0] = torch.tensor([1.0, 1.0, -1.0, 0.0])
    # positive sums: [2, 1, 2, 3]; min 1; p99 of [1,2,2,3] = 2 + 0.97·(3−2) = 2.97
    expected = torch.tensor([[[1 / 1.97, 0.0, 1 / 1.97, 1.0]]])
    torch.testing.assert_close(to_saliency(a, "bam_pos_p99"), expected)


def test_bam_sparse_map_falls_back_to_max():
    """p99 == min when ≥ 99 % of pixels are 0 (GB/GradCAM-like): BAM divides by zero, bamkit uses max."""
    a = torch.zeros(1, 1, 20, 20)
    a[0, 0, 3, 4] = 2.0
    a[0, 0, 5, 6] = 4.0
    sal, flags = to_saliency(a, "bam", return_flags=True)
    assert not flags.any()
    assert float(sal[0, 5, 6]) == 1.0 and float(sal[0, 3, 4]) == 0.5 and float(sal.sum()) == 1.5


@pytest.mark.parametrize("mode", ["bam", "abs_minmax", "abs_p99"])
def test_degenerate_maps_are_zero_and_flagged(mode):
    a = torch.randn(4, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    a[1] = 0.0  # all zero
    a[2] = -1.0 if mode == "bam" else 0.7  # no positive part / constant
    a[3, 0, 0, 0] = float("nan")
    sal, flags = to_saliency(a, mode, return_flags=True)
    assert flags.tolist() == [False, True, True, True]
    assert torch.isfinite(sal).all()
    assert float(sal[1].abs().sum()) == 0.0 and float(sal[2].abs().sum()) == 0.0
    # a NaN is treated as 0 and the rest of the map is still scaled
    assert 0.99 <= float(sal[3].max()) <= 1.0


def test_abs_minmax_matches_reference_and_all_nan_gives_ones():
    a = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(2))
    a[1] = float("nan")
    sal, flags = to_saliency(a, "abs_sum_minmax", return_flags=True)
    m = a[0].abs().sum(0)
    torch.testing.assert_close(sal[0], (m - m.min()) / (m.max() - m.min()))
    assert torch.equal(sal[1], torch.ones(6, 6)) and flags.tolist() == [
        False,
        True,
    ]  # GAG min_max_norm_matrix


def test_signed_chan_mean_abs_raw_flat():
    a = torch.tensor([[[[1.0, -2.0]], [[3.0, 0.5]]]])  # (1, 2, 1, 2)
    torch.testing.assert_close(to_saliency(a, "signed_sum"), torch.tensor([[[4.0, -1.5]]]))
    torch.testing.assert_close(to_saliency(a, "chan_mean_abs"), torch.tensor([[[2.0, 1.25]]]))
    torch.testing.assert_close(to_saliency(a, "raw_flat"), torch.tensor([[1.0, -2.0, 3.0, 0.5]]))
    _, flags = to_saliency(torch.zeros(1, 2, 3, 3), "signed", return_flags=True)
    assert flags.tolist() == [True]


def test_abs_p99_uses_absolute_signed_sum():
    a = torch.zeros(1, 2, 1, 3)
    a[0, 0, 0] = torch.tensor([-4.0, 1.0, 0.0])
    a[0, 1, 0] = torch.tensor([0.0, 1.0, 2.0])
    # signed sum [−4, 2, 2] → |·| [4, 2, 2]; min 2; p99 = 2 + 0.98·2 = 3.96
    expected = torch.tensor([[[1.0, 0.0, 0.0]]])
    torch.testing.assert_close(to_saliency(a, "abs_p99"), expected)


def test_output_shapes_and_dtypes():
    m = torch.rand(3, 7, 7)
    for mode in MODES:
        out = to_saliency(m, mode)
        assert out.shape == ((3, 49) if mode == "raw_flat" else (3, 7, 7))
        assert out.dtype == torch.float32
    assert to_saliency(m.double(), "bam").dtype == torch.float64
    assert to_saliency(m.half(), "bam").dtype == torch.float32


def test_bad_arguments():
    with pytest.raises(ConfigError, match="unknown mode"):
        to_saliency(torch.rand(1, 3, 4, 4), "positive")
    with pytest.raises(ConfigError, match="expected attributions"):
        to_saliency(torch.rand(4, 4), "bam")
