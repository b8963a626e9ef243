"""Loss forms of theory.md §5–§6 and the device-side batch pipeline."""
import numpy as np
import torch
import torch.nn.functional as F

from full_model.distributed import DistContext
from full_model.loader import Normalizer, TensorTrainLoader, crop_flip
from full_model.losses import Objective, released_dr_sum
from lpm.core.losses import get_loss


def _unit(x):
    return F.normalize(x, dim=1)


def test_dr_paper_form_is_half_squared_logit_error():
    z = torch.tensor([[0.2, 0.9], [-0.3, 0.5]])
    y = torch.tensor([1, 0])
    expected = 0.5 * ((0.9 - 1.0) ** 2 + (-0.3 - 1.0) ** 2)
    torch.testing.assert_close(get_loss("dr").torch_value(z, y, 1.0).sum(), torch.tensor(expected), rtol=1e-6, atol=0)


def test_dr_released_form_equals_its_cosine_expression_and_gradient():
    torch.manual_seed(0)
    h = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    W = torch.randn(3, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    loss = released_dr_sum(h, W, y)
    w = W[y]
    cos = F.cosine_similarity(h, w, dim=1)
    per_sample = 0.5 * w.norm(dim=1) ** 2 * h.norm(dim=1) * (cos - 1) ** 2     # theory.md §6.1
    torch.testing.assert_close(loss, per_sample.sum().detach(), rtol=1e-12, atol=0)
    loss.backward()
    # detached norms: d/dh = (w·h − ‖w‖‖h‖) w / ‖h‖, a pull along w only
    dot = (h * w).sum(1)
    grad = ((dot - w.norm(dim=1) * h.norm(dim=1)) / h.norm(dim=1))[:, None] * w
    torch.testing.assert_close(h.grad, grad.detach(), rtol=1e-12, atol=1e-12)


def test_batch_balancing_weights_each_class_equally():
    torch.manual_seed(1)
    h = _unit(torch.randn(8, 5, dtype=torch.float64))
    W = _unit(torch.randn(3, 5, dtype=torch.float64))
    y = torch.tensor([0, 0, 0, 0, 0, 1, 1, 2])
    counts = torch.bincount(y, minlength=3)
    balanced = released_dr_sum(h, W, y, counts)
    gamma = 8 / 3
    cos = (h * W[y]).sum(1)
    per_class = [(0.5 * (cos[y == k] - 1) ** 2).mean() for k in range(3)]
    # Σ_i (γ/c_y) ½(1−cos)² = γ Σ_k mean_k ½(1−cos)²  (unit h and w)
    torch.testing.assert_close(balanced, gamma * sum(per_class), rtol=1e-12, atol=0)


def test_objective_mixes_labels_and_scales_for_processes():
    z = torch.randn(4, 3)
    y_a, y_b = torch.tensor([0, 1, 2, 0]), torch.tensor([1, 1, 0, 2])
    obj = Objective("ce")
    value = obj(None, z, None, y_a, y_b, 0.3, None, global_size=8, world_size=2)
    expected = (0.3 * F.cross_entropy(z, y_a, reduction="sum") + 0.7 * F.cross_entropy(z, y_b, reduction="sum")) / 4
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=0)


def test_crop_flip_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 255, size=(5, 3, 8, 6), dtype=np.uint8))
    oy, ox = torch.tensor([0, 8, 3, 4, 1]), torch.tensor([8, 0, 2, 4, 7])
    flip = torch.tensor([False, True, True, False, True])
    out = crop_flip(x, oy, ox, flip)
    padded = F.pad(x, (4, 4, 4, 4))
    for i in range(5):
        window = padded[i, :, oy[i]:oy[i] + 8, ox[i]:ox[i] + 6]
        torch.testing.assert_close(out[i], window.flip(2) if flip[i] else window, rtol=0, atol=0)


def test_rank_shares_rebuild_the_single_process_batch():
    """Two ranks' rows, augmentations and mixup partners equal one process's global batch."""
    rng_x = np.random.default_rng(0)
    x = rng_x.integers(0, 255, size=(20, 3, 8, 8), dtype=np.uint8)
    y = np.arange(20) % 4

    def batches(rank, world):
        loader = TensorTrainLoader(x, y, 4, batch_size=10, device="cpu", ctx=DistContext(rank, world),
                                   rng=np.random.default_rng(5), normalizer=Normalizer((0.5,) * 3, (0.5,) * 3, "cpu"),
                                   augment=True, mixup_alpha=1.0)
        return list(loader)

    single, r0, r1 = batches(0, 1), batches(0, 2), batches(1, 2)
    for whole, a, b in zip(single, r0, r1):
        torch.testing.assert_close(whole.x[0::2], a.x, rtol=0, atol=0)
        torch.testing.assert_close(whole.x[1::2], b.x, rtol=0, atol=0)
        assert torch.equal(whole.y_b[1::2], b.y_b) and whole.lam == a.lam == b.lam
        assert torch.equal(whole.counts, a.counts) and a.global_size == 10
