"""Backbones and heads: shapes, the shared ETF, and what is (not) trainable."""
import numpy as np
import pytest
import torch

from full_model.models import build_network
from full_model.models.resnet_cifar import resnet32
from lpm.core.etf import check_etf, simplex_etf
from lpm.core.problem import Problem


def test_resnet32_option_a_has_the_standard_size_and_feature_dims():
    net = resnet32()
    # 0.46M parameters: option-A shortcuts add none (ResNet-32 of He et al. 2016 without its 10-way fc layer)
    assert sum(p.numel() for p in net.parameters()) == 463_504
    x = torch.randn(2, 3, 32, 32)
    assert net.forward_features(x).shape == (2, 64)
    assert resnet32(wide=True).forward_features(x).shape == (2, 128)


def test_widened_resnet50_gives_4096_features():
    net = build_network("resnet50-wide", "fixed-etf", 1000, (3, 64, 64)).eval()
    h, z = net(torch.randn(1, 3, 64, 64), with_features=True)
    assert h.shape == (1, 4096) and z.shape == (1, 1000) and net.get_classifier().shape == (1000, 4096)


@pytest.mark.parametrize("backbone,shape", [("cnn1d", (1, 40)), ("mlp", (64,)), ("resnet32", (3, 32, 32))])
def test_fixed_etf_head_is_lpm_simplex_etf_and_normalises(backbone, shape):
    net = build_network(backbone, "fixed-etf", 10, shape, head_seed=7)
    W = net.get_classifier()
    np.testing.assert_array_equal(W.numpy(), simplex_etf(10, W.shape[1], 7).T.astype(np.float32))
    assert check_etf(W.double().T.numpy()).ok(1e-6)
    assert "head.M" in net.state_dict() and all(p is not net.head.M for p in net.parameters())
    h, z = net(torch.randn(8, *shape), with_features=True)
    torch.testing.assert_close(h.norm(dim=1), torch.ones(8), rtol=0, atol=1e-6)
    torch.testing.assert_close(z, h @ W.T, rtol=0, atol=1e-6)


def test_fixed_random_head_is_the_problem_fixed_classifier():
    net = build_network("mlp", "fixed-random", 10, (16,), head_seed=3)
    W = Problem.from_counts([1.0] * 10, d=64, classifier="fixed-random", seed=3).fixed_classifier
    np.testing.assert_array_equal(net.get_classifier().numpy(), W.astype(np.float32))


def test_learnable_head_exposes_its_trainable_weight():
    net = build_network("mlp", "learnable", 5, (16,))
    W = net.get_classifier()
    assert W.shape == (5, 64) and W.requires_grad and any(p is W for p in net.parameters())
    x = torch.randn(4, 16)
    torch.testing.assert_close(net(x), net.forward_features(x) @ W.T, rtol=0, atol=1e-6)
