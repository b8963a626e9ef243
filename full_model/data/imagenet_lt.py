"""ImageNet-LT (Liu et al. 2019): split lists over ImageNet image files.

Layout under ``root``: ``ImageNet_LT_train.txt`` and ``ImageNet_LT_test.txt``,
one ``relative/path.JPEG label`` per line, with the images at
``root/relative/path.JPEG``. The lists already fix a long-tailed profile
(1280 … 5 images per class), so no subset is drawn.

Images are read lazily with Pillow. Training augmentation follows
theory.md §7: RandomResizedCrop 224 (scale 0.08–1, aspect 3/4–4/3),
horizontal flip, ColorJitter(0.4, 0.4, 0.4); evaluation resizes the short
side to 256 and takes the centre 224 crop. Every random draw comes from a
per-sample seed handed in by the sampler, so the augmentation does not
depend on the number of loader workers and a resumed run repeats it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from .base import ImageListData, layout_error, require_file

IMAGENET_LT_LAYOUT = ("ImageNet_LT_train.txt and ImageNet_LT_test.txt (lines 'relative/path.JPEG label') "
                      "with the images under the same folder")


def _read_list(root: Path, name: str):
    path = require_file(root, name, IMAGENET_LT_LAYOUT)
    files, labels = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit() or int(parts[1]) < 0:
            raise layout_error(root, IMAGENET_LT_LAYOUT, f"line {number} of '{path}' is not 'path label': {line!r}")
        files.append(parts[0])
        labels.append(int(parts[1]))
    if not files:
        raise layout_error(root, IMAGENET_LT_LAYOUT, f"'{path}' lists no images")
    return files, np.asarray(labels, dtype=np.int64)


def read_imagenet_lt(root, num_classes: int | None = None) -> ImageListData:
    """Read both split lists; K defaults to 1 + the largest label seen."""
    root = Path(root)
    train_files, y_train = _read_list(root, "ImageNet_LT_train.txt")
    test_files, y_test = _read_list(root, "ImageNet_LT_test.txt")
    K = int(max(y_train.max(), y_test.max()) + 1) if num_classes is None else int(num_classes)
    first = root / train_files[0]
    if not first.is_file():
        raise layout_error(root, IMAGENET_LT_LAYOUT, f"missing image '{first}' listed in ImageNet_LT_train.txt")
    counts = np.bincount(y_train, minlength=K)
    return ImageListData("imagenet-lt", root, train_files, y_train, test_files, y_test, K,
                         profile={"profile": "imagenet-lt", "ratio": float(counts.max() / max(counts.min(), 1))})


class ImageFiles(torch.utils.data.Dataset):
    """Dataset over image files; an item key is ``(index, seed)``.

    Returns (uint8 tensor (3, S, S), label). ``train`` selects the random
    augmentation (seeded by the key's seed) or the deterministic eval crop.
    """

    def __init__(self, root: Path, files: list[str], labels: np.ndarray, train: bool, size: int = 224):
        self.root, self.files, self.labels = Path(root), files, labels
        self.train, self.size = train, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key):
        index, seed = key if isinstance(key, tuple) else (key, 0)
        from PIL import Image

        path = self.root / self.files[index]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except (OSError, ValueError):
            raise layout_error(self.root, IMAGENET_LT_LAYOUT, f"cannot read image '{path}'") from None
        img = _train_view(img, self.size, np.random.default_rng(seed)) if self.train else _eval_view(img, self.size)
        array = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)  # (3, S, S)
        return torch.from_numpy(np.ascontiguousarray(array)), int(self.labels[index])


def _train_view(img, size: int, rng: np.random.Generator):
    from PIL import Image, ImageEnhance

    left, top, w, h = _random_resized_box(img.size, rng)
    img = img.resize((size, size), Image.BILINEAR, box=(left, top, left + w, top + h))
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    enhancers = [ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color]
    for j in rng.permutation(3):  # ColorJitter(0.4, 0.4, 0.4) in random order
        img = enhancers[j](img).enhance(float(rng.uniform(0.6, 1.4)))
    return img


def _random_resized_box(image_size, rng, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
    """A crop box of random area fraction and aspect; centre crop after 10 misses."""
    width, height = image_size
    area = width * height
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
        w, h = int(round(math.sqrt(target * aspect))), int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    side = min(width, height)
    return (width - side) // 2, (height - side) // 2, side, side


def _eval_view(img, size: int):
    from PIL import Image

    width, height = img.size
    short = round(size * 256 / 224)
    scale = short / min(width, height)
    img = img.resize((max(size, round(width * scale)), max(size, round(height * scale))), Image.BILINEAR)
    width, height = img.size
    left, top = (width - size) // 2, (height - size) // 2
    return img.crop((left, top, left + size, top + size))
