"""Long-tailed loaders read the published formats and keep the profile's counts."""
import os
import pickle

import numpy as np
import pytest

from full_model.data import load_dataset, long_tail_counts
from lpm.core.errors import LPMInputError
from lpm.core.profiles import exp_counts


def _image(label: int, index: int) -> np.ndarray:
    """A (3, 32, 32) uint8 image whose planes encode (label, index, row)."""
    img = np.empty((3, 32, 32), dtype=np.uint8)
    img[0], img[1] = label, index % 256
    img[2] = np.arange(32, dtype=np.uint8)[:, None]  # row index, to check orientation
    return img


def _write_cifar10(root, per_class_per_batch: int = 12, test_per_class: int = 3, protocol: int = 2):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    index = 0
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        n = test_per_class if name == "test_batch" else per_class_per_batch
        labels = [k for k in range(10) for _ in range(n)]
        rows = []
        for k in labels:
            rows.append(_image(k, index).reshape(3072))  # R plane, G plane, B plane, each row-major
            index += 1
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": np.stack(rows), b"labels": labels, b"batch_label": b"x"}, fh, protocol=protocol)


def test_cifar10_ratio_100_counts_are_the_published_ones():
    assert long_tail_counts(10, 100, "exp", 5000) == (5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50)
    # the same numbers as the layer-peeled model's profile (one code path)
    assert long_tail_counts(10, 100, "exp", 5000) == tuple(int(c) for c in exp_counts(10, 100, 5000))
    cifar100 = long_tail_counts(100, 100, "exp", 500)
    assert cifar100[:3] == (500, 477, 455) and cifar100[-1] == 5 and sum(cifar100) == 10847
    assert long_tail_counts(10, 10, "step", 50, majority=3) == (50,) * 3 + (5,) * 7


def test_cifar10_reader_builds_the_long_tail_from_pickles(tmp_path):
    _write_cifar10(tmp_path)
    data = load_dataset("cifar10-lt", root=tmp_path, ratio=10, n_max=60, subset_seed=3)
    assert data.counts == long_tail_counts(10, 10, "exp", 60)
    assert data.x_train.shape == (sum(data.counts), 3, 32, 32) and data.x_train.dtype == np.uint8
    # every kept image is an unmodified row of its own class, in (C, H, W) order
    np.testing.assert_array_equal(data.x_train[:, 0, 0, 0], data.y_train)
    np.testing.assert_array_equal(data.x_train[:, 2, :, 5], np.tile(np.arange(32), (len(data.y_train), 1)))
    assert data.x_test.shape == (30, 3, 32, 32) and np.bincount(data.y_test).tolist() == [3] * 10
    again = load_dataset("cifar10-lt", root=tmp_path, ratio=10, n_max=60, subset_seed=3)
    other = load_dataset("cifar10-lt", root=tmp_path, ratio=10, n_max=60, subset_seed=4)
    np.testing.assert_array_equal(again.x_train, data.x_train)
    assert not np.array_equal(other.x_train[:, 1], data.x_train[:, 1])  # a different seeded subset


def test_cifar100_reads_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 6), ("test", 1)):
        labels = [k for k in range(100) for _ in range(n)]
        data = np.stack([_image(k % 256, i).reshape(3072) for i, k in enumerate(labels)])
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"fine_labels": labels, b"coarse_labels": [0] * len(labels)}, fh)
    data = load_dataset("cifar100-lt", root=tmp_path, ratio=5, n_max=6)
    assert data.num_classes == 100 and data.counts == long_tail_counts(100, 5, "exp", 6)
    np.testing.assert_array_equal(data.x_train[:, 0, 0, 0], data.y_train)


def test_svhn_mat_labels_and_orientation(tmp_path):
    from scipy.io import savemat

    def split(n_per_class):
        y = np.repeat(np.arange(1, 11), n_per_class)                # 10 stands for the digit 0
        X = np.zeros((32, 32, 3, len(y)), dtype=np.uint8)
        X[:, :, 0, :] = np.arange(32, dtype=np.uint8)[:, None, None]  # channel 0 = row index
        X[:, :, 1, :] = y[None, None, :] % 10
        return {"X": X, "y": y[:, None].astype(np.uint8)}

    savemat(tmp_path / "train_32x32.mat", split(30))
    savemat(tmp_path / "test_32x32.mat", split(4))
    data = load_dataset("svhn-lt", root=tmp_path, ratio=10)
    # n_max = len(train)/10 = 30; test keeps len(test)/10 = 4 per class
    assert data.counts == long_tail_counts(10, 10, "exp", 30)
    np.testing.assert_array_equal(data.x_train[:, 1, 3, 3], data.y_train)
    np.testing.assert_array_equal(data.x_train[0, 0, :, 7], np.arange(32))
    assert np.bincount(data.y_test).tolist() == [4] * 10


def test_stl10_binary_is_column_major(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    for split, n in (("train", 8), ("test", 2)):
        labels = np.repeat(np.arange(10), n)
        imgs = np.zeros((len(labels), 3, 96, 96), dtype=np.uint8)
        imgs[:, 0] = np.arange(96, dtype=np.uint8)[:, None]        # row index in channel 0
        imgs[:, 1] = labels[:, None, None]
        with open(folder / f"{split}_X.bin", "wb") as fh:
            for img in imgs:
                for channel in img:
                    fh.write(channel.tobytes(order="F"))          # MATLAB column-major
        (labels + 1).astype(np.uint8).tofile(folder / f"{split}_y.bin")
    data = load_dataset("stl10-lt", root=tmp_path, ratio=4, n_max=8)
    assert data.counts == long_tail_counts(10, 4, "exp", 8) and data.input_shape == (3, 96, 96)
    np.testing.assert_array_equal(data.x_train[:, 0, :, 11], np.tile(np.arange(96), (len(data.y_train), 1)))
    np.testing.assert_array_equal(data.x_train[:, 1, 0, 0], data.y_train)


def test_imagenet_lt_lists_and_loaders(tmp_path):
    import torch
    from PIL import Image

    from full_model.distributed import DistContext
    from full_model.loader import Normalizer
    from full_model.loader_files import FileEvalLoader, FileTrainLoader

    lines = {"train": [], "test": []}
    for split, per_class in (("train", (4, 2, 1)), ("test", (1, 1, 1))):
        for k, n in enumerate(per_class):
            for i in range(n):
                rel = f"{split}/n{k:03d}/img{i}.png"
                (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((30, 40, 3), 40 * k, dtype=np.uint8)).save(tmp_path / rel)
                lines[split].append(f"{rel} {k}")
    for split in lines:
        (tmp_path / f"ImageNet_LT_{split}.txt").write_text("\n".join(lines[split]) + "\n")
    data = load_dataset("imagenet-lt", root=tmp_path)
    assert data.counts == (4, 2, 1) and data.num_classes == 3 and data.group_scheme == "count"
    data.image_size = 16
    norm = Normalizer(None, None, "cpu")
    train = FileTrainLoader(data, batch_size=4, device="cpu", ctx=DistContext(), rng=np.random.default_rng(0),
                            normalizer=norm, num_workers=0)
    batches = list(train)
    assert [len(b.y_a) for b in batches] == [4, 3] and batches[0].x.shape == (4, 3, 16, 16)
    assert sorted(torch.cat([b.y_a for b in batches]).tolist()) == [0, 0, 0, 0, 1, 1, 2]
    (x, y), = list(FileEvalLoader(data, "test", batch_size=8, device="cpu", ctx=DistContext(), normalizer=norm,
                                  num_workers=0))
    # a flat grey image stays flat under resize + centre crop
    np.testing.assert_allclose(x[:, 0].mean(dim=(1, 2)).numpy(), np.array([0, 40, 80]) / 255, atol=1e-6)
    with pytest.raises(LPMInputError, match="left unset for 'imagenet-lt' \\(its files fix the class counts\\)"):
        load_dataset("imagenet-lt", root=tmp_path, ratio=10)


@pytest.mark.parametrize("name", ["mnist1d-lt", "digits-lt", "synthetic-lt"])
def test_offline_sets_follow_the_profile(name):
    state = np.random.get_state()[1].copy()
    data = load_dataset(name, ratio=10, n_max=40, subset_seed=1)
    assert data.counts == long_tail_counts(10, 10, "exp", 40)
    assert np.bincount(data.y_test).min() == np.bincount(data.y_test).max()  # balanced test split
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # the global generator is untouched
    step = load_dataset(name, ratio=8, profile="step", majority=4, n_max=40)
    assert step.counts == (40,) * 4 + (5,) * 6


def test_missing_and_malformed_files_name_the_file(tmp_path):
    expected = (f"The 'root' parameter must be a folder holding cifar-10-batches-py/data_batch_1 … data_batch_5 and "
                f"test_batch (the CIFAR-10 python pickles) (missing file "
                f"'{tmp_path / 'cifar-10-batches-py' / 'data_batch_1'}'). Got '{tmp_path}' instead.")
    with pytest.raises(LPMInputError) as err:
        load_dataset("cifar10-lt", root=tmp_path)
    assert str(err.value) == expected
    _write_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(LPMInputError) as err:
        load_dataset("cifar10-lt", root=tmp_path)
    assert f"'{tmp_path / 'cifar-10-batches-py' / 'data_batch_3'}' is not a CIFAR pickle" in str(err.value)


CIFAR10_BAD = ("The 'root' parameter must be a folder holding cifar-10-batches-py/data_batch_1 … data_batch_5 and "
               "test_batch (the CIFAR-10 python pickles) ({problem}). Got '{root}' instead.")


class _RunsACommand:
    """Unpickling this calls os.system: the shape of a crafted data file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_pickles_that_would_run_code_are_refused_without_running_it(tmp_path, protocol):
    _write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    labels = [k for k in range(10) for _ in range(12)]
    path.write_bytes(pickle.dumps({b"data": _RunsACommand(marker), b"labels": labels}, protocol=protocol))
    with pytest.raises(LPMInputError) as err:
        load_dataset("cifar10-lt", root=tmp_path, ratio=10, n_max=60)
    assert str(err.value) == CIFAR10_BAD.format(root=tmp_path, problem=(
        f"'{path}' is not a CIFAR pickle with b'data' (N×3072 uint8) and b'labels': it refers to 'posix.system', "
        "which a CIFAR file never holds; refused without running it (only numpy arrays, lists, dicts, bytes and str "
        "are read)"))
    assert not marker.exists()  # nothing ran
    # the real files' pickles (protocol 2 and the current one, numpy arrays inside) still load
    _write_cifar10(tmp_path / "again", protocol=protocol)
    assert load_dataset("cifar10-lt", root=tmp_path / "again", ratio=10, n_max=60).counts == \
        long_tail_counts(10, 10, "exp", 60)


def test_cifar_pickle_naming_an_unknown_module_is_one_clear_error(tmp_path):
    _write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(b"\x80\x02cno_such_module\nThing\nq\x00)\x81q\x01.")  # protocol 2: GLOBAL, NEWOBJ
    with pytest.raises(LPMInputError) as err:
        load_dataset("cifar10-lt", root=tmp_path)
    assert str(err.value) == CIFAR10_BAD.format(root=tmp_path, problem=(
        f"'{path}' is not a CIFAR pickle with b'data' (N×3072 uint8) and b'labels': it refers to "
        "'no_such_module.Thing', which a CIFAR file never holds; refused without running it (only numpy arrays, "
        "lists, dicts, bytes and str are read)"))


def test_an_empty_cifar_test_batch_is_refused(tmp_path):
    _write_cifar10(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    with open(path, "wb") as fh:
        pickle.dump({b"data": np.zeros((0, 3072), dtype=np.uint8), b"labels": []}, fh)
    with pytest.raises(LPMInputError) as err:
        load_dataset("cifar10-lt", root=tmp_path, ratio=10, n_max=60)
    assert str(err.value) == CIFAR10_BAD.format(root=tmp_path, problem=f"'{path}' holds no images")


def test_a_zero_byte_svhn_file_is_one_clear_error(tmp_path):
    (tmp_path / "train_32x32.mat").write_bytes(b"")
    (tmp_path / "test_32x32.mat").write_bytes(b"")
    with pytest.raises(LPMInputError) as err:
        load_dataset("svhn-lt", root=tmp_path)
    assert str(err.value) == (
        "The 'root' parameter must be a folder holding train_32x32.mat and test_32x32.mat (SVHN cropped digits: "
        f"X 32×32×3×N uint8, y N×1 in 1…10) ('{tmp_path / 'train_32x32.mat'}' is not an SVHN .mat file with X "
        f"(32×32×3×N uint8) and y (N×1, 1…10): the file is empty). Got '{tmp_path}' instead.")
    (tmp_path / "train_32x32.mat").write_bytes(b"MATLAB 5.0 but cut short")  # scipy raises an IndexError here
    with pytest.raises(LPMInputError, match=r"is not an SVHN \.mat file .*\(IndexError: .*\)\. Got '"):
        load_dataset("svhn-lt", root=tmp_path)


@pytest.mark.parametrize("kwargs,message", [
    ({"name": "cifar10-lt", "root": "/no/such/folder"},
     "The 'root' parameter must be an existing folder with the cifar10-lt files (cifar-10-python.tar.gz from "
     "https://www.cs.toronto.edu/~kriz/cifar.html, extracted, giving root/cifar-10-batches-py/data_batch_1 … "
     "data_batch_5 and test_batch (the CIFAR-10 python pickles)). Got '/no/such/folder' instead."),
    ({"name": "cifar10-lt"},
     "The 'root' parameter must be a folder with the cifar10-lt files (the 'cifar10-lt' dataset is read from disk: "
     "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extracted, giving "
     "root/cifar-10-batches-py/data_batch_1 … data_batch_5 and test_batch (the CIFAR-10 python pickles)). "
     "Got None instead."),
    ({"name": "imagenet-1k"},
     "The 'dataset' parameter must be one of 'cifar10-lt', 'cifar100-lt', 'svhn-lt', 'stl10-lt', 'imagenet-lt', "
     "'inat2018', 'mnist1d-lt', 'digits-lt', 'synthetic-lt', 'synthetic-images-lt'. Got 'imagenet-1k' instead."),
    ({"name": "digits-lt", "ratio": 0.5}, "The 'ratio' parameter must be a number >= 1. Got 0.5 instead."),
    ({"name": "digits-lt", "n_max": 500},
     "The 'n_max' parameter must be at most what the train split holds: class 0 has 120 samples but the profile "
     "asks for 500. Got 500 instead."),
])
def test_bad_dataset_arguments(kwargs, message):
    with pytest.raises(LPMInputError) as err:
        load_dataset(**kwargs)
    assert str(err.value) == message


def test_imagenet_lt_trains_end_to_end_from_files(tmp_path):
    from PIL import Image

    from full_model import run_format as rf
    from full_model.config import build_config
    from full_model.train import train

    rng = np.random.default_rng(0)
    for split, per_class in (("train", (6, 3, 2)), ("test", (2, 2, 2))):
        lines = []
        for k, n in enumerate(per_class):
            for i in range(n):
                rel = f"{split}/{k}_{i}.jpg"
                (tmp_path / split).mkdir(exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(tmp_path / rel)
                lines.append(f"{rel} {k}")
        (tmp_path / f"ImageNet_LT_{split}.txt").write_text("\n".join(lines))
    result = train(build_config({"dataset": "imagenet-lt", "root": str(tmp_path), "backbone": "resnet32",
                                 "image_size": 16, "head": "fixed-etf", "loss": "dr", "dr_form": "released",
                                 "epochs": 1, "batch_size": 4, "num_workers": 0, "progress": False,
                                 "figures": False, "out": str(tmp_path / "run")}))
    run = rf.load_run(result.run_dir)
    row = run.metrics[0]
    assert run.config["data"]["group_names"] == ["many", "medium", "few"]
    assert run.config["data"]["groups"] == [2, 2, 2]  # all classes have < 20 images: "few"
    assert row["test_few_accuracy"] == row["test_accuracy"] and row["test_many_accuracy"] is None
    assert "collapse_index" not in row  # count groups are not index ranges: no majority/minority split
    np.testing.assert_array_equal(run.train_counts, [6, 3, 2])


def test_every_data_set_read_from_disk_names_its_official_archive_and_layout():
    """A missing --root says where the files come from and how the folder must look."""
    from full_model.data import SOURCES, dataset_needs_root
    from full_model.data import DATASETS
    assert {n for n in DATASETS if dataset_needs_root(n)} == set(SOURCES)
    for name in SOURCES:
        with pytest.raises(LPMInputError) as err:
            load_dataset(name)
        assert "http" in str(err.value) and "://" in str(err.value) and "giving root/" in str(err.value), name

