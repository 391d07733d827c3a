import cv2
import numpy as np
import pytest
from PIL import Image

from afss.io.images import ImageReadError, load_image, read_mask, to_uint8

RGB = np.dstack([np.full((5, 7), 200, np.uint8), np.full((5, 7), 100, np.uint8), np.full((5, 7), 10, np.uint8)])


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".ppm"])
def test_lossless_rgb_formats_come_back_rgb(tmp_path, ext):
    path = tmp_path / f"a{ext}"
    cv2.imwrite(str(path), cv2.cvtColor(RGB, cv2.COLOR_RGB2BGR))
    img = load_image(path)
    np.testing.assert_array_equal(img.rgb, RGB)
    assert img.size_hw == (5, 7) and img.channels == 3 and img.bit_depth == 8


def test_jpeg_gray_and_pgm(tmp_path):
    gray = np.tile(np.arange(0, 240, 30, dtype=np.uint8), (6, 1))
    cv2.imwrite(str(tmp_path / "g.pgm"), gray)
    img = load_image(tmp_path / "g.pgm")
    assert img.channels == 1 and img.rgb.shape == (6, 8, 3)
    np.testing.assert_array_equal(img.rgb[..., 0], gray)
    np.testing.assert_array_equal(img.rgb[..., 1], img.rgb[..., 2])
    cv2.imwrite(str(tmp_path / "g.jpg"), gray, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert np.abs(load_image(tmp_path / "g.jpg").rgb[..., 0].astype(int) - gray).max() <= 3


def test_rgba_is_composited_over_black(tmp_path):
    """A transparent background is empty sky whatever colour its hidden pixels hold (a cut-out on white
    read as a white scene, and the photometric teacher labelled the sky)."""
    alpha = np.full((5, 7), 255, np.uint8)
    alpha[:, :3] = 0  # transparent, hiding white
    alpha[:, 3] = 128
    colour = RGB.copy()
    colour[:, :3] = 255
    Image.fromarray(np.dstack([colour, alpha]), "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.channels == 4
    np.testing.assert_array_equal(img.rgb[:, 4:], RGB[:, 4:])  # opaque: as stored
    assert img.rgb[:, :3].max() == 0  # transparent: black
    assert img.rgb[0, 3].tolist() == [100, 50, 5]  # half: half
    Image.fromarray(np.dstack([RGB[..., 0], alpha]), "LA").save(tmp_path / "la.png")  # gray + alpha
    gray = load_image(tmp_path / "la.png").rgb
    assert gray[0, 0].tolist() == [0, 0, 0] and gray[0, 4].tolist() == [200, 200, 200]


def test_16bit_rgba_scales_its_colours_without_the_alpha(tmp_path):
    img = np.zeros((4, 4, 4), np.uint16)
    img[..., 3] = 65535  # opaque at 16-bit full scale
    img[..., :3] = 4095  # a 12-bit camera's white
    cv2.imwrite(str(tmp_path / "a.png"), img)
    assert load_image(tmp_path / "a.png").rgb.min() == 255  # not 16 levels, as the alpha's 65535 would make it


def test_a_hot_pixel_or_inf_does_not_darken_the_frame():
    frame = np.zeros((64, 64), np.uint16)
    frame[20:40, 20:40] = 600  # a 10-bit-range target
    frame[0, 0] = 4095  # one cosmic-ray hit
    out = to_uint8(frame)
    assert out[30, 30] == 150 and out[0, 0] == 255  # scaled by 1023, the hit saturates
    floats = np.zeros((64, 64), np.float32)
    floats[20:40, 20:40] = 0.5
    floats[0, 0], floats[0, 1], floats[0, 2] = np.inf, np.nan, 1e6
    out = to_uint8(floats)
    assert out[30, 30] == 128 and out[0, 0] == 255 and out[0, 1] == 0 and out[0, 2] == 255
    # a far target of 3x3 pixels is not an outlier: it keeps the frame's scale (the brightest 16 pixels
    # left out of the peak made it as grey as a bias-1000 background; review)
    far = np.full((64, 64), 1000, np.uint16)
    far[30:33, 30:33] = 4000
    out = to_uint8(far)
    assert out[31, 31] == 249 and out[0, 0] == 62  # scaled by 4095


def test_16bit_full_range_and_12bit_in_16(tmp_path):
    full = np.array([[0, 65535, 32768]], np.uint16)
    cv2.imwrite(str(tmp_path / "full.png"), full)
    img = load_image(tmp_path / "full.png")
    assert img.bit_depth == 16 and img.rgb[0, :, 0].tolist() == [0, 255, 128]
    twelve = np.array([[0, 4095, 2048]], np.uint16)  # a 12-bit sensor stored in 16 bits
    cv2.imwrite(str(tmp_path / "twelve.tif"), twelve)
    assert load_image(tmp_path / "twelve.tif").rgb[0, :, 0].tolist() == [0, 255, 128]


def test_float_images_scale():
    assert to_uint8(np.array([[0.0, 0.5, 1.0]], np.float32)).tolist() == [[0, 128, 255]]


def test_exif_orientation_is_ignored(tmp_path):
    tall = np.zeros((8, 4, 3), np.uint8)
    tall[0, 0] = 255
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW" tag: must not change the stored pixels we return
    Image.fromarray(tall).save(tmp_path / "r.jpg", exif=exif, quality=100)
    img = load_image(tmp_path / "r.jpg")
    assert img.size_hw == (8, 4) and img.rgb[0, 0, 0] > 200


def test_a_size_turned_by_exif_orientation_is_named(tmp_path):
    """Ground truth drawn where the picture is shown turned (CVAT, browsers) does not fit the stored pixels."""
    from afss.io.images import exif_orientation, turned_note

    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "r.jpg", exif=exif)
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(tmp_path / "plain.jpg")
    assert exif_orientation(tmp_path / "r.jpg") == 6 and exif_orientation(tmp_path / "plain.jpg") == 1
    assert "EXIF orientation 6 turns it for display" in turned_note(tmp_path / "r.jpg", (60, 40), (40, 60))
    assert turned_note(tmp_path / "r.jpg", (50, 40), (40, 60)) == ""  # another size altogether
    assert turned_note(tmp_path / "plain.jpg", (60, 40), (40, 60)) == ""
    assert exif_orientation(tmp_path / "missing.jpg") == 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n garbage" * 10), "cannot decode image"),
        (lambda p: p.mkdir(), "not a file"),
    ],
)
def test_bad_images_raise_one_line_naming_the_file(tmp_path, make, message):
    path = tmp_path / "x.jpg"
    make(path)
    with pytest.raises(ImageReadError, match=message) as err:
        load_image(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("ext, message", [(".png", "truncated PNG"), (".tif", "cannot decode image")])
def test_truncated_png_or_tiff_is_one_error_and_nothing_on_stderr(tmp_path, capfd, ext, message):
    """libpng and libtiff print their own lines on stderr, through any progress bar, before afss's one line."""
    cv2.imwrite(str(tmp_path / f"ok{ext}"), np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / f"ok{ext}").read_bytes()
    (tmp_path / f"cut{ext}").write_bytes(data[: len(data) // 2])
    capfd.readouterr()
    with pytest.raises(ImageReadError, match=f"cut{ext}: {message}"):
        load_image(tmp_path / f"cut{ext}")
    assert capfd.readouterr().err == ""
    if ext == ".png":  # bytes after the end chunk are not a cut
        (tmp_path / "after.png").write_bytes(data + b"trailing bytes")
        assert load_image(tmp_path / "after.png").size_hw == (64, 64)


def test_truncated_jpeg_is_an_error(tmp_path):
    cv2.imwrite(str(tmp_path / "ok.jpg"), np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / "ok.jpg").read_bytes()
    assert load_image(tmp_path / "ok.jpg").size_hw == (64, 64)
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageReadError, match="cut.jpg: truncated JPEG"):
        load_image(tmp_path / "cut.jpg")


def test_jpeg_with_data_after_its_end_is_read_and_a_thumbnails_end_does_not_hide_a_cut(tmp_path):
    cv2.imwrite(str(tmp_path / "ok.jpg"), np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "trailer.jpg").write_bytes(data + bytes(4096))  # a camera's trailer after the end marker
    np.testing.assert_array_equal(load_image(tmp_path / "trailer.jpg").rgb, load_image(tmp_path / "ok.jpg").rgb)
    app1 = b"Exif\x00\x00" + b"\xff\xd8 thumbnail \xff\xd9" * 4  # an embedded picture's own end marker
    segment = b"\xff\xe1" + (len(app1) + 2).to_bytes(2, "big") + app1
    with_thumbnail = data[:2] + segment + data[2:]
    (tmp_path / "thumb.jpg").write_bytes(with_thumbnail)
    assert load_image(tmp_path / "thumb.jpg").size_hw == (64, 64)
    (tmp_path / "cut.jpg").write_bytes(with_thumbnail[: len(with_thumbnail) * 2 // 3])
    with pytest.raises(ImageReadError, match="cut.jpg: truncated JPEG"):
        load_image(tmp_path / "cut.jpg")


def test_read_mask_thresholds_jpeg_noise(tmp_path):
    mask = np.zeros((40, 40), np.uint8)
    mask[10:30, 5:25] = 255
    cv2.imwrite(str(tmp_path / "m.jpg"), mask, [cv2.IMWRITE_JPEG_QUALITY, 60])
    got = read_mask(tmp_path / "m.jpg")
    assert (got == (mask > 0)).mean() > 0.99


@pytest.mark.parametrize("convention", ["0/255", "0/1", "alpha only", "gray+alpha", "16-bit 0/65535",
                                        "empty, opaque", "empty, opaque gray+alpha"])
def test_read_mask_finds_the_foreground_of_every_common_convention(tmp_path, convention):
    """0/1 label images and masks drawn in the alpha channel alone read as empty ground truth before."""
    fg = np.zeros((30, 40), bool)
    fg[5:20, 8:30] = True
    u8 = fg.astype(np.uint8)
    pixels = {"0/255": u8 * 255, "0/1": u8,
              "alpha only": np.dstack([np.zeros_like(u8)] * 3 + [u8 * 255]),
              "gray+alpha": np.dstack([u8 * 255, np.full_like(u8, 255)]),
              "16-bit 0/65535": fg.astype(np.uint16) * 65535,
              "empty, opaque": np.dstack([np.zeros_like(u8)] * 3 + [np.full_like(u8, 255)]),
              "empty, opaque gray+alpha": np.dstack([np.zeros_like(u8), np.full_like(u8, 255)])}[convention]
    if convention.startswith("empty"):  # an image with no object: black, fully opaque, not the whole image
        fg = np.zeros_like(fg)
    if convention.endswith("gray+alpha"):  # OpenCV writes no 2-channel PNG: PIL's LA mode does
        from PIL import Image

        Image.fromarray(pixels, mode="LA").save(tmp_path / "m.png")
    else:
        cv2.imwrite(str(tmp_path / "m.png"), pixels)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), fg)


def test_a_jpeg_masks_codec_noise_is_not_read_as_a_zero_one_label(tmp_path):
    """A maximum of 1 means a 0/1 label image in a PNG; in a JPEG it is the codec's noise around an
    empty mask, and the 0/1 rule read that noise as foreground."""
    from afss.datasets.masks_folder import binary_mask_instances

    noise = np.zeros((32, 32), np.uint8)
    noise[4:6, 4:6] = 1  # what a near-black JPEG can decode to
    cv2.imwrite(str(tmp_path / "m.png"), noise)
    cv2.imwrite(str(tmp_path / "m.jpg"), noise, [cv2.IMWRITE_JPEG_QUALITY, 100])
    assert cv2.imread(str(tmp_path / "m.jpg"), cv2.IMREAD_GRAYSCALE).max() == 1
    assert read_mask(tmp_path / "m.png").sum() == 4  # lossless: a 0/1 label, kept
    assert not read_mask(tmp_path / "m.jpg").any()
    assert binary_mask_instances(tmp_path / "m.png", (32, 32))[2] == "ok"
    assert binary_mask_instances(tmp_path / "m.jpg", (32, 32))[2] == "empty"
    from afss.io.images import is_lossy

    # WebP is usually lossy too (TANGO's reader thresholds it so as well); the lossless formats keep the rule
    assert [is_lossy(n) for n in ("m.webp", "M.JPG", "m.jpeg", "m.png", "m.tif", "m.bmp")] == [True] * 3 + [False] * 3


def test_tiffs_opencv_reads_short_are_read_as_stored(tmp_path):
    """OpenCV reads a 16-bit grey + alpha TIFF as its high bytes (12-bit 3000 became 11 of 255), and
    refuses a 5-channel one with its own lines on stderr."""
    import tifffile

    grey_alpha = np.zeros((8, 8, 2), np.uint16)
    grey_alpha[..., 0], grey_alpha[..., 1] = 3000, 65535
    tifffile.imwrite(tmp_path / "ga16.tif", grey_alpha, photometric="minisblack", extrasamples=["unassalpha"])
    img = load_image(tmp_path / "ga16.tif")
    assert (img.channels, img.bit_depth) == (2, 16) and img.rgb[0, 0].tolist() == [187] * 3  # 3000 / 4095
    tifffile.imwrite(tmp_path / "apart.tif", np.moveaxis(grey_alpha, -1, 0), photometric="minisblack",
                     planarconfig="separate", extrasamples=["unassalpha"])  # planes stored apart
    assert load_image(tmp_path / "apart.tif").rgb[0, 0].tolist() == [187] * 3
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((8, 8, 5), np.uint8), photometric="minisblack", planarconfig="contig")
    with pytest.raises(ImageReadError, match=r"five.tif: 5 channels, expected 1 \(gray\), 3 \(RGB\) or 4"):
        load_image(tmp_path / "five.tif")


def test_opencv_log_level_is_put_back_after_decoding_in_threads(tmp_path):
    """The level is one for the process: threads decoding at once left it at SILENT for good (review)."""
    from concurrent.futures import ThreadPoolExecutor

    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((64, 64, 3), np.uint8))
    before = cv2.utils.logging.getLogLevel()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda _: load_image(tmp_path / "a.png"), range(200)))
    assert cv2.utils.logging.getLogLevel() == before
