"""afss: annotation-free spacecraft detection and segmentation.

Unlabeled spacecraft images -> text-prompted vision-language teacher -> refined pseudo-labels
(test-time augmentation + Weighted Boxes Fusion + confidence filter) -> COCO AP against ground truth,
after arXiv 2602.04699 (ICRA 2026). Every stage reads and writes COCO instances JSON.
"""

from afss.errors import AfssError
from afss.io.coco import read_coco, write_coco
from afss.io.images import load_image
from afss.types import ImageLabels, Instance, LabelSet

__version__ = "0.1.0"

__all__ = ["AfssError", "ImageLabels", "Instance", "LabelSet", "__version__", "load_image", "read_coco", "write_coco"]
