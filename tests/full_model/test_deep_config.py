"""Typed run config: [Y22]'s recipe as defaults, files, overrides and refusals."""
import pytest

from full_model.config import TrainConfig, build_config
from full_model.train import EpochSchedule
from lpm.core.errors import LPMInputError


def test_defaults_are_the_released_cifar_recipe():
    c = build_config({"dataset": "cifar10-lt", "root": "/data"})
    assert (c.epochs, c.batch_size, c.lr, c.momentum, c.weight_decay) == (200, 128, 0.1, 0.9, 2e-4)
    assert (c.warmup_epochs, c.milestones, c.lr_decay, c.mixup_alpha, c.schedule) == (5, (160, 180), 0.1, 1.0, "step")
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
    assert t.out == "runs/mnist1d-lt_fixed-etf_ce_R100_seed0"
    j = build_config({"seed": 3}, tmp_path / "a.json")
    assert (j.dataset, j.lr, j.mixup_alpha, j.seed, j.backbone) == ("digits-lt", 0.05, 0.0, 3, "mlp")


@pytest.mark.parametrize("values,message", [
    ({"head": "learnable", "loss": "dr"},
     "The 'loss' parameter must be 'ce' with the learnable head (DR with a learnable classifier is degenerate: "
     "every w_k and h_k can share one vector and reach zero loss, theory.md §5; set allow_degenerate to run it "
     "anyway). Got 'dr' instead."),
    ({"head": "fixed-etf", "loss": "dr", "balance_batch": True},
     "The 'balance_batch' parameter must be false unless loss='dr' with dr_form='released' (the in-batch balancing "
     "of theory.md §6.2). Got True instead."),
    ({"ratio": 0.5}, "The 'ratio' parameter must be a number >= 1 and <= 1e+12. Got 0.5 instead."),
    ({"dataset": "cifar11"},
     "The 'dataset' parameter must be one of 'cifar10-lt', 'cifar100-lt', 'svhn-lt', 'stl10-lt', 'imagenet-lt', "
     "'mnist1d-lt', 'digits-lt', 'synthetic-lt', 'synthetic-images-lt'. Got 'cifar11' instead."),
    ({"batch_size": 0}, "The 'batch_size' parameter must be an int >= 1. Got 0 instead."),
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
