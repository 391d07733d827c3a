"""afss.viz: outlines on the mask boundary, boxes, input untouched, grids."""

from __future__ import annotations

import numpy as np
import pytest

from afss.types import ImageLabels, Instance
from afss.viz import as_rgb, draw_instances, make_grid


def test_draw_instances_outlines_the_mask_and_keeps_the_input():
    img = np.zeros((80, 100, 3), np.uint8)
    m = np.zeros((80, 100), bool)
    m[20:50, 30:70] = True
    inst = Instance.from_mask(m, score=0.5)
    out = draw_instances(img, [inst], color=(0, 255, 0), label=False, box=False, thickness=1)
    assert not img.any()
    green = (out == (0, 255, 0)).all(axis=2)
    assert green[20, 30:70].all() and green[49, 30:70].all() and green[20:50, 30].all()
    assert not green[35, 50] and not green[10, 10]
    labels = ImageLabels(file_name="x.png", height=80, width=100, instances=(inst,))
    out2 = draw_instances(img, labels, color=(255, 0, 0), label=True)
    assert (out2 == (255, 0, 0)).all(axis=2).sum() > green.sum()


def test_draw_instances_rejects_a_mask_of_another_size():
    inst = Instance.from_mask(np.ones((10, 10), bool))
    with pytest.raises(ValueError, match="mask"):
        draw_instances(np.zeros((20, 20, 3), np.uint8), [inst])


def test_make_grid_layout_titles_and_gray():
    tiles = [np.full((10, 20), 50, np.uint8), np.full((10, 20, 3), 200, np.uint8), np.zeros((30, 60, 3), np.uint8)]
    grid = make_grid(tiles, ncols=2, pad=2)
    assert grid.shape == (2 * 10 + 3 * 2, 2 * 20 + 3 * 2, 3)
    assert (grid[2, 2] == 50).all() and (grid[2, 24] == 200).all() and (grid[0, 0] == 255).all()
    assert as_rgb(tiles[0]).shape == (10, 20, 3)
    titled = make_grid(tiles, 3, ["a", "b", "c"], tile_hw=(40, 80), row_titles=["row"])
    assert titled.shape[0] == 40 + 2 * 4 and titled.shape[1] > 3 * 80
    with pytest.raises(ValueError):
        make_grid(tiles, 2, ["only one"])
