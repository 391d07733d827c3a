"""Image loading that never surprises.

Every image comes back as RGB ``uint8`` ``(H, W, 3)`` for the models, plus what it was on disk.
Rules, the same for every reader and stage:

* Formats: whatever OpenCV decodes (jpg, png, tif, bmp, pgm/ppm, webp); files are read as bytes and
  decoded, so non-ASCII paths work.
* EXIF orientation is **ignored**: pixels are used as stored, so masks drawn on the stored pixels
  (every dataset here) line up, and sizes match the COCO ``width``/``height`` of the stored file.
* Gray -> three equal channels; OpenCV's BGR -> RGB; RGBA (and gray + alpha) -> composited over
  black: a transparent background is empty sky, whatever colour its hidden pixels hold.
* 16-bit (and float) images are scaled to 8 bits by the smallest container that holds their peak
  (10-, 12-, 14- or 16-bit full scale; floats by 1.0 or their peak), so a 12-bit sensor image stored
  in 16 bits is not crushed into the bottom 16 grey levels. The peak is taken after a 3x3 median, so
  an isolated hot pixel or cosmic-ray hit does not darken the whole frame (it saturates), while a
  target a few pixels across keeps its brightness; NaN and -inf read as 0, +inf as full scale.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from afss.errors import AfssError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".pbm", ".pgm", ".ppm", ".pnm",
                    ".webp")


class ImageReadError(AfssError):
    """An image file could not be used; the message names the file and the reason."""


@dataclass(frozen=True)
class LoadedImage:
    """A decoded image.

    Attributes:
        rgb: ``(H, W, 3)`` uint8 RGB pixels.
        path: where it came from.
        channels: channels on disk (1 gray, 3 colour, 4 with alpha).
        bit_depth: bits per channel on disk (8, 16, or 32 for float).
    """

    rgb: np.ndarray
    path: str
    channels: int
    bit_depth: int

    @property
    def size_hw(self) -> tuple[int, int]:
        return self.rgb.shape[:2]


def is_image_file(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_EXTENSIONS)


def read_raw(path: str | os.PathLike) -> np.ndarray:
    """The pixels as stored (any depth, 1/3/4 channels, BGR order), EXIF orientation ignored."""
    path = Path(path)
    try:  # os.stat, not Path.exists(): a name too long, a link loop or a file used as a folder are OSErrors
        is_file = stat.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: {'broken symbolic link' if path.is_symlink() else 'no such file'}") from None
    except OSError as e:
        raise ImageReadError(f"{path}: cannot open ({e.strerror or e})") from None
    if not is_file:
        raise ImageReadError(f"{path}: not a file")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as e:  # no read permission, I/O error: this image's problem, not the run's
        raise ImageReadError(f"{path}: cannot read ({e.strerror or e})") from e
    if data.size == 0:
        raise ImageReadError(f"{path}: empty file")
    if data[:2].tobytes() == b"\xff\xd8" and not _jpeg_complete(data.tobytes()):
        # libjpeg decodes a cut-off JPEG with a grey bottom and only a warning: refuse it instead.
        raise ImageReadError(f"{path}: truncated JPEG (no end-of-image marker, {data.size} bytes)")
    if data[:8].tobytes() == b"\x89PNG\r\n\x1a\n" and not _png_complete(data.tobytes()):
        # checked here, before libpng prints its own complaint on stderr through any progress bar
        raise ImageReadError(f"{path}: truncated PNG (no end chunk, {data.size} bytes)")
    with _opencv_silent():  # libtiff's lines on stderr: the error says it in one line
        try:
            img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)  # UNCHANGED also ignores EXIF orientation
        except cv2.error:  # e.g. a TIFF of 5 channels
            img = None
    if data[:4].tobytes() in (b"II*\x00", b"MM\x00*") and (img is None or img.dtype.itemsize == 1):
        img = _tiff_as_stored(path, img)
    if img is None or img.size == 0:
        raise ImageReadError(f"{path}: cannot decode image (corrupt or unsupported format, {data.size} bytes)")
    return img


_SILENT_LOCK = threading.Lock()
_silent = [0, None]  # decoders inside `_opencv_silent` now, and OpenCV's log level before the first


@contextmanager
def _opencv_silent() -> Iterator[None]:
    """OpenCV's log level at SILENT while any thread decodes, put back when the last one is done (the
    level is one for the process)."""
    with _SILENT_LOCK:
        if _silent[0] == 0:
            _silent[1] = cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        _silent[0] += 1
    try:
        yield
    finally:
        with _SILENT_LOCK:
            _silent[0] -= 1
            if _silent[0] == 0:
                cv2.utils.logging.setLogLevel(_silent[1])


def _jpeg_complete(data: bytes) -> bool:
    """Whether a JPEG's bytes hold an end-of-image marker after its first scan begins. The marker
    segments before the scan are skipped by their lengths, so an EXIF thumbnail's own end marker
    does not count, and data a camera appends after the end (a trailer, padding) does not hide it."""
    k, n = 2, len(data)
    while k + 4 <= n:
        if data[k] != 0xFF:
            return True  # not the layout expected: the decoder judges the file
        marker = data[k + 1]
        if marker == 0xFF:  # fill byte
            k += 1
        elif marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # markers without a length
            k += 2
        elif marker == 0xD9:
            return True  # ends before any scan: the decoder says what is wrong
        else:
            length = int.from_bytes(data[k + 2:k + 4], "big")
            if marker == 0xDA:  # start of scan: entropy-coded data stuffs 0xFF, so 0xFFD9 is the end
                return data.find(b"\xff\xd9", k + 2 + length) != -1
            k += 2 + length
    return False  # cut off among the headers


def _tiff_as_stored(path: Path, decoded: np.ndarray | None) -> np.ndarray | None:
    """A TIFF OpenCV could not decode, or decoded at fewer bits than stored (a 16-bit grey + alpha file
    comes back as its high bytes), read with tifffile instead; else ``decoded``. tifffile without
    imagecodecs reads uncompressed and deflate TIFFs; where it cannot, OpenCV's answer stands."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages[0]
            if decoded is not None and decoded.dtype.itemsize * 8 >= page.bitspersample:
                return decoded
            pixels = page.asarray()
            if pixels.ndim == 3 and page.axes.startswith("S"):  # planes stored apart: (S, H, W) -> (H, W, S)
                pixels = np.moveaxis(pixels, 0, -1)
    except Exception:  # noqa: BLE001 - a TIFF tifffile cannot read either: OpenCV's answer (or None) stands
        return decoded
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        pixels = pixels[..., [2, 1, 0, *range(3, pixels.shape[2])]]  # OpenCV's channel order, as read_raw promises
    return np.ascontiguousarray(pixels)


def _png_complete(data: bytes) -> bool:
    """Whether a PNG's chunks, followed by their lengths, reach the end chunk (IEND)."""
    k, n = 8, len(data)
    while k + 8 <= n:
        length, kind = int.from_bytes(data[k:k + 4], "big"), data[k + 4:k + 8]
        if kind == b"IEND":
            return True
        k += 12 + length  # length, type, data, CRC
    return False


def _peak(img: np.ndarray) -> float:
    """The largest value once isolated outliers are gone: the maximum of a 3x3 median of the image,
    with NaN and inf read as 0 (0 for an empty image). A hot pixel or a cosmic-ray hit a pixel or two
    across goes; a target a few pixels across stays."""
    if img.size == 0:
        return 0.0
    a = img
    if np.issubdtype(a.dtype, np.floating):
        big = np.finfo(np.float32).max  # float64 values past float32's range: the largest, not inf
        a = np.clip(np.where(np.isfinite(a), a, 0), -big, big).astype(np.float32)
    elif a.dtype not in (np.uint16, np.int16):
        a = a.astype(np.float32)  # the types OpenCV's median takes
    if min(a.shape[:2]) < 3 or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        return float(a.max())
    return float(cv2.medianBlur(np.ascontiguousarray(a), 3).max())


def to_uint8(img: np.ndarray) -> np.ndarray:
    """Scale any integer or float image to uint8 (see the module docstring for the rule)."""
    if img.dtype == np.uint8:
        return img
    peak = _peak(img)
    if np.issubdtype(img.dtype, np.floating):
        scale = max(1.0, peak)
        finite = np.nan_to_num(img.astype(np.float32), nan=0.0, posinf=scale, neginf=0.0)
        return np.clip(finite / scale * 255.0 + 0.5, 0, 255).astype(np.uint8)
    full = next((2**b - 1 for b in (8, 10, 12, 14, 16) if peak <= 2**b - 1), int(np.iinfo(img.dtype).max))
    return np.clip(img.astype(np.float32) * (255.0 / full) + 0.5, 0, 255).astype(np.uint8)


def _alpha_uint8(alpha: np.ndarray) -> np.ndarray:
    """An alpha channel as uint8, 255 opaque: integers by their type's full scale, floats by 1.0."""
    if np.issubdtype(alpha.dtype, np.floating):
        return np.clip(np.nan_to_num(alpha, nan=1.0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.clip(alpha.astype(np.float32) * (255.0 / np.iinfo(alpha.dtype).max) + 0.5, 0, 255).astype(np.uint8)


def _over_black(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``colour`` (uint8, any channels) composited over black by ``alpha`` (uint8)."""
    a = alpha.astype(np.uint16)[..., None] if colour.ndim == 3 else alpha.astype(np.uint16)
    return ((colour.astype(np.uint16) * a + 127) // 255).astype(np.uint8)


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Load any supported image as RGB uint8.

    Raises:
        ImageReadError: the file is missing, empty, corrupt or has an unsupported layout.

    Example:
        >>> img = load_image("scene.png")  # doctest: +SKIP
        >>> img.rgb.shape, img.rgb.dtype
        ((512, 512, 3), dtype('uint8'))
    """
    raw = read_raw(path)
    channels = 1 if raw.ndim == 2 else raw.shape[2]
    bit_depth = 32 if np.issubdtype(raw.dtype, np.floating) else raw.dtype.itemsize * 8
    if channels not in (1, 2, 3, 4):
        raise ImageReadError(f"{path}: {channels} channels, expected 1 (gray), 3 (RGB) or 4 (RGBA)")
    colour = raw if channels in (1, 3) else raw[..., 0] if channels == 2 else raw[..., :3]
    img = to_uint8(np.ascontiguousarray(colour))  # the alpha channel takes no part in the colours' scale
    if channels in (2, 4):
        img = _over_black(img, _alpha_uint8(raw[..., -1]))
    rgb = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB if img.ndim == 2 else cv2.COLOR_BGR2RGB)
    return LoadedImage(rgb=np.ascontiguousarray(rgb), path=str(path), channels=channels, bit_depth=bit_depth)


def read_mask(path: str | os.PathLike, *, threshold: int = 128) -> np.ndarray:
    """A binary mask file as bool ``(H, W)`` (see `mask_foreground`)."""
    return mask_foreground(to_uint8(read_raw(path)), threshold, lossy=is_lossy(path))


def mask_foreground(pixels: np.ndarray, threshold: int = 128, *, lossy: bool = False) -> np.ndarray:
    """The foreground of a mask file's uint8 pixels (gray, gray+alpha, BGR or BGRA): any colour channel
    >= ``threshold`` (0/255 masks, JPEG-softened ones too). Two other conventions would otherwise read as
    empty: a label image of 0/1 values (its maximum is 1: every non-zero pixel), and a mask drawn in the
    alpha channel alone (colour all 0 and an alpha that varies: the alpha channel; a black, opaque mask
    stays empty). ``lossy`` (a JPEG or WebP file): no 0/1 rule, since there a maximum of 1 is the codec's noise
    around an empty mask, not a label (`is_lossy`)."""
    colour = {2: 1, 4: 3}.get(pixels.shape[2], 3) if pixels.ndim == 3 else 0  # gray+alpha, BGRA: alpha last
    gray = pixels if pixels.ndim == 2 else pixels[..., :colour].max(axis=2)
    if pixels.ndim == 3 and colour < pixels.shape[2] and not gray.any():
        alpha = pixels[..., colour]
        gray = alpha if alpha.size and alpha.min() < alpha.max() else gray
    return gray >= (1 if gray.max(initial=0) == 1 and not lossy else threshold)


LOSSY_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".webp")
"""Formats whose stored values may differ from those written (WebP may be lossless, but is usually
not): a mask in one is thresholded at half range, none of its small values taken as a label."""


def is_lossy(path: str | os.PathLike) -> bool:
    """Whether a mask file's format may store its values lossily (`LOSSY_EXTENSIONS`), so
    `mask_foreground` takes none of its small values as a label."""
    return Path(path).suffix.lower() in LOSSY_EXTENSIONS


EXIF_ORIENTATION = 0x0112


def exif_orientation(path: str | os.PathLike) -> int:
    """The file's EXIF orientation tag (1: as stored; 1 also where there is none or the header is unreadable),
    from the header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return image_orientation(im)
    except Exception:  # noqa: BLE001 - no orientation to speak of
        return 1


def image_orientation(im: Any) -> int:
    """The EXIF orientation of a PIL image opened from a file (1: as stored), from its header: a PNG's
    eXIf chunk as PIL read it at open (its ``getexif`` would decode the whole picture to look further)."""
    from PIL import Image

    if im.format == "PNG":
        exif = Image.Exif()
        if im.info.get("exif"):
            exif.load(im.info["exif"])
        return int(exif.get(EXIF_ORIENTATION, 1))
    return int(im.getexif().get(EXIF_ORIENTATION, 1))


def size_mismatch(path: str | os.PathLike, recorded_hw: tuple[int, int], stored_hw: tuple[int, int]) -> str:
    """The error of an image whose file is not the size its record says (masks made on it would not fit
    the record's ground truth), naming an EXIF turn where that explains it."""
    return (f"size mismatch: recorded as {recorded_hw[0]}x{recorded_hw[1]} (H x W), the file is "
            f"{stored_hw[0]}x{stored_hw[1]}{turned_note(path, recorded_hw, stored_hw)}")


def turned_note(path: str | os.PathLike, expected_hw: tuple[int, int], stored_hw: tuple[int, int]) -> str:
    """Where ``expected_hw`` is ``stored_hw`` turned and the file says to turn it for display (EXIF
    orientation 5-8), a note saying afss uses the stored pixels; else ''."""
    if tuple(expected_hw) != tuple(stored_hw)[::-1]:
        return ""
    turn = exif_orientation(path)
    if turn not in (5, 6, 7, 8):
        return ""
    return (f"; its EXIF orientation {turn} turns it for display, and afss uses the pixels "
            "as stored: the ground truth was drawn on the turned picture")


def image_size_hw(path: str | os.PathLike) -> tuple[int, int]:
    """Size of an image without decoding the pixels where PIL can tell it from the header."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            return (h, w)
    except Exception:  # noqa: BLE001 - PIL is only the fast path; Ultralytics' patched open raises others
        return load_image(path).size_hw


def save_image(path: str | os.PathLike, rgb_or_gray: np.ndarray, *, quality: int = 95) -> None:
    """Write an RGB or gray uint8 image (format from the extension), atomically.

    Raises:
        AfssError: an extension OpenCV cannot encode, or a folder / disk that cannot be written.
    """
    from afss.io.atomic import write_bytes_atomic

    img = rgb_or_gray
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    path = Path(path)
    ext = path.suffix.lower()
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    try:
        ok, buf = cv2.imencode(ext, img, params)
    except cv2.error:
        ok = False
    if not ok:
        raise AfssError(f"{path}: cannot encode an image as {ext or 'a file without extension'!r} "
                        "(use .png or .jpg)")
    write_bytes_atomic(path, buf.tobytes())
