"""The field's standard long-tailed sets: CIFAR-LT subsets of Cao et al. 2019, iNaturalist 2018 from its JSON files."""
import json

import numpy as np
import pytest

from full_model.data import load_dataset, long_tail_counts, select_long_tailed
from lpm.core.errors import LPMInputError



def _write_cifar10(root, per_class_per_batch: int = 12):
    """CIFAR-10 python pickles whose image (label, index) sits in the first pixel of planes 0 and 1."""
    import pickle

    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    index = 0
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        labels = [k for k in range(10) for _ in range(3 if name == "test_batch" else per_class_per_batch)]
        rows = np.zeros((len(labels), 3072), dtype=np.uint8)
        for r, k in enumerate(labels):
            rows[r, 0], rows[r, 1024] = k, index % 256
            index += 1
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": rows, b"labels": labels}, fh, protocol=2)


def _ldam_drw_counts(K, n_max, R):
    """Cao et al. 2019's rule, int(n_max · (1/R)^(k/(K−1))), with 1/R as the float their code is given."""
    return tuple(int(n_max * ((1.0 / R) ** (k / (K - 1.0)))) for k in range(K))


@pytest.mark.parametrize("K,n_max,R,head,tail,total", [
    (10, 5000, 100, (5000, 2997, 1796, 1077, 645), (387, 232, 139, 83, 50), 12406),
    (10, 5000, 10, (5000, 3871, 2997, 2320, 1796), (1391, 1077, 834, 645, 500), 20431),
    (100, 500, 100, (500, 477, 455, 434, 415), (6, 5, 5, 5, 5), 10847),
    (100, 500, 10, (500, 488, 477, 466, 455), (54, 53, 52, 51, 50), 19573),
])
def test_cifar_lt_counts_are_those_of_cao_et_al(K, n_max, R, head, tail, total):
    counts = long_tail_counts(K, R, "exp", n_max)
    assert counts[:5] == head and counts[-5:] == tail and sum(counts) == total
    assert counts == _ldam_drw_counts(K, n_max, R)
    for ratio in (20, 50, 200):  # the other ratios the literature reports
        assert long_tail_counts(K, ratio, "exp", n_max) == _ldam_drw_counts(K, n_max, ratio)


def test_ldam_drw_draw_keeps_the_images_of_the_released_code():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=400)  # classes interleaved, as in the CIFAR batches
    counts = (60, 30, 15, 8, 4)
    # the released procedure: the global legacy generator seeded once, each class's indices shuffled in turn
    np.random.seed(7)
    expected = []
    for k, n in enumerate(counts):
        idx = np.where(labels == k)[0]
        np.random.shuffle(idx)
        expected.extend(idx[:n])
    kept = select_long_tailed(labels, counts, seed=7, draw="ldam-drw")
    np.testing.assert_array_equal(kept, np.sort(expected))
    assert not np.array_equal(kept, select_long_tailed(labels, counts, seed=7))  # not the uniform draw


def test_cifar10_lt_with_the_ldam_drw_draw(tmp_path):
    _write_cifar10(tmp_path)
    data = load_dataset("cifar10-lt", root=tmp_path, ratio=10, n_max=60, subset_draw="ldam-drw")
    assert data.counts == long_tail_counts(10, 10, "exp", 60) and data.profile["subset_draw"] == "ldam-drw"
    np.testing.assert_array_equal(data.x_train[:, 0, 0, 0], data.y_train)
    y_all = np.tile(np.repeat(np.arange(10), 12), 5)  # the label order of the five written batches
    np.testing.assert_array_equal(np.sort(data.x_train[:, 1, 0, 0]),
                                  np.sort(select_long_tailed(y_all, data.counts, 0, draw="ldam-drw") % 256))


# ---------------------------------------------------------------- iNaturalist 2018
def _write_inat(root, train_per_class=(5, 3, 1), val_per_class=(1, 1, 1), size=(20, 26)):
    from PIL import Image

    rng = np.random.default_rng(0)
    categories = [{"id": k, "name": f"species {k}", "supercategory": "Plantae"} for k in range(len(train_per_class))]
    image_id = 100
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        images, annotations = [], []
        for k, n in enumerate(per_class):
            for i in range(n):
                rel = f"train_val2018/Plantae/{k}/{split}_{i}.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(root / rel)
                images.append({"id": image_id, "file_name": rel, "width": size[1], "height": size[0],
                               "license": 0, "rights_holder": "x"})
                annotations.append({"id": image_id, "image_id": image_id, "category_id": k})
                image_id += 1
        images.reverse()  # the reader orders by image id, not by the file's order
        doc = {"info": {"year": 2018}, "images": images, "annotations": annotations, "categories": categories,
               "licenses": []}
        (root / f"{split}2018.json").write_text(json.dumps(doc))


def test_inat2018_reads_its_json_annotations(tmp_path):
    _write_inat(tmp_path)
    data = load_dataset("inat2018", root=tmp_path)
    assert data.name == "inat2018" and data.num_classes == 3 and data.counts == (5, 3, 1)
    assert data.group_scheme == "count" and data.default_backbone == "resnet50"
    assert data.train_files[0] == "train_val2018/Plantae/0/train_0.jpg" and list(data.y_test) == [0, 1, 2]
    assert data.profile == {"profile": "inat2018", "ratio": 5.0}
    with pytest.raises(LPMInputError, match="left unset for 'inat2018' \\(its files fix the class counts\\)"):
        load_dataset("inat2018", root=tmp_path, ratio=10)


def test_inat2018_missing_and_malformed_files_name_the_layout(tmp_path):
    layout = ("a folder holding train2018.json and val2018.json (COCO-style 'images', 'annotations' and "
              "'categories' of iNaturalist 2018) with the images at root/<file_name> (train_val2018/...)")
    with pytest.raises(LPMInputError) as err:
        load_dataset("inat2018", root=tmp_path)
    assert str(err.value) == (f"The 'root' parameter must be {layout} (missing file '{tmp_path / 'train2018.json'}'). "
                              f"Got '{tmp_path}' instead.")
    _write_inat(tmp_path)
    (tmp_path / "val2018.json").write_text('{"images": []')
    with pytest.raises(LPMInputError, match="val2018.json' is not valid JSON"):
        load_dataset("inat2018", root=tmp_path)
    (tmp_path / "val2018.json").write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    with pytest.raises(LPMInputError, match="val2018.json' lists no annotated images"):
        load_dataset("inat2018", root=tmp_path)
    doc = json.loads((tmp_path / "train2018.json").read_text())
    doc["annotations"][0]["image_id"] = 99999
    (tmp_path / "train2018.json").write_text(json.dumps(doc))
    with pytest.raises(LPMInputError, match="annotates image 99999, which its 'images' do not list"):
        load_dataset("inat2018", root=tmp_path)
    (tmp_path / "train2018.json").write_text(json.dumps({"images": [1]}))
    with pytest.raises(LPMInputError, match="lacks the lists 'images', 'annotations' and 'categories'"):
        load_dataset("inat2018", root=tmp_path)


def test_inat2018_trains_end_to_end_with_a_class_balanced_sampler(tmp_path):
    from full_model import run_format as rf
    from full_model.config import build_config
    from full_model.train import train

    _write_inat(tmp_path)
    cfg = build_config({"dataset": "inat2018", "root": str(tmp_path), "backbone": "mlp", "feature_dim": 8,
                        "image_size": 8, "epochs": 1, "batch_size": 4, "num_workers": 0, "sampler": "class-balanced",
                        "progress": False, "figures": False, "out": str(tmp_path / "run")})
    assert (cfg.ratio, cfg.lr, cfg.batch_size, cfg.schedule, cfg.weight_decay) == (None, 0.2, 4, "cosine", 1e-4)
    result = train(cfg)
    run = rf.load_run(result.run_dir)
    np.testing.assert_array_equal(run.train_counts, [5, 3, 1])
    assert run.config["data"]["name"] == "inat2018" and run.config["config"]["sampler"] == "class-balanced"
    assert 0 <= run.metrics[0]["test_accuracy"] <= 1
