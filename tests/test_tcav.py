"""TCAV on a planted model: a known activation direction raises the target logit.

Model: ``a = first 6 pixels`` (module ``feat``), ``z = u·a + s·Σ sin(B a)``, logits ``(z, −z)`` (module ``head``).
For target class 0, ``∂CE/∂a = −2·p₁·(u + s·Bᵀcos(B a))``, so a CAV along ``u`` gives a negative directional
derivative for every image (TCAV score 1), while a CAV between two random sets points nowhere in particular and
the per-image term ``s·Bᵀcos(B a)`` spreads its score around 0.5.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import bamkit.attribution as A
from bamkit.attribution.activations import layer_activations, layer_groups, loss_gradients
from bamkit.attribution.tcav import TCAV, tcav, train_cav
from bamkit.errors import ConfigError


class Head(nn.Module):
    def __init__(self, u: torch.Tensor, b: torch.Tensor, s: float) -> None:
        super().__init__()
        self.register_buffer("u", u)
        self.register_buffer("b", b)
        self.s = s

    def forward(self, a):
        z = a @ self.u + self.s * torch.sin(a @ self.b.T).sum(1)
        return torch.stack([z, -z], 1)


class Planted(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.feat = nn.Linear(16, 6, bias=False)
        with torch.no_grad():
            self.feat.weight.copy_(torch.eye(6, 16))
        u = torch.zeros(6)
        u[0] = 1.0
        self.head = Head(u, torch.randn(6, 6, generator=g), s=0.3)

    def forward(self, x):
        return self.head(self.feat(x.flatten(1)))


def _sets(n_random: int = 11, m: int = 40):
    g = torch.Generator().manual_seed(1)

    def draw(k):
        return torch.randn(k, 1, 4, 4, generator=g)

    target = draw(40)
    concept = draw(m)
    concept[:, 0, 0, 0] += 4.0  # pixel 0 = activation dimension 0 = the direction u
    randoms = [draw(m) for _ in range(n_random)]
    return target, concept, randoms


def test_planted_concept_is_significant_and_scores_one():
    """The concept along u scores ≈ 1 and survives the t-test against random CAVs (p ≤ 0.01) at ``feat``.

    At ``head`` (2 logits z, −z) the concept also scores 1, but every random CAV there is ± the same direction,
    so null scores are all 0 or all 1 and the test has little power: the layer is rejected, as TCAV would.
    """
    model = Planted().eval()
    target, concept, randoms = _sets()
    res = tcav(model, target, 0, concept, randoms, layers=("feat", "head"), num_random=10, batch_size=16)
    assert np.mean(res.scores["feat"]) >= 0.95, res.scores["feat"]
    assert min(res.cav_accuracy["feat"]) >= 0.85
    assert res.p_values["feat"] <= 0.01
    assert 0.2 < np.mean(res.random_scores["feat"]) < 0.8, res.random_scores["feat"]
    assert np.mean(res.scores["head"]) >= 0.95
    assert set(res.random_scores["head"]) <= {0.0, 1.0} and res.p_values["head"] > 0.01
    assert res.kept_layers == ("feat",)
    assert res.concept_score == pytest.approx(np.mean(res.scores["feat"])) and not res.no_significant_layer
    # the opposite class is pushed down by the concept: its TCAV score is ≈ 0 (still significant)
    other = tcav(model, target, 1, concept, randoms, layers=("feat",), num_random=10)
    assert np.mean(other.scores["feat"]) <= 0.05 and other.kept_layers == ("feat",)


def test_random_concept_is_rejected():
    """A 'concept' that is just another random set scores ≈ 0.5 and fails the test: NaN plus the flag."""
    model = Planted().eval()
    target, _, randoms = _sets(n_random=12)
    res = tcav(model, target, 0, randoms[11], randoms[:11], layers=("feat", "head"), num_random=10)
    assert all(res.p_values[k] > 0.01 for k in ("feat", "head")), res.p_values
    assert res.kept_layers == () and res.no_significant_layer and math.isnan(res.concept_score)
    assert 0.2 < np.mean(res.scores["feat"]) < 0.8


def test_tcav_is_seeded_and_batch_independent():
    model = Planted().eval()
    target, concept, randoms = _sets(n_random=4)
    a = tcav(model, target, 0, concept, randoms, layers=("feat",), num_random=3, seed=5, batch_size=7)
    b = tcav(model, target, 0, concept, randoms, layers=("feat",), num_random=3, seed=5, batch_size=64)
    assert a.to_dict() == b.to_dict()


def test_cav_points_toward_the_concept():
    """The CAV is the hinge classifier's normal flipped toward the concept (label 0 in TCAV's convention)."""
    rng = np.random.default_rng(0)
    neg = rng.normal(size=(50, 5))
    pos = rng.normal(size=(50, 5)) + np.array([0, 0, 4.0, 0, 0])
    cav, acc = train_cav(pos, neg, alpha=0.1, seed=0)
    assert acc > 0.9 and cav[2] > 0.9 and np.isclose(np.linalg.norm(cav), 1.0)


def test_tcav_method_is_registered_and_validates():
    assert "tcav" in A.names()
    method = TCAV(layers=("feat",), num_random=2)
    assert method.output == "concept"
    model = Planted().eval()
    target, concept, randoms = _sets(n_random=3)
    res = method.score(model, target, 0, concept, randoms)
    assert res.layers == ("feat",) and len(res.scores["feat"]) == 2
    with pytest.raises(ConfigError, match="concept method"):
        method.attribute(model, target, torch.zeros(len(target), dtype=torch.long))
    with pytest.raises(ConfigError, match="need 11"):
        tcav(model, target, 0, concept, randoms, layers=("feat",))
    with pytest.raises(ConfigError, match="no module 'fet'"):
        tcav(model, target, 0, concept, randoms, layers=("fet",), num_random=2)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_tcav_cuda_matches_cpu():
    """Same CAVs (sklearn on the CPU, seeded) and the same signs of the directional derivatives on CUDA."""
    model = Planted().eval()
    target, concept, randoms = _sets(n_random=4)
    cpu = tcav(model, target, 0, concept, randoms, layers=("feat",), num_random=3)
    gpu = tcav(
        model.cuda(),
        target.cuda(),
        0,
        concept.cuda(),
        [r.cuda() for r in randoms],
        layers=("feat",),
        num_random=3,
    )
    assert gpu.scores == cpu.scores and gpu.random_scores == cpu.random_scores


def test_layer_groups_fit_the_budget():
    dims = {"a": 100, "b": 100, "c": 300}
    assert layer_groups(dims, 1, budget=4 * 200) == [("a", "b"), ("c",)]
    # 2 images: each layer alone fits, no two together
    assert layer_groups(dims, 2, budget=4 * 200) == [("a",), ("b",), ("c",)]
    assert layer_groups(dims, 1, budget=4 * 50) == [("a",), ("b",), ("c",)]  # over the budget: a group of one
    assert layer_groups(dims, 1, budget=10**9) == [("a", "b", "c")]


def test_hooking_several_layers_changes_no_value():
    """One pass over several hooked layers gives each layer exactly what a pass hooking it alone gives."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(inplace=True), nn.Conv2d(4, 4, 3), nn.ReLU(inplace=True),
        nn.Flatten(), nn.Linear(4 * 4 * 4, 3),
    ).eval()  # fmt: skip
    x = torch.randn(9, 3, 8, 8)
    layers = ["0", "2", "5"]
    both = layer_activations(model, x, layers, 4)
    grads = loss_gradients(model, x, 1, layers, 4)
    for layer in layers:
        assert np.array_equal(both[layer], layer_activations(model, x, [layer], 4)[layer])
        assert np.array_equal(grads[layer], loss_gradients(model, x, 1, [layer], 4)[layer])
    # the closed form at the logits: dCE/dz = softmax(z) - onehot(1)
    z = model(x)
    expect = torch.softmax(z, 1) - nn.functional.one_hot(torch.tensor(1), 3)
    assert np.allclose(grads["5"], expect.detach().numpy(), atol=1e-6)


def test_layer_grouping_does_not_change_tcav(monkeypatch):
    model = Planted().eval()
    target, concept, randoms = _sets(n_random=4)
    run = dict(layers=("feat", "head"), num_random=3, seed=5, batch_size=16)
    one = tcav(model, target, 0, concept, randoms, **run)
    monkeypatch.setattr("bamkit.attribution.activations.ACTIVATION_BUDGET", 1)  # every layer its own group
    apart = tcav(model, target, 0, concept, randoms, **run)
    assert one.to_dict() == apart.to_dict()


def test_cav_fits_on_threads_match_one_thread(monkeypatch):
    model = Planted().eval()
    target, concept, randoms = _sets(n_random=5)
    run = dict(layers=("feat", "head"), num_random=4, seed=3, batch_size=16)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    threaded = tcav(model, target, 0, concept, randoms, **run)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert threaded.to_dict() == tcav(model, target, 0, concept, randoms, **run).to_dict()
