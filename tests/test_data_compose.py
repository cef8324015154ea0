"""Pixel functions of the composites against BAM's paste rule (docs/dataset.md#pasting) and hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from bamkit.data.compose import (
    Placement,
    draw_placement,
    fit_scene,
    mask_box,
    paste,
    resize_object,
    rng_for,
    shrink_cutout,
)


def test_rng_depends_only_on_the_key():
    a = rng_for(3, 1, 2, 5).integers(0, 1 << 30, 4)
    rng_for(3, 9, 9, 9).integers(0, 10, 100)  # drawing elsewhere first changes nothing
    b = rng_for(3, 1, 2, 5).integers(0, 1 << 30, 4)
    c = rng_for(3, 1, 2, 6).integers(0, 1 << 30, 4)
    assert (a == b).all() and not (a == c).all()


@pytest.mark.parametrize("obj_hw", [(50, 100), (100, 50), (64, 64), (7, 300)])
def test_placement_follows_bams_rule(obj_hw):
    S, lo, hi = 128, 73, 90
    for seed in range(200):
        p = draw_placement(obj_hw, S, (lo, hi), rng_for(seed, 0))
        oh, ow = obj_hw
        if ow > oh:  # width has the larger object/scene ratio: it gets the random side
            assert lo <= p.w < hi and p.h == max(1, int(p.w / ow * oh))
        else:
            assert lo <= p.h < hi and p.w == max(1, int(p.h / oh * ow))
        # BAM: row ~ U{0..S-h-1}, col ~ U{0..S-w-1} (exclusive upper bound), so fully inside.
        assert 0 <= p.y0 <= S - p.h - 1 and 0 <= p.x0 <= S - p.w - 1


def test_placement_covers_the_whole_size_range():
    sides = {draw_placement((40, 40), 128, (73, 90), rng_for(s)).h for s in range(2000)}
    assert sides == set(range(73, 90))


def test_resize_opaque_rectangle_is_exact():
    rgba = np.zeros((10, 20, 4), np.uint8)
    rgba[..., :3] = (200, 10, 50)
    rgba[..., 3] = 255
    rgb, mask = resize_object(rgba, 5, 10)
    assert mask.all() and (rgb == (200, 10, 50)).all()


def test_resize_keeps_premultiplied_colour_at_edges():
    # Half transparent-black, half opaque red: premultiplied resampling never darkens the kept pixels.
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, 4:] = (255, 0, 0, 255)
    rgb, mask = resize_object(rgba, 6, 6)
    assert mask[:, -1].all() and not mask[:, 0].any()
    assert (rgb[mask][:, 0] == 255).all()


def test_paste_is_pixel_exact_and_box_encloses_mask():
    rng = np.random.default_rng(0)
    scene = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    obj = rng.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    omask = rng.random((6, 9)) > 0.4
    where = Placement(y0=3, x0=20, h=6, w=9)
    before = scene.copy()
    img, mask = paste(scene, obj, omask, where)
    assert (scene == before).all()  # the background is not modified in place
    assert (img[~mask] == scene[~mask]).all()
    assert (img[3:9, 20:29][omask] == obj[omask]).all()
    assert mask.sum() == omask.sum()
    y0, x0, y1, x1 = mask_box(mask)
    assert where.y0 <= y0 and where.x0 <= x0 and y1 <= where.box[2] and x1 <= where.box[3]


def test_mask_box_hand_case():
    m = np.zeros((5, 6), bool)
    m[1, 2] = m[3, 4] = True
    assert mask_box(m).tolist() == [1, 2, 4, 5]
    assert mask_box(np.zeros((3, 3), bool)).tolist() == [-1, -1, -1, -1]


def test_shrink_cutout_bounds_and_masks():
    rgb = np.full((300, 150, 3), 77, np.uint8)
    mask = np.zeros((300, 150), bool)
    mask[50:250, 20:130] = True
    rgba, hw = shrink_cutout(rgb, mask, 89)
    assert tuple(hw) == (89, 44) and rgba.shape == (89, 44, 4)
    assert set(np.unique(rgba[..., 3])) <= set(range(256)) and rgba[44, 22, 3] == 255
    small, hw2 = shrink_cutout(rgb[:20, :10], mask[:20, :10], 89)
    assert tuple(hw2) == (20, 10)
    # Background pixels are zeroed (premultiplied alpha): no colour bleeds in from outside the mask.
    assert (small[..., :3][~mask[:20, :10]] == 0).all()


def test_fit_scene():
    a = np.arange(128 * 128 * 3, dtype=np.uint64).reshape(128, 128, 3).astype(np.uint8)
    assert (fit_scene(a, 128) == a).all()  # MiniPlaces is already 128 px: untouched
    flat = np.full((40, 50, 3), (9, 99, 199), np.uint8)
    assert (fit_scene(flat, 64) == (9, 99, 199)).all()  # resampling a constant image keeps it constant


def test_vectorised_placements_follow_bams_rule_and_depend_only_on_the_key():
    from bamkit.data.compose import draw_placements, row_hash

    o, s, i = np.meshgrid(np.arange(4), np.arange(5), np.arange(100), indexing="ij")
    o, s, i = o.ravel(), s.ravel(), i.ravel()
    hw = np.array([(50, 100), (100, 50), (64, 64), (7, 300)])[o]
    S, lo, hi = 128, 73, 90
    y0, x0, h, w = draw_placements(row_hash(3, o, s, i), hw, S, (lo, hi))
    wide = hw[:, 1] > hw[:, 0]
    side = np.where(wide, w, h)
    assert ((lo <= side) & (side < hi)).all() and set(side.tolist()) == set(range(lo, hi))
    other = [
        max(1, int(a / b * c))
        for a, b, c in zip(side, np.where(wide, hw[:, 1], hw[:, 0]), np.where(wide, hw[:, 0], hw[:, 1]))
    ]
    assert (np.where(wide, h, w) == other).all()
    assert (y0 >= 0).all() and (y0 <= S - h - 1).all() and (x0 >= 0).all() and (x0 <= S - w - 1).all()
    # A row's draw does not depend on which other rows are drawn with it (chunking, worker count).
    sub = slice(37, 41)
    again = draw_placements(row_hash(3, o[sub], s[sub], i[sub]), hw[sub], S, (lo, hi))
    assert all((a == b[sub]).all() for a, b in zip(again, (y0, x0, h, w)))
    assert not (row_hash(4, o, s, i) == row_hash(3, o, s, i)).any()


def test_premultiplied_resize_equals_pils_rgba_resize():
    from bamkit.data.compose import premultiply, resize_premultiplied

    rng = np.random.default_rng(1)
    for _ in range(100):
        h0, w0 = rng.integers(5, 89, 2)
        rgb = rng.integers(0, 256, (h0, w0, 3), dtype=np.uint8)
        rgba, _ = shrink_cutout(rgb, rng.random((h0, w0)) > 0.3, int(rng.integers(20, 89)))  # soft alpha
        th, tw = (int(v) for v in rng.integers(1, 89, 2))
        ref_rgb, ref_mask = resize_object(np.ascontiguousarray(rgba), th, tw)
        rgb2, mask2 = resize_premultiplied(np.ascontiguousarray(premultiply(rgba)), th, tw)
        assert (rgb2 == ref_rgb).all() and (mask2 == ref_mask).all()
