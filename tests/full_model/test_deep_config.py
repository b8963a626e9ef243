"""Typed run config: [Y22]'s recipe as defaults, files, overrides and refusals."""
import json
import warnings

import pytest

from full_model.config import TrainConfig, build_config, load_config_file
from full_model.errors import RunWarning
from full_model.train import EpochSchedule, schedule_of
from lpm.core.errors import LPMInputError

DEGENERATE = ("The 'loss' parameter must be 'ce' with the learnable head (DR with a learnable classifier is "
              "degenerate: every w_k and h_k can share one vector and reach zero loss, theory.md §5; set "
              "allow_degenerate (--allow-degenerate) to run it anyway). Got 'dr' instead.")


def test_defaults_are_the_released_cifar_recipe():
    c = build_config({"dataset": "cifar10-lt", "root": "/data"})
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == (200, 128, 0.1, 0.9, 2e-4)
    assert (c.warmup_epochs, c.milestones, c.lr_decay, c.mixup_alpha, c.schedule) == (5, (160, 180), 0.1, 1.0, "step")
    assert c.milestone_fractions == (0.8, 0.9)
    assert (c.ratio, c.backbone, c.profile) == (100.0, "resnet32", "exp")
    assert build_config({"dataset": "cifar100-lt"}).backbone == "resnet32-wide"
    s = EpochSchedule(5, (160, 180), 0.1, "step", 200)
    assert [s(e) for e in range(5)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert (s(159), s(160), s(179), s(180), s(199)) == pytest.approx((1.0, 0.1, 0.1, 0.01, 0.01))


def test_imagenet_recipe_and_head_variant():
    c = build_config({"dataset": "imagenet-lt", "head": "fixed-etf", "loss": "dr", "dr_form": "released"})
    assert (c.epochs, c.batch_size, c.weight_decay, c.mixup_alpha, c.schedule) == (90, 1024, 5e-4, 0.2, "cosine")
    assert (c.backbone, c.normalize_features, c.feature_norm_penalty, c.balance_batch) == ("resnet50-wide", False,
                                                                                         0.01, True)
    assert c.ratio is None
    s = EpochSchedule(0, (), 0.1, "cosine", 90)
    assert (s(0), s(45)) == pytest.approx((1.0, 0.5))


def test_json_and_toml_files_with_overrides(tmp_path):
    (tmp_path / "a.toml").write_text('dataset = "mnist1d-lt"\nepochs = 7\nmilestones = [3, 5]\nhead = "fixed-etf"\n')
    (tmp_path / "a.json").write_text('{"dataset": "digits-lt", "lr": 0.05, "mixup_alpha": 0}')
    t = build_config({"epochs": 9}, tmp_path / "a.toml")
    assert (t.dataset, t.epochs, t.milestones, t.head) == ("mnist1d-lt", 9, (3, 5), "fixed-etf")
    assert t.out.startswith("runs/mnist1d-lt_fixed-etf_ce_R100_e9_seed0_") and len(t.out.rsplit("_", 1)[1]) == 6
    j = build_config({"seed": 3}, tmp_path / "a.json")
    assert (j.dataset, j.lr, j.mixup_alpha, j.seed, j.backbone) == ("digits-lt", 0.05, 0.0, 3, "mlp")


@pytest.mark.parametrize("values,message", [
    ({"head": "learnable", "loss": "dr"}, DEGENERATE),
    ({"head": "fixed-etf", "loss": "dr", "balance_batch": True},
     "The 'balance_batch' parameter must be false unless loss='dr' with dr_form='released' (the in-batch balancing "
     "of theory.md §6.2). Got True instead."),
    ({"ratio": 0.5}, "The 'ratio' parameter must be a number >= 1. Got 0.5 instead."),
    ({"dataset": "cifar11"},
     "The 'dataset' parameter must be one of 'cifar10-lt', 'cifar100-lt', 'svhn-lt', 'stl10-lt', 'imagenet-lt', "
     "'inat2018', 'mnist1d-lt', 'digits-lt', 'synthetic-lt', 'synthetic-images-lt'. Got 'cifar11' instead."),
    ({"batch_size": 1}, "The 'batch_size' parameter must be an int >= 2 (BatchNorm needs 2 rows). Got 1 instead."),
    ({"augment": "yes"}, "The 'augment' parameter must be true or false. Got 'yes' instead."),
])
def test_bad_settings_are_refused(values, message):
    with pytest.raises(LPMInputError) as err:
        build_config(values)
    assert str(err.value) == message


def test_unknown_keys_are_refused_and_degenerate_needs_consent(tmp_path):
    (tmp_path / "bad.json").write_text('{"lrr": 0.1}')
    with pytest.raises(LPMInputError) as err:
        build_config({}, tmp_path / "bad.json")
    assert str(err.value).startswith("The 'config file bad.json' parameter must be made of known settings only "
                                     "(dataset, root, ratio,")
    assert str(err.value).endswith("Got 'lrr' instead.")
    c = build_config({"head": "learnable", "loss": "dr", "allow_degenerate": True})
    assert (c.head, c.loss) == ("learnable", "dr")
    assert TrainConfig.from_dict(c.to_dict()).resolved() == c  # the saved config round-trips


def test_the_schedule_scales_with_the_run():
    """Milestones at 80 % and 90 % of the run, warm-up min(5, epochs // 10) (theory.md §7)."""
    c = build_config({"dataset": "mnist1d-lt", "epochs": 30})
    assert (c.milestones, c.warmup_epochs) == ((24, 27), 3)
    s = schedule_of(c)
    factors = [s(e) for e in range(30)]
    assert factors[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert factors[3:24] == [1.0] * 21                        # epochs 4…24 at the peak lr
    assert factors[24:27] == pytest.approx([0.1] * 3)         # ×0.1 from epoch 25, after 24 epochs
    assert factors[27:] == pytest.approx([0.01] * 3)          # ×0.01 from epoch 28, after 27 epochs
    assert (build_config({"dataset": "mnist1d-lt", "epochs": 3}).warmup_epochs,
            build_config({"dataset": "mnist1d-lt", "epochs": 60}).warmup_epochs) == (0, 5)
    explicit = build_config({"dataset": "mnist1d-lt", "epochs": 30, "milestones": [10, 20], "warmup_epochs": 1})
    assert (explicit.milestones, explicit.warmup_epochs) == ((10, 20), 1)
    early = build_config({"dataset": "mnist1d-lt", "epochs": 50, "milestone_fractions": [0.5]})
    assert early.milestones == (25,)


def test_schedule_settings_that_never_act_are_warned_about():
    with pytest.warns(RunWarning) as seen:
        build_config({"dataset": "mnist1d-lt", "epochs": 30, "milestones": [160, 180], "warmup_epochs": 40})
    assert [str(w.message) for w in seen] == [
        "the lr decay at milestone 160 never happens in a 30-epoch run (a milestone m lowers the lr from epoch m + 1 "
        "on); give milestone_fractions instead to scale with the run",
        "the warm-up of 40 epochs covers the whole 30-epoch run: the lr never reaches its peak 0.1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build_config({"dataset": "mnist1d-lt", "epochs": 3})  # the defaults fit any run: no warning


def test_default_run_folders_differ_when_the_run_differs():
    base = {"dataset": "mnist1d-lt", "head": "fixed-etf", "loss": "dr"}
    names = {build_config({**base, **extra}).out for extra in
             ({}, {"epochs": 30}, {"lr": 0.05}, {"mixup_alpha": 0.0}, {"seed": 1})}
    assert len(names) == 5
    assert build_config({**base, "epochs": 30}).out.startswith("runs/mnist1d-lt_fixed-etf_dr_R100_e30_seed0_")
    # settings that do not change what is computed keep the folder, so a rerun finds it
    assert build_config({**base, "device": "cpu", "progress": False}).out == build_config(base).out


BAD_FIELDS = [
    ('epochs = "3"', "The 'epochs' parameter must be an int >= 1. Got '3' instead."),
    ("epochs = 2.5", "The 'epochs' parameter must be an int >= 1. Got 2.5 instead."),
    ("milestones = 160", "The 'milestones' parameter must be a list of ints >= 1 (epochs at which the lr decays). "
                         "Got 160 instead."),
    ('milestones = [160, "180"]', "The 'milestones' parameter must be a list of ints >= 1 (epochs at which the lr "
                                  "decays). Got [160, '180'] instead."),
    ("milestone_fractions = [0.8, 1.2]", "The 'milestone_fractions' parameter must be a list of numbers > 0 and < 1 "
                                         "(fractions of the run at which the lr decays). Got [0.8, 1.2] instead."),
    ('lr = "0.1"', "The 'lr' parameter must be a number > 0 and <= 3.40282e+38. Got '0.1' instead."),
    ("lr = 1e300", "The 'lr' parameter must be a number > 0 and <= 3.40282e+38. Got 1e+300 instead."),
    ("lr = nan", "The 'lr' parameter must be a number > 0 and <= 3.40282e+38. Got nan instead."),
    ("batch_size = 12.0", "The 'batch_size' parameter must be an int >= 2 (BatchNorm needs 2 rows). Got 12.0 instead."),
    ("momentum = 2", "The 'momentum' parameter must be a number >= 0 and <= 1. Got 2 instead."),
    ("seed = true", "The 'seed' parameter must be an int >= 0 and <= 4294967295. Got True instead."),
    ('head_bias = "yes"', "The 'head_bias' parameter must be true or false. Got 'yes' instead."),
    ("root = 5", "The 'root' parameter must be a path (string). Got 5 instead."),
    ('head = "etf"', "The 'head' parameter must be one of 'learnable', 'fixed-etf', 'fixed-random'. Got 'etf' "
                     "instead."),
    ("n_max = 0", "The 'n_max' parameter must be an int >= 1. Got 0 instead."),
]


@pytest.mark.parametrize("line,message", BAD_FIELDS)
def test_config_file_fields_are_checked_when_the_config_is_built(tmp_path, line, message):
    (tmp_path / "bad.toml").write_text(f'dataset = "mnist1d-lt"\n{line}\n')
    with pytest.raises(LPMInputError) as err:
        build_config({}, tmp_path / "bad.toml")
    assert str(err.value) == message
    (tmp_path / "one.toml").write_text(line + "\n")
    (name, value), = load_config_file(tmp_path / "one.toml").items()
    with pytest.raises(LPMInputError) as err:  # the Python API checks the same way
        TrainConfig(**{name: value})
    assert str(err.value) == message


def test_json_files_keep_their_types(tmp_path):
    (tmp_path / "c.json").write_text(json.dumps({"dataset": "digits-lt", "ratio": 10, "lr": 1, "epochs": 4}))
    c = build_config({}, tmp_path / "c.json")
    assert (c.ratio, c.lr, c.epochs) == (10.0, 1.0, 4)
    assert (type(c.ratio), type(c.lr), type(c.epochs)) == (float, float, int)
    (tmp_path / "d.json").write_text(json.dumps({"dataset": "digits-lt", "batch_size": 12.0}))
    with pytest.raises(LPMInputError, match="batch_size"):
        build_config({}, tmp_path / "d.json")
    (tmp_path / "e.json").write_text("{not json")
    with pytest.raises(LPMInputError, match=r"^The 'config' parameter must be valid JSON \(Expecting"):
        build_config({}, tmp_path / "e.json")
