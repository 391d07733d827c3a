"""A picture of the domains: rows = domain presets, columns = example scenes with mask outlines."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from afss.errors import AfssError, unknown_choice
from afss.synth.domains import DOMAINS
from afss.synth.scene import render, scene_labels
from afss.viz import draw_instances, make_grid

PART_COLORS = {"body": (255, 70, 70), "panels": (70, 170, 255)}


def preview_grid(*, domains: Sequence[str] = ("clean", "earth", "harsh", "mixed"), per_domain: int = 6, size: int = 256,
                 seed: int = 0, parts: bool = False) -> np.ndarray:
    """Render ``per_domain`` scenes of each domain and tile them, outlines drawn with `afss.viz`.

    Args:
        domains: one row per domain preset.
        per_domain: columns.
        size: tile size in pixels (scenes are rendered at this size).
        seed: dataset seed; row ``r`` shows images ``r * per_domain ...`` of its domain.
        parts: outline ``body`` (red) and ``panels`` (blue) instead of the instance (green).

    Returns:
        ``(H, W, 3)`` uint8 RGB grid.
    """
    tiles, titles = [], []
    for row, domain in enumerate(domains):
        for k in range(per_domain):
            scene = render(seed, row * per_domain + k, size=size, domain=domain)
            lab = scene_labels(scene, file_name="", image_id=k + 1)
            if parts and lab.instances:
                from afss.types import Instance

                img = scene.image
                for name, color in PART_COLORS.items():
                    if scene.parts[name].any():
                        img = draw_instances(img, [Instance.from_mask(scene.parts[name])], color=color,
                                             label=False, box=False, thickness=1)
            else:
                img = draw_instances(scene.image, lab, color=(0, 255, 0), label=False, thickness=1)
            tiles.append(img)
            d = scene.meta["difficulty"]
            flags = [f for f, on in (("cut", d["truncated"]), ("earth", d["earth_behind"]), ("glare", d["glare"]))
                     if on]
            titles.append(f"{scene.meta['family']} {100 * d['target_fraction']:.1f}% {' '.join(flags)}".strip())
    return make_grid(tiles, per_domain, titles, row_titles=list(domains))


def write_preview(path: str | os.PathLike, **options) -> Path:
    """Render `preview_grid` and save it as PNG (palette-quantised to stay small) or JPEG."""
    import io

    from PIL import Image

    from afss.io.atomic import write_bytes_atomic
    from afss.io.outputs import check_output_path
    from afss.synth.dataset import check_synth_numbers

    path = check_output_path(path, flag="--preview", example="preview.png", suffixes=(".png", ".jpg", ".jpeg"))
    check_synth_numbers(size=options.get("size"), seed=options.get("seed"))
    per_domain = options.get("per_domain", 6)
    if isinstance(per_domain, bool) or not isinstance(per_domain, int) or not 1 <= per_domain <= 64:
        raise AfssError(f"synth preview: --n (images per domain) must be in [1, 64], got {per_domain!r}")
    for domain in options.get("domains", ()):
        if domain not in DOMAINS:
            raise unknown_choice("synth domain", domain, DOMAINS)
    grid = preview_grid(**options)
    im = Image.fromarray(grid)
    buf = io.BytesIO()
    if path.suffix.lower() == ".png":
        im.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, "PNG", optimize=True)
    else:
        im.save(buf, "JPEG", quality=90)
    write_bytes_atomic(path, buf.getvalue())
    return path
