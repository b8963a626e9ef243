"""iNaturalist 2018 (Van Horn et al. 2018): 8142 species, read from its JSON annotation files.

Layout under ``root`` (as published)::

    train2018.json, val2018.json
        COCO-style objects: "images" [{"id", "file_name", ...}],
        "annotations" [{"image_id", "category_id", ...}],
        "categories" [{"id", ...}]  (ids 0…8141)
    train_val2018/<supercategory>/<category id>/<image>.jpg
        the images, at root/<file_name> as the JSON files name them

The long-tailed profile is the data set's own (1000 … 2 training images
per class, 437,513 in all), so no subset is drawn; the long-tail
literature reports accuracy on ``val2018`` (3 images per class), which is the
test split here. A class is its category id, so labels run over 0…K−1 with
K the number of categories listed in ``train2018.json`` (8142); the
validation file must list the same categories.

Images are read lazily and augmented exactly as ImageNet-LT's
(:mod:`full_model.data.imagenet_lt`): every random draw comes from a
per-sample seed, so the order and the augmentation resume exactly.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .base import ImageListData, layout_error, require_file

INAT2018_LAYOUT = ("train2018.json and val2018.json (COCO-style 'images', 'annotations' and 'categories' of "
                   "iNaturalist 2018) with the images at root/<file_name> (train_val2018/...)")
#: the number of categories of iNaturalist 2018
INAT2018_CLASSES = 8142


def _read_split(root: Path, name: str):
    """(file names, labels, sorted category ids) of one annotation file."""
    path = require_file(root, name, INAT2018_LAYOUT)
    try:
        doc = json.loads(path.read_text())
    except (ValueError, OSError) as exc:
        raise layout_error(root, INAT2018_LAYOUT, f"'{path}' is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or any(not isinstance(doc.get(k), list) for k in ("images", "annotations",
                                                                                   "categories")):
        raise layout_error(root, INAT2018_LAYOUT, f"'{path}' lacks the lists 'images', 'annotations' and "
                                                  "'categories'")
    try:
        files = {int(img["id"]): str(img["file_name"]) for img in doc["images"]}
        categories = sorted(int(c["id"]) for c in doc["categories"])
        pairs = [(int(a["image_id"]), int(a["category_id"])) for a in doc["annotations"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise layout_error(root, INAT2018_LAYOUT, f"'{path}' has an entry without an integer id, file_name, "
                                                  f"image_id or category_id ({type(exc).__name__}: {exc})") from None
    if not pairs:
        raise layout_error(root, INAT2018_LAYOUT, f"'{path}' lists no annotated images")
    if categories != list(range(len(categories))):
        raise layout_error(root, INAT2018_LAYOUT, f"the category ids of '{path}' are not 0…{len(categories) - 1}")
    pairs.sort()  # by image id: a fixed order whatever the file's
    names, labels = [], []
    for image_id, category in pairs:
        if image_id not in files:
            raise layout_error(root, INAT2018_LAYOUT, f"'{path}' annotates image {image_id}, which its 'images' "
                                                      "do not list")
        if not 0 <= category < len(categories):
            raise layout_error(root, INAT2018_LAYOUT, f"'{path}' gives image {image_id} the unknown category "
                                                      f"{category}")
        names.append(files[image_id])
        labels.append(category)
    return names, np.asarray(labels, dtype=np.int64), len(categories)


def read_inat2018(root) -> ImageListData:
    """Both annotation files → the training and validation (test) splits."""
    root = Path(root)
    train_files, y_train, K = _read_split(root, "train2018.json")
    test_files, y_test, K_val = _read_split(root, "val2018.json")
    if K_val != K:
        raise layout_error(root, INAT2018_LAYOUT, f"train2018.json lists {K} categories but val2018.json {K_val}")
    first = root / train_files[0]
    if not first.is_file():
        raise layout_error(root, INAT2018_LAYOUT, f"missing image '{first}' named in train2018.json")
    counts = np.bincount(y_train, minlength=K)
    return ImageListData("inat2018", root, train_files, y_train, test_files, y_test, K, default_backbone="resnet50",
                         profile={"profile": "inat2018", "ratio": float(counts.max() / max(counts.min(), 1))})
