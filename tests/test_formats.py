import gzip
import lzma
import pickle
import re
import struct

import numpy as np
import pytest

from deepernets.data import formats
from deepernets.errors import UserError


def idx_images(n: int, rows: int = 28, cols: int = 28) -> tuple[bytes, np.ndarray]:
    pixels = np.random.default_rng(0).integers(0, 256, (n, rows, cols), dtype=np.uint8)
    return struct.pack(">IIII", 2051, n, rows, cols) + pixels.tobytes(), pixels


def idx_labels(labels: list[int]) -> bytes:
    return struct.pack(">II", 2049, len(labels)) + bytes(labels)


def test_idx_images_and_labels_round_trip(tmp_path):
    raw, pixels = idx_images(3)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(raw))
    images = formats.parse_idx(path, formats.read_bytes(path))
    assert images.shape == (3, 1, 28, 28)
    assert np.array_equal(images[:, 0], pixels)
    labels = formats.parse_idx(tmp_path / "l", idx_labels([5, 0, 4]))
    assert labels.dtype == np.int64 and labels.tolist() == [5, 0, 4]


def test_idx_truncated_file_names_the_file(tmp_path):
    raw, _ = idx_images(3)
    with pytest.raises(UserError, match="imgs.*truncated"):
        formats.parse_idx(tmp_path / "imgs", raw[:-10])


def test_idx_wrong_magic(tmp_path):
    with pytest.raises(UserError, match="magic number 1234"):
        formats.parse_idx(tmp_path / "bad", struct.pack(">II", 1234, 0))


def test_idx_label_out_of_range(tmp_path):
    with pytest.raises(UserError, match="label 12"):
        formats.parse_idx(tmp_path / "labels", idx_labels([1, 12]))


def cifar_records(labels: list[int], label_bytes: int = 1) -> tuple[bytes, np.ndarray]:
    pixels = np.random.default_rng(1).integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    prefix = np.zeros((len(labels), label_bytes), np.uint8)
    prefix[:, -1] = labels
    return np.concatenate([prefix, pixels], 1).tobytes(), pixels


def test_cifar_binary_plain_and_xz(tmp_path):
    raw, pixels = cifar_records([6, 9, 9])
    path = tmp_path / "data_batch_1.bin.xz"
    path.write_bytes(lzma.compress(raw))
    images, labels = formats.parse_cifar_binary(path, formats.read_bytes(path), 10)
    assert images.shape == (3, 3, 32, 32)
    assert labels.tolist() == [6, 9, 9]
    # channel planes: R then G then B, each row-major
    assert np.array_equal(images[0, 1].ravel(), pixels[0, 1024:2048])


def test_cifar100_binary_uses_fine_label(tmp_path):
    raw, _ = cifar_records([42, 99], label_bytes=2)
    _, labels = formats.parse_cifar_binary(tmp_path / "train.bin", raw, 100, label_bytes=2)
    assert labels.tolist() == [42, 99]


def test_cifar_binary_truncated_and_bad_label(tmp_path):
    raw, _ = cifar_records([1, 2])
    with pytest.raises(UserError, match="truncated"):
        formats.parse_cifar_binary(tmp_path / "b.bin", raw[:-1], 10)
    raw, _ = cifar_records([1, 11])
    with pytest.raises(UserError, match="label 11"):
        formats.parse_cifar_binary(tmp_path / "b.bin", raw, 10)


def test_cifar_python_version_with_restricted_unpickler(tmp_path):
    pixels = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    blob = pickle.dumps({b"data": pixels, b"labels": [3, 8]}, protocol=2)
    images, labels = formats.parse_cifar_python(tmp_path / "data_batch_1", blob, 10)
    assert images.shape == (2, 3, 32, 32) and labels.tolist() == [3, 8]
    assert np.array_equal(images.reshape(2, -1), pixels)


class Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code(tmp_path):
    blob = pickle.dumps({"data": Exploit()})
    with pytest.raises(UserError, match="forbidden global"):
        formats.unpickle_plain(tmp_path / "evil", blob)


def test_md5_check(tmp_path):
    assert formats.check_md5(tmp_path / "f", b"abc", "900150983cd24fb0d6963f7d28e17f72") is True
    assert formats.check_md5(tmp_path / "f", b"abc", None) is None
    with pytest.raises(UserError, match="MD5"):
        formats.check_md5(tmp_path / "f", b"abd", "900150983cd24fb0d6963f7d28e17f72")


def test_image_folder(tmp_path):
    from PIL import Image

    for split, count in (("train", 2), ("test", 1)):
        for name, color in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            (tmp_path / split / name).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (40, 30), color).save(tmp_path / split / name / f"{i}.png")
    images, labels, files = formats.read_image_folder(tmp_path / "train", ["cat", "dog"], 32, 3)
    assert images.shape == (4, 3, 32, 32) and labels.tolist() == [0, 0, 1, 1]
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["train/cat/0.png", "train/cat/1.png",
                                                                   "train/dog/0.png", "train/dog/1.png"]  # fmt: skip
    assert images[0, 0].min() == 255 and images[2, 2].min() == 255


def test_sixteen_bit_grayscale_is_scaled_to_eight_bits_not_clipped(tmp_path):
    from PIL import Image

    levels = np.array([[0, 257 * 100], [257 * 200, 65535]], dtype=np.uint16)
    Image.fromarray(levels).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as img:
        assert img.mode.startswith("I")  # a 16-bit PNG, as Pillow opens it
    assert formats.read_image(tmp_path / "deep.png", 1, 2)[0].tolist() == [[0, 100], [200, 255]]


def test_a_float_image_is_refused_in_one_line_not_clipped_to_black(tmp_path):
    from PIL import Image

    Image.fromarray(np.array([[0.0, 0.5], [0.25, 1.0]], dtype=np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(UserError, match=r"float.tif: its pixels are floats, .* save it with 8- or 16-bit pixels"):
        formats.read_image(tmp_path / "float.tif", 1, 2)


def test_a_folder_dataset_is_grayscale_only_when_every_training_image_is(tmp_path):
    from PIL import Image

    from deepernets import data

    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / split / name).mkdir(parents=True)
            Image.new("L", (12, 12), 100).save(tmp_path / split / name / "0.png")
    assert data.load(f"folder:{tmp_path}", image_size=8).in_channels == 1
    Image.new("RGB", (12, 12), (255, 0, 0)).save(tmp_path / "train" / "b" / "1.png")  # after a grayscale one
    colour = data.load(f"folder:{tmp_path}", image_size=8)
    assert colour.in_channels == 3 and colour.train_images[-1, :, 0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize(
    "layout, message",
    [
        ({"train/a/0.png": 1, "test/a/0.png": 1}, "has 1 class sub-folder(s): a classifier needs at least two"),
        ({"train/a/0.png": 1, "train/b/notes.txt": 0, "test/a/0.png": 1}, "train/b has no images (png, jpg"),
        ({"train/a/0.png": 1, "train/b/0.png": 1, "test/a/x.txt": 0}, "has no images in test/<class>/"),
    ],
)
def test_a_folder_dataset_with_a_class_missing_or_empty_is_one_line(tmp_path, layout, message):
    from PIL import Image

    from deepernets import data

    for path, is_image in layout.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        if is_image:
            Image.new("L", (8, 8)).save(tmp_path / path)
        else:
            (tmp_path / path).write_text("not an image")
    with pytest.raises(UserError, match=re.escape(message)):
        data.load(f"folder:{tmp_path}", image_size=8)


def test_a_photo_is_read_upright_as_its_exif_orientation_says(tmp_path):
    from PIL import Image

    img = Image.new("L", (4, 2), 0)
    img.putpixel((0, 0), 255)  # top left, in the sensor's orientation
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    img.save(tmp_path / "photo.png", exif=exif)
    upright = formats.read_image(tmp_path / "photo.png", 1, 4)[0]
    assert upright[0, -1] > 200 and upright[0, 0] < 50  # the top left pixel is now at the top right
