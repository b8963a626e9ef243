"""Long-tailed datasets for deep runs (theory.md §3, §7).

:func:`load_dataset` is the one entry point. Real data sets are read from a
user-given ``root`` in their published formats; the offline ones are
generated. Each subset data set keeps the full (balanced) test split and a
long-tailed training split with counts from :func:`long_tail_counts`.

==================== ===== ======== ==================================================
name                 K     n_max    source
==================== ===== ======== ==================================================
cifar10-lt           10    5000     root/cifar-10-batches-py (python pickles)
cifar100-lt          100   500      root/cifar-100-python (python pickles)
svhn-lt              10    len/10   root/train_32x32.mat, test_32x32.mat
stl10-lt             10    500      root/stl10_binary/*.bin
imagenet-lt          1000  (lists)  root/ImageNet_LT_{train,test}.txt + images
inat2018             8142  (files)  root/train2018.json, val2018.json + images
mnist1d-lt           10    500      mnist1d package, generated (no root)
digits-lt            10    100      sklearn.datasets.load_digits (no root)
synthetic-lt         K     500      Gaussian clusters in R^32 (no root)
synthetic-images-lt  K     5000     CIFAR-shaped class templates + noise (no root)
==================== ===== ======== ==================================================

SVHN follows [Y22]'s release: the training profile uses n_max = len(train)/10
and the test split keeps len(test)/10 per class, each class capped at what is
available (SVHN's own class sizes are unequal).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from lpm.core.errors import LPMInputError, check_choice, check_fits_in_memory, check_number
from lpm.core.profiles import check_ratio

from . import cifar, offline, stl10, svhn
from .base import ArrayData, ImageListData
from .longtail import long_tail_counts, select_long_tailed, subset_split

__all__ = ["DATASETS", "FILE_DATASETS", "SUBSET_DRAWS", "ArrayData", "ImageListData", "load_dataset",
           "long_tail_counts", "select_long_tailed", "dataset_needs_root", "default_n_max", "data_source", "SOURCES"]


@dataclass(frozen=True)
class _Spec:
    num_classes: int | None  # None: taken from the config (synthetic sets)
    n_max: int | None         # None: computed from the data (SVHN, ImageNet-LT)
    needs_root: bool
    backbone: str
    augment: str = "none"
    mean: tuple | None = None
    std: tuple | None = None


_HALF = (0.5, 0.5, 0.5)
_SPECS: dict[str, _Spec] = {
    "cifar10-lt": _Spec(10, 5000, True, "resnet32", "crop-flip", cifar.CIFAR_MEAN, cifar.CIFAR_STD),
    "cifar100-lt": _Spec(100, 500, True, "resnet32-wide", "crop-flip", cifar.CIFAR_MEAN, cifar.CIFAR_STD),
    "svhn-lt": _Spec(10, None, True, "resnet32", "none", _HALF, _HALF),
    "stl10-lt": _Spec(10, 500, True, "resnet32", "none", _HALF, _HALF),
    "imagenet-lt": _Spec(None, None, True, "resnet50-wide"),
    "inat2018": _Spec(None, None, True, "resnet50"),
    "mnist1d-lt": _Spec(10, 500, False, "cnn1d"),
    "digits-lt": _Spec(10, 100, False, "mlp"),
    "synthetic-lt": _Spec(None, 500, False, "mlp"),
    "synthetic-images-lt": _Spec(None, 5000, False, "resnet32", "crop-flip", cifar.CIFAR_MEAN, cifar.CIFAR_STD),
}
DATASETS = tuple(_SPECS)
#: data sets whose long-tailed profile is their own (lists or annotation files): no ratio, n_max or profile
FILE_DATASETS = ("imagenet-lt", "inat2018")
#: how the kept images of each class are drawn: ``uniform`` (seeded ``numpy.random.default_rng``) or
#: ``ldam-drw`` (Cao et al. 2019's release: the legacy generator seeded with ``subset_seed`` shuffles each
#: class's indices in label order and keeps the first n_k, the exact CIFAR-LT subsets of that code)
SUBSET_DRAWS = ("uniform", "ldam-drw")
DIGITS_POOL, SYNTHETIC_DIM = 120, 32
_TEST_PER_CLASS = {"mnist1d-lt": 200, "digits-lt": 50, "synthetic-lt": 100, "synthetic-images-lt": 100}


#: where each data set read from ``--root`` comes from (the official archive) and what the folder holds
SOURCES: dict[str, tuple[str, str]] = {
    "cifar10-lt": ("cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extracted",
                   f"root/{cifar.CIFAR10_LAYOUT}"),
    "cifar100-lt": ("cifar-100-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extracted",
                    f"root/{cifar.CIFAR100_LAYOUT}"),
    "svhn-lt": ("train_32x32.mat and test_32x32.mat (format 2) from http://ufldl.stanford.edu/housenumbers/",
                f"root/{svhn.SVHN_LAYOUT}"),
    "stl10-lt": ("stl10_binary.tar.gz from https://ai.stanford.edu/~acoates/stl10/, extracted",
                 f"root/{stl10.STL10_LAYOUT}"),
    "imagenet-lt": ("ImageNet_LT_train.txt and ImageNet_LT_test.txt from "
                    "https://github.com/zhmiao/OpenLongTailRecognition-OLTR (Liu et al. 2019) beside the ILSVRC "
                    "2012 train and val images from https://image-net.org/download.php",
                    "root/ImageNet_LT_train.txt, root/ImageNet_LT_test.txt and the images at the paths they list "
                    "(e.g. root/train/n01440764/n01440764_10026.JPEG)"),
    "inat2018": ("train_val2018.tar.gz, train2018.json.tar.gz and val2018.json.tar.gz of the iNaturalist 2018 "
                 "competition from https://github.com/visipedia/inat_comp/tree/master/2018, extracted",
                 "root/train2018.json, root/val2018.json and the images at their file_name paths "
                 "(e.g. root/train_val2018/Plantae/7477/<id>.jpg)"),
}


def data_source(name: str) -> str:
    """One sentence: the official archive of a data set read from ``--root`` and the layout expected."""
    archive, layout = SOURCES[name]
    return f"{archive}, giving {layout}"


def dataset_needs_root(name: str) -> bool:
    return _SPECS[check_choice("dataset", name, DATASETS)].needs_root


def default_backbone(name: str) -> str:
    return _SPECS[check_choice("dataset", name, DATASETS)].backbone


def default_n_max(name: str) -> int | None:
    return _SPECS[check_choice("dataset", name, DATASETS)].n_max


def load_dataset(name: str, root=None, ratio: float | None = None, profile: str = "exp",
                 n_max: int | None = None, subset_seed: int = 0, majority: int | None = None,
                 num_classes: int | None = None, subset_draw: str = "uniform") -> ArrayData | ImageListData:
    """Load ``name`` with a long-tailed training split.

    ratio: R = n_max/n_min >= 1 (τ = 1/R in [Y22]; default 100); profile ``exp`` or ``step``
    (``majority`` = K_A for step). ``subset_seed`` picks the kept images, drawn as
    ``subset_draw`` says (:data:`SUBSET_DRAWS`). ImageNet-LT and iNaturalist 2018
    take their profile from their files, so ``ratio`` and ``n_max`` must be left
    unset for them.
    """
    spec = _SPECS[check_choice("dataset", name, DATASETS)]
    check_choice("subset_draw", subset_draw, SUBSET_DRAWS)
    if spec.needs_root:
        if root is None:
            raise LPMInputError("root", None, f"a folder with the {name} files (the '{name}' dataset is read "
                                              f"from disk: {data_source(name)})")
        if not Path(root).is_dir():
            raise LPMInputError("root", str(root), f"an existing folder with the {name} files "
                                                   f"({data_source(name)})")
    if name in FILE_DATASETS:
        if subset_draw != "uniform":
            raise LPMInputError("subset_draw", subset_draw, f"'uniform' for '{name}' (it draws no subset)")
        return _from_files(name, root, ratio, n_max, num_classes)
    ratio = check_ratio(100.0 if ratio is None else ratio)
    if num_classes is not None and spec.num_classes is not None:
        raise LPMInputError("num_classes", num_classes, f"left unset for '{name}' (it has {spec.num_classes} classes)")
    K = spec.num_classes or check_number("num_classes", 10 if num_classes is None else num_classes, low=2, integer=True)
    nmax = None if n_max is None else check_number("n_max", n_max, low=1, integer=True)
    _check_generated_size(name, K, nmax or spec.n_max)
    x_pool, y_pool, x_test, y_test, nmax, cap = _read_pools(name, root, K, nmax, subset_seed)
    counts = long_tail_counts(K, ratio, profile, nmax, majority)
    x_train, y_train = subset_split(x_pool, y_pool, counts, subset_seed, cap=cap, draw=subset_draw)
    info = {"profile": profile, "ratio": float(ratio), "n_max": int(nmax), "subset_seed": int(subset_seed),
            "subset_draw": subset_draw,
            "majority": majority if profile == "step" else None, "requested_counts": list(counts)}
    return ArrayData(name, x_train, y_train, x_test, y_test, K, spec.mean, spec.std, spec.augment,
                     spec.backbone, "index", info)


#: values per sample of the sets generated in memory (float64 while generated)
_GENERATED_VALUES = {"mnist1d-lt": 40, "synthetic-lt": SYNTHETIC_DIM, "synthetic-images-lt": 3 * 32 * 32}


def _check_generated_size(name: str, K: int, n_max: int) -> None:
    """Refuse, before generating anything, a set whose samples cannot fit in memory (about three
    float64 copies of K × (n_max + test) samples while it is generated and split)."""
    if name not in _GENERATED_VALUES:
        return
    samples = float(K) * (n_max + _TEST_PER_CLASS[name])
    check_fits_in_memory("n_max", n_max, 3 * 8 * samples * _GENERATED_VALUES[name],
                         f"{name} with K={K} classes of up to n_max={n_max} samples")


def _read_pools(name, root, K, n_max, seed):
    """Balanced candidate pools → (x_pool, y_pool, x_test, y_test, n_max, cap)."""
    spec = _SPECS[name]
    n_max = n_max or spec.n_max
    readers: dict[str, Callable] = {"cifar10-lt": cifar.read_cifar10, "cifar100-lt": cifar.read_cifar100,
                                    "stl10-lt": stl10.read_stl10}
    if name in readers:
        return (*readers[name](root), n_max, False)
    if name == "svhn-lt":
        x, y, xt, yt = svhn.read_svhn(root)
        keep = select_long_tailed(yt, [len(yt) // 10] * 10, seed, cap=True, split="test")
        return x, y, xt[keep], yt[keep], n_max or len(y) // 10, True
    per_test = _TEST_PER_CLASS[name]
    if name == "mnist1d-lt":
        return (*offline.read_mnist1d(n_max, per_test, seed), n_max, False)
    if name == "digits-lt":
        return (*offline.read_digits(DIGITS_POOL, per_test, seed), n_max, False)
    if name == "synthetic-lt":
        return (*offline.read_gaussian(K, SYNTHETIC_DIM, n_max, per_test, seed), n_max, False)
    return (*offline.read_synthetic_images(K, n_max, per_test, seed), n_max, False)


def _from_files(name, root, ratio, n_max, num_classes) -> ImageListData:
    for key, value in (("ratio", ratio), ("n_max", n_max)):
        if value is not None:
            raise LPMInputError(key, value, f"left unset for '{name}' (its files fix the class counts)")
    if name == "inat2018":
        from .inaturalist import read_inat2018

        if num_classes is not None:
            raise LPMInputError("num_classes", num_classes, "left unset for 'inat2018' (its categories fix it)")
        return read_inat2018(root)
    from .imagenet_lt import read_imagenet_lt

    return read_imagenet_lt(root, num_classes)
