"""Reading and writing: COCO JSON (the format between stages), images, dataset layouts."""

from afss.io.coco import read_coco, write_coco
from afss.io.images import LoadedImage, load_image

__all__ = ["LoadedImage", "load_image", "read_coco", "write_coco"]
