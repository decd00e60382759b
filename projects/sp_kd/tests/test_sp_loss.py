"""Tests of the SP-KD add-on: the loss by hand (float64), its gradients and errors, and the
project config (custom_imports of `projects.sp_kd.losses`, `rtkd::` bases and student)."""
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import MODELS

from projects.sp_kd.losses import SPLoss, similarity_matrix

CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs',
    'sp_backbone_bisenetv2-ft3000_fast-scnn_1xb8-6k_camvid-240x320.py')


def sp_by_hand(s, t):
    """Paper eq. 2-4 with explicit loops: G_ij = <q_i, q_j> / ||row i of <q_i, q_j>||,
    L = sum (Gt - Gs)^2 / b^2."""
    b = s.shape[0]

    def gram(x):
        q = [x[i].flatten().tolist() for i in range(b)]
        g = [[sum(u * v for u, v in zip(q[i], q[j])) for j in range(b)] for i in range(b)]
        return [[g[i][j] / math.sqrt(sum(v * v for v in g[i])) for j in range(b)] for i in range(b)]

    gs, gt = gram(s), gram(t)
    return sum((gt[i][j] - gs[i][j])**2 for i in range(b) for j in range(b)) / b**2


def test_sp_loss_matches_the_paper_by_hand():
    """Different channels and sizes (3x2x2 student, 5x1x3 teacher), batch 3, weight 7."""
    g = torch.Generator().manual_seed(0)
    s = torch.randn(3, 3, 2, 2, generator=g, dtype=torch.float64)
    t = torch.randn(3, 5, 1, 3, generator=g, dtype=torch.float64)
    loss = SPLoss(loss_weight=7.0)(s, t)
    assert loss.dtype == torch.float64
    assert torch.isclose(loss, torch.tensor(7.0 * sp_by_hand(s, t), dtype=torch.float64))
    rows = similarity_matrix(s).norm(dim=1)
    assert torch.allclose(rows, torch.ones(3, dtype=torch.float64))


def test_sp_loss_zero_for_same_similarities_and_student_only_gradient():
    """A scaled copy of the teacher has the same row-normalised similarities (loss 0); the
    gradient reaches the student, never the teacher."""
    g = torch.Generator().manual_seed(1)
    t = torch.randn(4, 6, 3, 3, generator=g, dtype=torch.float64, requires_grad=True)
    same = (2.5 * t).detach()
    assert SPLoss()(same, t).abs() < 1e-12
    s = torch.randn(4, 2, 5, 5, generator=g, dtype=torch.float64, requires_grad=True)
    SPLoss()(s, t).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_sp_loss_rejects_what_it_cannot_compare():
    loss = SPLoss()
    with pytest.raises(ValueError, match='at least 2'):
        loss(torch.randn(1, 3, 4, 4), torch.randn(1, 5, 4, 4))
    with pytest.raises(ValueError, match='same batch'):
        loss(torch.randn(2, 3, 4, 4), torch.randn(3, 3, 4, 4))
    with pytest.raises(ValueError, match='tap a feature map'):
        loss(torch.randn(4), torch.randn(4))


def test_project_config_imports_its_loss_and_names_real_taps():
    """The recipe reaches the add-on through custom_imports and its `rtkd::` student has the
    tapped module (configs with `rtkd::` bases are read after `import rtkd`, as tools/train.py
    does)."""
    import rtkd  # noqa: F401
    cfg = Config.fromfile(CONFIG)
    assert 'projects.sp_kd.losses' in cfg.custom_imports.imports
    spec = {k: v for k, v in cfg.model.losses.loss_sp.items() if k not in ('student', 'teacher')}
    loss = MODELS.build(spec)
    assert isinstance(loss, SPLoss) and loss.loss_weight == 3000.0
    assert cfg.model.student.startswith('rtkd::')
    from rtkd.distill.builder import build_network
    student, _, _ = build_network(cfg.model.student, 'student')
    module = cfg.model.taps.s_feat.split(':', 1)[1].split('#')[0]
    assert module in dict(student.named_modules())
