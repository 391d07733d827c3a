"""A folder of binary masks named like their images (the paper's ``masks/<split>/masks/<image name>``).

Foreground is a pixel ``>= 128`` in any channel (``> 127``), which is robust to JPEG softening of
0/255 masks. The mask for image ``a/b/img_001.jpg`` is looked up, in this order, as
``<masks>/a/b/img_001.jpg``, ``<masks>/img_001.jpg``, then ``<masks>/img_001.<png|jpg|...>``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from afss.datasets.common import find_with_stem, gt_instance, read_mask_pixels, require_dir
from afss.errors import AfssError
from afss.io.images import IMAGE_EXTENSIONS, is_lossy, mask_foreground
from afss.types import Instance

MASK_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".webp")
BINARY_THRESHOLD = 128

log = logging.getLogger(__name__)


class MaskFolder:
    """Finds and reads the binary mask of an image in a (usually flat) folder.

    Args:
        folder: the masks folder; an `AfssError` names it when it does not exist.
        images: the image folder the masks are for: refused as the masks folder (each image would be its
            own mask).
        threshold: a pixel is foreground when any channel is ``>= threshold``.
    """

    def __init__(self, folder: str | os.PathLike, *, threshold: int = BINARY_THRESHOLD,
                 images: str | os.PathLike | None = None) -> None:
        self.folder = require_dir(folder, "masks folder")
        if images is not None and os.path.realpath(self.folder) == os.path.realpath(images):
            raise AfssError(f"{self.folder}: the masks folder is the image folder, so each image would be read as "
                            "its own mask; keep the masks in a folder of their own")
        self.threshold = threshold
        self.shared: dict[str, list[str]] = {}  # image -> the other images its base-name mask is also found for
        self._found: dict[str, tuple[Path | None, bool]] = {}  # the lookups `expect` made

    def find(self, image_name: str) -> Path | None:
        """The mask file for an image ``file_name`` (relative path or bare name), or ``None``."""
        return self._find(image_name)[0]

    def _find(self, image_name: str) -> tuple[Path | None, bool]:
        """The mask file, and whether it was found by base name or stem rather than the relative path."""
        if image_name in self._found:
            return self._found[image_name]
        rel = Path(image_name.replace("\\", "/") if os.sep == "/" else image_name)  # a list written on Windows
        if not rel.is_absolute() and (self.folder / rel).is_file():
            return self.folder / rel, False
        return find_with_stem(self.folder, rel.name, MASK_EXTENSIONS + tuple(e for e in IMAGE_EXTENSIONS
                                                                              if e not in MASK_EXTENSIONS)), True

    def expect(self, image_names) -> None:
        """Note the masks that the base-name lookup gives to an image another image also finds
        (``a/frame.jpg`` and ``b/frame.jpg`` both finding ``frame.png``, or ``b/frame.png`` finding the
        ``frame.png`` of the image ``frame.png``): an image that found such a mask by base name gets an
        error, not another image's mask; one that found it by its own relative path keeps it."""
        claims: dict[Path, list[str]] = {}
        for name in dict.fromkeys(image_names):  # a file listed twice is one image
            self._found[name] = self._find(name)
            if self._found[name][0] is not None:
                claims.setdefault(self._found[name][0], []).append(name)
        self.shared = {name: [n for n in names if n != name] for names in claims.values() if len(names) > 1
                       for name in names if self._found[name][1]}
        # a mask no image finds is ground truth that is silently not used (a misnamed file, an image gone)
        found = {os.path.realpath(path) for path in claims}
        unused = []
        for top, dirs, names in os.walk(self.folder):
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "@")))  # .ipynb_checkpoints, @eaDir
            unused += [os.path.relpath(os.path.join(top, n), self.folder) for n in sorted(names)
                       if n.lower().endswith(MASK_EXTENSIONS + IMAGE_EXTENSIONS) and not n.startswith(".")
                       and os.path.realpath(os.path.join(top, n)) not in found]
        if unused:  # more unused than used: a split or subset read against a whole folder, as meant
            (log.warning if len(unused) <= len(found) else log.info)(
                "%s: %d mask file(s) are found by no image, e.g. %s: they are not used", self.folder, len(unused),
                unused[0])

    def instances(self, image_name: str, size_hw: tuple[int, int], *, category_id: int = 1
                  ) -> tuple[tuple[Instance, ...], str | None, str]:
        """Ground truth for one image from its mask.

        Returns:
            ``(instances, error, mask_state)``: zero or one instance; ``error`` names the mask file when
            it is unreadable or its size differs from ``size_hw`` (H, W); ``mask_state`` is ``"ok"``,
            ``"missing"`` (no mask file), ``"empty"`` (no foreground) or ``"error"``.
        """
        path = self.find(image_name)
        if path is None:
            return (), None, "missing"
        if image_name in self.shared:
            others = self.shared[image_name]
            return (), (f"{path}: found by base name for {image_name}, and for {others[0]}"
                        f"{' and others' if len(others) > 1 else ''} too: name masks by the images' relative paths"), "error"
        return binary_mask_instances(path, size_hw, threshold=self.threshold, category_id=category_id)


def binary_mask_instances(path: Path, size_hw: tuple[int, int], *, threshold: int = BINARY_THRESHOLD,
                          category_id: int = 1) -> tuple[tuple[Instance, ...], str | None, str]:
    """Read one binary mask file into at most one GT instance; see `MaskFolder.instances`."""
    raw = read_mask_pixels(path, size_hw)
    if isinstance(raw, str):
        return (), raw, "error"
    mask = mask_foreground(raw, threshold, lossy=is_lossy(path))  # as afss.io.images.read_mask, column-major
    inst = gt_instance(mask, category_id=category_id)
    return inst, None, "ok" if inst else "empty"
