"""TTA views: every view's boxes and masks come back to the original frame exactly.

The checks draw an object by hand, apply the view to the image, "detect" the object on the
augmented image with a trivial thresholding teacher, map the result back and compare it with what
was drawn. Sizes are odd and non-square on purpose.
"""

from __future__ import annotations

import numpy as np
import pytest

from afss.errors import AfssError
from afss.refine.tta import Flip, Identity, Photometric, Rotate, Scale, parse_view, parse_views
from afss.types import mask_box_xyxy

GEOMETRIC_EXACT = ["identity", "hflip", "vflip", "rot90", "rot180", "rot270",
                   "brightness1.3", "contrast0.8", "gamma0.7", "scale2"]
SCALES = ["scale0.5", "scale0.75", "scale1.25", "scale1.5"]
ALL_VIEWS = GEOMETRIC_EXACT + SCALES
SIZES_HW = [(37, 53), (53, 37), (41, 41)]


def _object_mask(h: int, w: int) -> np.ndarray:
    """An asymmetric object (an L plus a notch-free blob) away from the borders: no view maps it onto itself."""
    m = np.zeros((h, w), dtype=bool)
    m[5:14, 9:30 if w > 31 else w - 3] = True            # horizontal bar
    m[5:h - 6, 9:14] = True                               # vertical bar -> L shape
    yy, xx = np.mgrid[:h, :w]
    m |= (yy - (h - 12)) ** 2 + (xx - (w - 10)) ** 2 <= 9  # a disc near the other corner
    return m


def _image_of(mask: np.ndarray) -> np.ndarray:
    img = np.full((*mask.shape, 3), 20, dtype=np.uint8)
    img[mask] = (200, 180, 160)
    return img


def _threshold_teacher(image: np.ndarray) -> np.ndarray:
    """Bool mask of bright pixels, the way a perfect segmenter would see the drawn object."""
    return image.astype(np.float32).mean(axis=2) > 90


@pytest.mark.parametrize("size_hw", SIZES_HW)
@pytest.mark.parametrize("spec", ALL_VIEWS)
def test_view_output_size_and_input_untouched(spec, size_hw):
    view = parse_view(spec)
    img = _image_of(_object_mask(*size_hw))
    before = img.copy()
    out = view.apply(img)
    assert out.shape[:2] == view.output_size_hw(size_hw)
    assert out.dtype == np.uint8 and out.shape[2] == 3
    np.testing.assert_array_equal(img, before)


@pytest.mark.parametrize("size_hw", SIZES_HW)
@pytest.mark.parametrize("spec", GEOMETRIC_EXACT)
def test_mask_and_box_come_back_exactly(spec, size_hw):
    view = parse_view(spec)
    mask = _object_mask(*size_hw)
    seen = _threshold_teacher(view.apply(_image_of(mask)))
    back_mask = view.mask_to_original(seen, size_hw)
    assert back_mask.shape == size_hw and back_mask.dtype == bool
    np.testing.assert_array_equal(back_mask, mask)
    back_box = view.boxes_to_original(np.array([mask_box_xyxy(seen)]), size_hw)
    np.testing.assert_array_equal(back_box, np.array([mask_box_xyxy(mask)]))


@pytest.mark.parametrize("size_hw", SIZES_HW)
@pytest.mark.parametrize("spec", SCALES)
def test_scaled_mask_and_box_come_back_within_one_source_pixel(spec, size_hw):
    view = parse_view(spec)
    mask = _object_mask(*size_hw)
    seen = _threshold_teacher(view.apply(_image_of(mask)))
    back_mask = view.mask_to_original(seen, size_hw)
    assert back_mask.shape == size_hw
    iou = (back_mask & mask).sum() / (back_mask | mask).sum()
    assert iou >= (0.8 if view.factor < 0.75 else 0.85)  # thin 5-px bars lose most at half size
    # Only boundary pixels may change: nothing farther than one pixel from the true edge.
    import cv2

    ring = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~cv2.erode(
        mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert not np.any((back_mask ^ mask) & ~ring)
    back_box = view.boxes_to_original(np.array([mask_box_xyxy(seen)]), size_hw)[0]
    tol = max(1.0, 1.0 / view.factor)
    np.testing.assert_allclose(back_box, mask_box_xyxy(mask), atol=tol)


@pytest.mark.parametrize("size_hw", SIZES_HW)
@pytest.mark.parametrize("factor", [0.5, 0.75, 1.25, 2.0, 0.3])
def test_scale_boxes_use_exact_ratio_of_rounded_sizes(factor, size_hw):
    view = Scale(factor)
    h, w = size_hw
    sh, sw = view.output_size_hw(size_hw)
    assert (sh, sw) == (round(h * factor), round(w * factor))
    box = np.array([[3.0, 4.0, 20.0, 30.0], [0.0, 0.0, w, h]])
    in_view = box * np.array([sw / w, sh / h, sw / w, sh / h])
    np.testing.assert_allclose(view.boxes_to_original(in_view, size_hw), box, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("view", "box_in_view", "expected"),
    [  # original 37 x 53 (H x W); box drawn by hand in the augmented frame
        (Flip("x"), [1, 2, 11, 7], [42, 2, 52, 7]),
        (Flip("y"), [1, 2, 11, 7], [1, 30, 11, 35]),
        (Rotate(1), [1, 2, 11, 7], [46, 1, 51, 11]),   # view is 53 x 37: x = W - y', y = x'
        (Rotate(2), [1, 2, 11, 7], [42, 30, 52, 35]),
        (Rotate(3), [1, 2, 11, 7], [2, 26, 7, 36]),    # x = y', y = H - x'
        (Identity(), [1, 2, 11, 7], [1, 2, 11, 7]),
        (Photometric("gamma", 0.5), [1, 2, 11, 7], [1, 2, 11, 7]),
    ],
)
def test_box_inverse_by_hand(view, box_in_view, expected):
    out = view.boxes_to_original(np.array([box_in_view], dtype=float), (37, 53))
    np.testing.assert_array_equal(out, [expected])


def test_boxes_to_original_handles_empty_and_many():
    view = Rotate(1)
    assert view.boxes_to_original(np.zeros((0, 4)), (10, 20)).shape == (0, 4)
    boxes = np.array([[0, 0, 10, 20], [1, 1, 2, 2]], dtype=float)  # the rot90 view of 10x20 is 20x10
    np.testing.assert_array_equal(view.boxes_to_original(boxes, (10, 20)), [[0, 0, 20, 10], [18, 1, 19, 2]])


@pytest.mark.parametrize(
    ("spec", "pixel_in", "pixel_out"),
    [("brightness1.3", 100, 130), ("brightness2", 200, 255), ("gamma2", 51, 10), ("contrast1", 77, 77)],
)
def test_photometric_values(spec, pixel_in, pixel_out):
    img = np.full((3, 5, 3), pixel_in, dtype=np.uint8)
    assert int(parse_view(spec).apply(img)[0, 0, 0]) == pixel_out


def test_contrast_stretches_around_the_mean():
    img = np.zeros((2, 2, 3), dtype=np.uint8)
    img[0] = 100
    img[1] = 200  # mean 150
    out = parse_view("contrast2").apply(img)
    assert out[0, 0, 0] == 50 and out[1, 0, 0] == 250


def test_parse_views_spec_round_trip():
    views = parse_views("identity, vflip,hflip,rot90,rot180,rot270,scale0.75,scale1.25,brightness1.3,contrast0.8,gamma0.7")
    names = [v.name for v in views]
    assert names == ["identity", "vflip", "hflip", "rot90", "rot180", "rot270", "scale0.75", "scale1.25",
                     "brightness1.3", "contrast0.8", "gamma0.7"]
    assert [parse_view(n) for n in names] == list(views)
    assert parse_views(["identity", Flip("y")]) == (Identity(), Flip("y"))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("identity,vflp", "did you mean 'vflip'"),
        ("scal0.75", "did you mean 'scale0.75'"),
        ("bright1.2", "did you mean 'brightness1.2'"),
        ("scale", r"needs a positive factor in \[0.25, 4\] after 'scale', e.g. 'scale1.25'$"),
        ("scale-1", r"needs a positive factor .* got '-1'$"),  # review: the hint read 'scalee-1'
        ("brightness-2", r"needs a positive factor in \[0.1, 10\] after 'brightness'"),  # and repeated the typo
        ("scale0", r"scale factor must be in \[0.25, 4\], got 0"),
        ("scale100", r"must be in \[0.25, 4\], got 100"),
        ("gamma0.01", r"gamma factor must be in \[0.1, 10\]"),
        ("vflip,vflip", "more than once"),
        (" , ", "at least one view"),
    ],
)
def test_parse_views_errors(spec, message):
    with pytest.raises(AfssError, match=message):
        parse_views(spec)
