"""The published recipes of docs/recipes.md are commands that build the settings of their papers."""
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import full_model.train as train_module
from lpm.core.weighting import class_weights
from full_model.config import build_config
from full_model.train import schedule_of, train
from lpm.cli import app
from lpm.core.losses import LOSS_NAMES

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _recipe_commands() -> dict[str, list[str]]:
    """The CE command of docs/recipes.md, and each recipe that adds options to it or stands alone."""
    text = (ROOT / "docs" / "recipes.md").read_text()
    ce = re.search(r"\n    (lpm train-deep --dataset cifar10-lt .*?)\n\n", text, re.S).group(1).replace("\\\n", " ")
    commands = {"ce": shlex.split(ce)}
    for name, extra in (("cb-ce", "--class-weights class-balanced --beta 0.9999"),
                        ("ce-drw", "--class-weights class-balanced --beta 0.9999 --drw 160"),
                        ("ldam-drw", "--loss ldam --cosine-scale 30 --no-head-bias --margin 15 --class-weights "
                                     "class-balanced --beta 0.9999 --drw 160"),
                        ("progressive", "--sampler progressive")):
        assert extra in text, extra
        commands[name] = commands["ce"] + shlex.split(extra)
    for stage in ("lpm train-deep --stage logit-adjust --parent RUN --adjust-tau 1",
                  "lpm train-deep --stage crt --parent RUN --epochs 10",
                  "lpm train-deep --stage tau-norm --parent RUN --tau-norm 1"):
        assert stage in text, stage
        commands[stage.split()[3]] = shlex.split(stage)
    return commands


COMMANDS = _recipe_commands()


@pytest.fixture()
def captured(monkeypatch, tmp_path):
    """Run the CLI with training replaced by recording the config it was given."""
    seen = []

    class Result:
        run_dir, epochs, last_test_accuracy, best_test_accuracy, best_epoch = tmp_path, 0, None, None, None
        metrics: list = []

    monkeypatch.setattr(train_module, "train", lambda cfg, resume=False: seen.append(cfg) or Result())
    (tmp_path / "DATA").mkdir()
    return seen


def _run(args, tmp_path):
    args = [a.replace("DATA", str(tmp_path / "DATA")) for a in args[1:]]
    return runner.invoke(app, args)


@pytest.mark.parametrize("name", ["ce", "cb-ce", "ce-drw", "ldam-drw", "progressive"])
def test_joint_recipes_build_the_published_settings(name, captured, tmp_path):
    args = COMMANDS[name]
    loss = args[len(args) - args[::-1].index("--loss")]  # the last --loss given is the one in force
    if loss not in LOSS_NAMES:
        pytest.skip(f"the loss '{loss}' is not registered in lpm.core.losses")
    res = _run(args, tmp_path)
    assert res.exit_code == 0, res.output
    (cfg,) = captured
    # Cao et al. 2019: ResNet-32, 200 epochs, batch 128, lr 0.1, 5 warm-up epochs, ×0.01 after 160 and 180
    assert (cfg.dataset, cfg.backbone, cfg.epochs, cfg.batch_size, cfg.weight_decay, cfg.mixup_alpha) == \
        ("cifar10-lt", "resnet32", 200, 128, 2e-4, 0.0)
    assert (cfg.subset_draw, cfg.subset_seed, cfg.ratio, cfg.head_bias, cfg.momentum) == \
        ("ldam-drw", 0, 100.0, name != "ldam-drw", 0.9)
    assert (cfg.cosine_scale, cfg.margin) == ((30.0, 15.0) if name == "ldam-drw" else (None, None))
    lr = schedule_of(cfg)
    assert [lr(e) for e in (0, 1, 4, 5, 159, 160, 179, 180, 199)] == \
        pytest.approx([0.2, 0.4, 1.0, 1.0, 1.0, 0.01, 0.01, 1e-4, 1e-4])
    if name in ("cb-ce", "ce-drw", "ldam-drw"):
        assert (cfg.class_weights, cfg.beta) == ("class-balanced", 0.9999)
        counts = np.array([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
        w = class_weights("class-balanced", counts, cfg.beta)
        cao = (1 - 0.9999) / (1 - 0.9999 ** counts)  # their weights, up to a scale the weighted mean ignores
        np.testing.assert_allclose(w / w.sum(), cao / cao.sum(), rtol=1e-12)
    assert cfg.drw_epoch == (160 if name in ("ce-drw", "ldam-drw") else None)
    assert cfg.sampler == ("progressive" if name == "progressive" else "instance")


@pytest.mark.parametrize("stage", ["logit-adjust", "crt", "tau-norm"])
def test_second_stage_recipes_build_their_settings(stage, tmp_path, monkeypatch):
    parent = tmp_path / "RUN"
    train(build_config(dict(dataset="synthetic-lt", ratio=10, n_max=20, epochs=1, batch_size=16, feature_dim=8,
                            mixup_alpha=0, progress=False, figures=False, nc4_on_train=False, out=str(parent))))
    seen = []
    monkeypatch.setattr(train_module, "train", lambda cfg, resume=False: seen.append(cfg) or
                        type("R", (), dict(run_dir=tmp_path, epochs=0, last_test_accuracy=None,
                                           best_test_accuracy=None, best_epoch=None, metrics=[]))())
    res = runner.invoke(app, [a.replace("RUN", str(parent)) for a in COMMANDS[stage][1:]])
    assert res.exit_code == 0, res.output
    (cfg,) = seen
    assert cfg.stage == stage and cfg.parent == str(parent.resolve())
    if stage == "crt":  # Kang et al. 2020: 10 epochs of class-balanced sampling
        assert (cfg.epochs, cfg.sampler, cfg.loss, cfg.schedule) == (10, "class-balanced", "ce", "cosine")
    else:
        assert (cfg.adjust_tau if stage == "logit-adjust" else cfg.tau_norm) == 1.0
