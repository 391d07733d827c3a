"""Label refinement: test-time augmentation views, Weighted Boxes Fusion, confidence filtering.

>>> from afss.refine import refine_labels, RefineConfig
>>> refined, summary = refine_labels(teacher, images, views="identity,vflip")  # doctest: +SKIP

See ``docs/refine.md``. Modules: `tta` (views and their exact inverses), `fusion` (WBF through
``ensemble-boxes``, mask voting), `filtering` (min score, top-1, min area), `refiner` (the stage).
"""

from afss.refine.config import RefineConfig
from afss.refine.filtering import DROP_REASONS, FilterSummary, filter_labels
from afss.refine.fusion import FusedBoxes, fuse_boxes, fuse_masks
from afss.refine.image import fuse_views, refine_image
from afss.refine.refiner import RefineSummary, refine_labels, summary_path
from afss.refine.tta import VIEW_NAMES, View, parse_view, parse_views

DEFAULT_VIEWS = "identity,vflip"
"""The paper's best TTA set."""

__all__ = [
    "DEFAULT_VIEWS",
    "DROP_REASONS",
    "VIEW_NAMES",
    "FilterSummary",
    "FusedBoxes",
    "RefineConfig",
    "RefineSummary",
    "View",
    "filter_labels",
    "fuse_boxes",
    "fuse_masks",
    "fuse_views",
    "parse_view",
    "parse_views",
    "refine_image",
    "refine_labels",
    "summary_path",
]
