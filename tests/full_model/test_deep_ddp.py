"""Two gloo processes under torchrun train the same network as one process.

What must agree, and why: the global batch, its augmentation and its mixup
pairs are drawn identically on every process and split by rows; each process
scales its summed loss by P/B so DDP's gradient average is the global-batch
mean. The network has no BatchNorm (per-process batch statistics would be a
real, documented difference without SyncBatchNorm, which needs CUDA). So
weights agree up to float32 rounding of the gradient all-reduce, and the
tracked metrics (reduced exactly across shards) agree with them.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from full_model import checkpoint as ckpt
from full_model import run_format as rf
from full_model.config import build_config
from full_model.models import build_network
from full_model.train import train

SETTINGS = dict(dataset="synthetic-images-lt", backbone="mlp", feature_dim=32, ratio=10, n_max=24, head="fixed-etf",
                head_batchnorm=False, loss="dr", dr_form="released", mixup_alpha=1.0, augment=True, batch_size=16,
                epochs=2, warmup_epochs=1, eval_batch_size=64, progress=False, figures=False)


def test_two_process_gloo_run_matches_one_process(tmp_path):
    (tmp_path / "cfg.json").write_text(json.dumps(SETTINGS))
    single = train(build_config({**SETTINGS, "out": str(tmp_path / "single")}))
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "lpm", "train-deep",
                           "--config", str(tmp_path / "cfg.json"), "--out", str(tmp_path / "ddp"), "--device", "cpu"],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp_config = json.loads((tmp_path / "ddp" / rf.CONFIG_FILE).read_text())
    assert ddp_config["provenance"]["world_size"] == 2 and ddp_config["data"]["train_size"] == 95

    a = ckpt.load(tmp_path / "single" / rf.CHECKPOINT_FILE, "cpu")["model"]
    b = ckpt.load(tmp_path / "ddp" / rf.CHECKPOINT_FILE, "cpu")["model"]
    torch.manual_seed(0)
    start = build_network("mlp", "fixed-etf", 10, (3, 32, 32), feature_dim=32, head_batchnorm=False).state_dict()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)
    moved = max((a[k] - start[k]).abs().max().item() for k in a if k != "head.M")
    assert moved > 1e-2  # training moved the weights far beyond the tolerance above
    assert torch.equal(a["head.M"], b["head.M"])

    rows_a = single.metrics
    rows_b = rf.read_metrics(tmp_path / "ddp" / rf.METRICS_FILE)
    assert [r["epoch"] for r in rows_b] == [1, 2]
    for ra, rb in zip(rows_a, rows_b):
        np.testing.assert_allclose(rb["train_loss"], ra["train_loss"], rtol=1e-5)
        for key in ("nc1", "nc1_balanced", "nc1_pinv", "nc1_trace_quotient", "cdnv", "nc2", "nc3", "y22_gap",
                    "collapse_index"):
            np.testing.assert_allclose(rb[key], ra[key], rtol=1e-4, err_msg=key)
        for key in ("train_accuracy", "test_accuracy", "nc4", "test_ece", "test_top5_accuracy",
                    "test_balanced_accuracy", "test_few_shot_accuracy", "test_nc4_class_agreement"):
            np.testing.assert_allclose(rb[key], ra[key], atol=1.5 / 95, err_msg=key)  # at most one flip in 95 rows
