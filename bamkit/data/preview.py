"""A contact sheet of a set: images with their mask outlines and labels (``bamkit preview``).

So a person can look at what was built: rows are picked evenly across the set (deterministic), each tile is
upscaled with nearest-neighbour so pixels stay visible, the mask's boundary is drawn in one colour, and the
caption gives row, object / scene label and split.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from bamkit.atomic import write_bytes
from bamkit.data.h5 import BamFile
from bamkit.errors import DataError

OUTLINE = np.array([255, 40, 200], dtype=np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """The boundary pixels of a (H, W) bool mask: mask pixels with a 4-neighbour outside it."""
    pad = np.pad(mask, 1, constant_values=False)
    interior = pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return mask & ~interior


def pick_rows(n_rows: int, n: int) -> np.ndarray:
    """``n`` row indices spread evenly over ``0 … n_rows-1`` (all rows when there are fewer)."""
    if n_rows <= n:
        return np.arange(n_rows)
    return np.unique(np.linspace(0, n_rows - 1, n).round().astype(np.int64))


def contact_sheet(
    path: str | Path, set_name: str, n: int = 32, tile: int = 128, cols: int = 8
) -> Image.Image:
    """Render ``n`` images of ``set_name`` with mask outlines into one RGB image.

    Args:
        path: the dataset file; set_name: e.g. ``"obj_scene"``; n: how many images;
        tile: side of each tile in pixels; cols: tiles per row.
    """
    if n < 1:
        raise DataError(f"preview: n={n}; expected at least 1 image")
    with BamFile(path) as bf:
        view = bf[set_name]
        rows = pick_rows(len(view), n)
        images, masks = view.read("images", rows), view.read("masks", rows)
        obj, scn, split = (
            view.read("object_label", rows),
            view.read("scene_label", rows),
            view.read("split", rows),
        )
        objects, scenes = bf.object_classes, bf.scene_classes
    caption_h = 14
    cols = min(cols, len(rows))
    grid_rows = math.ceil(len(rows) / cols)
    sheet = Image.new("RGB", (cols * tile, grid_rows * (tile + caption_h)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for k, r in enumerate(rows):
        img = images[k].copy()
        img[outline(masks[k])] = OUTLINE
        im = Image.fromarray(img).resize((tile, tile), Image.NEAREST)
        x, y = (k % cols) * tile, (k // cols) * (tile + caption_h)
        sheet.paste(im, (x, y))
        o = objects[obj[k]] if obj[k] >= 0 else "-"
        s = scenes[scn[k]].split("/")[0] if scn[k] >= 0 else "-"
        draw.text((x + 2, y + tile + 1), f"{r} {o}|{s}{' v' if split[k] else ''}", fill=(0, 0, 0))
    return sheet


def write_preview(path: str | Path, set_name: str, out: str | Path, n: int = 32) -> Path:
    """Write the contact sheet of :func:`contact_sheet` as a PNG (atomically); returns ``out``."""
    buf = io.BytesIO()
    contact_sheet(path, set_name, n=n).save(buf, format="PNG")
    write_bytes(out, buf.getvalue())
    return Path(out)
