"""Dice / log-cosh Dice / MAE / sqrt-MAE / RMSE / pointing game on tiny hand-computed arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import bamkit.metrics as M
from bamkit.errors import DataError

SAL = torch.tensor([[[1.0, 0.5], [0.0, 0.0]]])
MASK = torch.tensor([[[True, False], [False, False]]])


def test_hand_computed_2x2():
    d = (2 * 1.0 + 1) / (1 + 1.5 + 1)  # (2ΣSM + 1) / (ΣS + ΣM + 1)
    assert float(M.dice(SAL, MASK)[0]) == pytest.approx(d)
    assert float(M.dice_loss(SAL, MASK)[0]) == pytest.approx(1 - d)
    assert float(M.logcosh_dice(SAL, MASK)[0]) == pytest.approx(math.log(math.cosh(1 - d)))
    assert float(M.mae(SAL, MASK)[0]) == pytest.approx(0.125)
    assert float(M.sqrt_mae(SAL, MASK)[0]) == pytest.approx(math.sqrt(0.125))
    assert float(M.rmse(SAL, MASK)[0]) == pytest.approx(0.25)
    assert float(M.pointing_game(SAL, MASK)[0]) == 1.0  # only (0,0) is >= the 70 % quantile


def test_perfect_map_is_optimal_and_inverse_is_worst():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(5, 12, 12, generator=g) > 0.7
    perfect, inverse = masks.float(), (~masks).float()
    assert torch.allclose(M.dice(perfect, masks), torch.ones(5))
    assert torch.allclose(M.logcosh_dice(perfect, masks), torch.zeros(5))
    assert (M.mae(perfect, masks) == 0).all() and (M.rmse(perfect, masks) == 0).all()
    assert torch.allclose(M.mae(inverse, masks), torch.ones(5))
    assert (M.logcosh_dice(inverse, masks) > M.logcosh_dice(torch.rand(5, 12, 12, generator=g), masks)).all()


def test_pointing_game_quantile_matches_numpy_and_misses_outside():
    g = torch.Generator().manual_seed(1)
    sal = torch.rand(1, 9, 9, generator=g)
    q = np.quantile(sal.numpy().ravel(), 0.7)
    sel = sal[0].numpy() >= q
    cy, cx = (int(round(v)) for v in np.argwhere(sel).mean(0))
    inside = torch.zeros(1, 9, 9, dtype=torch.bool)
    inside[0, cy, cx] = True
    assert float(M.pointing_game_round(sal, inside)[0]) == 1.0
    assert float(M.pointing_game_round(sal, ~inside)[0]) == 0.0


def test_empty_masks_and_constant_maps_have_documented_results():
    empty = torch.zeros(1, 2, 2, dtype=torch.bool)
    assert float(M.dice(torch.zeros(1, 2, 2), empty)[0]) == 1.0  # 1/1 from the smoothing term
    assert float(M.dice(torch.ones(1, 2, 2), empty)[0]) == pytest.approx(1 / 5)
    assert math.isnan(float(M.pointing_game(SAL, empty)[0]))  # nothing to point at
    const = torch.full((1, 2, 2), 0.5)
    assert float(M.mae(const, MASK)[0]) == pytest.approx(0.5)
    c3 = torch.full((1, 3, 3), 0.5)
    centre = torch.zeros(1, 3, 3, dtype=torch.bool)
    centre[0, 1, 1] = True
    assert float(M.pointing_game(c3, centre)[0]) == 1.0  # a constant map points at its centre
    assert float(M.pointing_game(c3, ~centre)[0]) == 0.0


def test_bad_inputs_raise():
    with pytest.raises(DataError):
        M.dice(SAL * 3, MASK)
    with pytest.raises(DataError):
        M.mae(SAL, torch.ones(1, 3, 3, dtype=torch.bool))


def test_pointing_game_truncates_the_centroid_as_gags_reference():
    """GAG's pointing_game_eval.py takes int(idx.float().mean()): selected pixels at rows 1 and 2 (and 2 again)
    have mean row 5/3 = 1.67 -> row 1 (truncated), where rounding would give row 2."""
    sal = torch.zeros(1, 4, 4)
    sal[0, 1, 0] = sal[0, 2, 0] = sal[0, 2, 1] = 1.0  # the top three (>= the 0.9 quantile of 16 pixels: 1.0)
    row1 = torch.zeros(1, 4, 4, dtype=torch.bool)
    row1[0, 1, 0] = True  # centroid (1.67, 0.33): truncated (1, 0) hits, rounded (2, 0) misses
    assert float(M.pointing_game(sal, row1, quantile=0.9)[0]) == 1.0
    assert float(M.pointing_game_round(sal, row1, quantile=0.9)[0]) == 0.0


def test_pointing_game_equals_the_reference_loop_on_random_maps():
    """The reference's loop (numpy quantile, torch.where, float32 mean, int()) on 200 random maps."""
    g = torch.Generator().manual_seed(0)
    sal = torch.rand(200, 9, 11, generator=g)
    masks = torch.rand(200, 9, 11, generator=g) > 0.6
    ours = M.pointing_game(sal, masks)
    for i in range(200):
        q = np.quantile(sal[i].numpy(), 0.7)
        idx = torch.where(sal[i] >= float(q))
        centroid = (int(idx[0].float().mean()), int(idx[1].float().mean()))
        assert float(ours[i]) == float(masks[i][centroid])
