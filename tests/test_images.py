import io
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from PIL import Image

from keras_seresnet.data.images import ImageError, list_images, read_image, read_images


def save(path, image, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **kwargs)
    return path


def png_bomb(path, width=100_000, height=100_000):
    """A valid 1x1 PNG whose header is rewritten to declare width x height."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr : ihdr + 17]))
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", crc)
    path.write_bytes(bytes(data))
    return path


def test_32px_rgb_is_read_exactly(tmp_path):
    pixels = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    path = save(tmp_path / "a.png", Image.fromarray(pixels))
    np.testing.assert_array_equal(read_image(path), pixels)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "I;16", "CMYK", "1"])
def test_any_mode_becomes_rgb_uint8(tmp_path, mode):
    image = Image.new("RGB", (40, 20), (200, 100, 50)).convert(mode)
    suffix = ".tiff" if mode == "CMYK" else ".png"
    path = save(tmp_path / f"x{suffix}", image)
    out = read_image(path)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8


def test_transparency_composites_over_white(tmp_path):
    path = save(tmp_path / "t.png", Image.new("RGBA", (32, 32), (0, 0, 0, 0)))
    assert (read_image(path) == 255).all()


def test_large_image_is_centre_cropped_then_resized(tmp_path):
    # Left and right thirds red, centre square blue: the crop keeps only blue.
    pixels = np.zeros((64, 192, 3), np.uint8)
    pixels[:, :64] = pixels[:, 128:] = (255, 0, 0)
    pixels[:, 64:128] = (0, 0, 255)
    out = read_image(save(tmp_path / "wide.png", Image.fromarray(pixels)))
    assert out.shape == (32, 32, 3)
    np.testing.assert_array_equal(out[..., 2], 255)
    np.testing.assert_array_equal(out[..., 0], 0)


def test_gif_gives_first_frame(tmp_path):
    frames = [Image.new("RGB", (32, 32), c) for c in [(255, 0, 0), (0, 255, 0)]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    out = read_image(path)
    assert out[..., 0].mean() > 200 and out[..., 1].mean() < 50


def test_broken_files_raise_image_error_naming_the_file(tmp_path):
    good = save(tmp_path / "good.jpg", Image.new("RGB", (64, 64), (10, 20, 30)))
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    text = tmp_path / "text.png"
    text.write_text("not an image")
    for path, reason in [
        (truncated, "decode"),
        (empty, "empty"),
        (text, "not a readable image"),
        (tmp_path / "missing.png", "no such file"),
    ]:
        with pytest.raises(ImageError, match=reason) as info:
            read_image(path)
        assert info.value.path == str(path) and str(path) in str(info.value)


def test_decompression_bomb_refused_before_decoding(tmp_path):
    bomb = png_bomb(tmp_path / "bomb.png")
    assert bomb.stat().st_size < 200
    with pytest.raises(ImageError, match=r"10,?000,?000,?000 pixels\)? exceeds") as info:
        read_image(bomb)
    assert info.value.path == str(bomb)
    with pytest.raises(ImageError, match="exceeds"):
        read_image(save(tmp_path / "big.png", Image.new("L", (100, 100))), max_pixels=9_999)


def test_read_images_keeps_order_and_reports_every_broken_file(tmp_path):
    paths = []
    for i in range(5):
        paths.append(str(save(tmp_path / f"{i}.png", Image.new("RGB", (32, 32), (i, i, i)))))
    bad = [tmp_path / "x.png", tmp_path / "y.jpg"]
    for b in bad:
        b.write_bytes(b"garbage")
    paths = paths[:2] + [str(bad[0])] + paths[2:] + [str(bad[1])]
    images, kept, errors = read_images(paths, workers=3)
    assert images.shape == (5, 32, 32, 3)
    assert [int(v) for v in images[:, 0, 0, 0]] == [0, 1, 2, 3, 4]
    assert kept == [p for p in paths if "x.png" not in p and "y.jpg" not in p]
    assert [e.path for e in errors] == [str(b) for b in bad]


def test_list_images_sorted_any_case_recursive_and_ignores_other_files(tmp_path):
    for rel in [
        "b.JPG",
        "a.png",
        "sub/c.Jpeg",
        "sub/deep/d.webp",
        "e.bmp",
        "f.GIF",
        "notes.txt",
        "g.jpg.bak",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    names = [os.path.relpath(p, tmp_path) for p in list_images(tmp_path)]
    assert names == sorted(["a.png", "b.JPG", "e.bmp", "f.GIF", "sub/c.Jpeg", "sub/deep/d.webp"])
    flat = [os.path.relpath(p, tmp_path) for p in list_images(tmp_path, recursive=False)]
    assert flat == ["a.png", "b.JPG", "e.bmp", "f.GIF"]


def test_hidden_files_and_folders_are_not_listed(tmp_path):
    # What copying from a Mac and opening the folder in Jupyter leave behind.
    for rel in [
        "cat/0001.jpg",
        "cat/._0001.jpg",
        ".ipynb_checkpoints/0001-checkpoint.jpg",
        "cat/.hidden/0002.jpg",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert list_images(tmp_path) == [str(tmp_path / "cat" / "0001.jpg")]


def linked_folder(tmp_path):
    """`inside/` holding a real image and links of every kind; `outside/` the targets."""
    outside, inside = tmp_path / "outside", tmp_path / "inside"
    save(outside / "secret.png", Image.new("RGB", (32, 32)))
    save(outside / "deeper" / "more.png", Image.new("RGB", (32, 32)))
    save(inside / "real.png", Image.new("RGB", (32, 32)))
    (inside / "link_out.png").symlink_to(outside / "secret.png")
    (inside / "dir_out").symlink_to(outside)
    (inside / "link_in.png").symlink_to(inside / "real.png")
    (inside / "loop").symlink_to(inside)
    return inside


def test_symlinks_are_followed_wherever_they_lead(tmp_path):
    inside = linked_folder(tmp_path)
    with pytest.warns(UserWarning, match=r"loop.*contains it") as caught:
        names = [os.path.relpath(p, inside) for p in list_images(inside)]
    assert names == [
        "dir_out/deeper/more.png",
        "dir_out/secret.png",
        "link_in.png",
        "link_out.png",
        "real.png",
    ]
    assert len(caught) == 1  # only the cycle is worth a warning


def test_follow_symlinks_false_leaves_every_link_out(tmp_path):
    inside = linked_folder(tmp_path)
    with pytest.warns(UserWarning, match=r"Left out 4 symbolic link\(s\).*follow_symlinks=False"):
        names = [os.path.relpath(p, inside) for p in list_images(inside, follow_symlinks=False)]
    assert names == ["real.png"]


def test_link_cycles_terminate(tmp_path):
    # a/b/up -> a and a/b/self -> a/b: two cycles at different depths.
    save(tmp_path / "a" / "b" / "x.png", Image.new("RGB", (32, 32)))
    (tmp_path / "a" / "b" / "up").symlink_to(tmp_path / "a")
    (tmp_path / "a" / "b" / "self").symlink_to(tmp_path / "a" / "b")
    with pytest.warns(UserWarning, match="contains it"):
        assert [os.path.relpath(p, tmp_path) for p in list_images(tmp_path)] == ["a/b/x.png"]


def test_dangling_link_is_listed_and_named_by_the_reader(tmp_path):
    (tmp_path / "gone.png").symlink_to(tmp_path / "deleted.png")
    assert list_images(tmp_path) == [str(tmp_path / "gone.png")]
    with pytest.raises(ImageError, match=r"gone\.png: broken symbolic link .*deleted\.png"):
        read_image(tmp_path / "gone.png")


def test_importing_changes_no_pillow_setting(tmp_path):
    # A fresh interpreter: the settings a user made before importing survive.
    code = textwrap.dedent(
        """
        from PIL import Image, ImageFile
        ImageFile.LOAD_TRUNCATED_IMAGES = True
        Image.MAX_IMAGE_PIXELS = 123
        import keras_seresnet.data.images
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True, ImageFile.LOAD_TRUNCATED_IMAGES
        assert Image.MAX_IMAGE_PIXELS == 123, Image.MAX_IMAGE_PIXELS
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_list_images_missing_or_not_a_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images(tmp_path / "missing")
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        list_images(tmp_path / "f")
