"""Kendall τ (vs scipy), cosine, Simpson (vs scipy, legacy even-N rule), AUTVC, MI (closed forms) and the
two stability protocols."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import bamkit.metrics as M
from bamkit.errors import ConfigError, DataError


# --------------------------------------------------------------------------------------------- Kendall
@pytest.mark.parametrize("variant", ["b", "c"])
@pytest.mark.parametrize("n,levels", [(2, 5), (7, 3), (500, 10), (1000, 1000)])
def test_kendall_matches_scipy_with_ties(variant, n, levels):
    rng = np.random.default_rng(n + levels)
    u = rng.integers(0, levels, n).astype(np.float32)
    v = (u + rng.integers(0, levels, n)).astype(np.float32)  # correlated, with ties in both
    exp = stats.kendalltau(u, v, variant=variant).statistic
    got = M.kendall_tau(torch.from_numpy(u), torch.from_numpy(v), variant=variant, backend="torch")
    if math.isnan(exp):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(exp, abs=1e-12)


def test_kendall_extremes_constants_and_subsampling():
    x = torch.randn(300)
    assert M.kendall_tau(x, 2 * x + 1) == pytest.approx(1.0)
    assert M.kendall_tau(x, -x) == pytest.approx(-1.0)
    assert math.isnan(M.kendall_tau(x, torch.ones(300)))  # undefined for a constant input
    big_u, big_v = torch.randn(20000), torch.randn(20000)
    a = M.kendall_tau(big_u, big_v, max_n=2000, seed=1)
    assert a == M.kendall_tau(big_u, big_v, max_n=2000, seed=1)
    idx = torch.randperm(20000, generator=torch.Generator().manual_seed(1))[:2000]
    assert a == pytest.approx(stats.kendalltau(big_u[idx].numpy(), big_v[idx].numpy()).statistic, abs=1e-12)
    with pytest.raises(DataError):
        M.kendall_tau(torch.zeros(3), torch.zeros(4))


def test_kendall_backends_agree_and_are_fast_on_a_full_attribution():
    u = torch.randn(3 * 64 * 64)
    v = u + 0.5 * torch.randn_like(u)
    t0 = time.perf_counter()
    got = M.kendall_tau(u, v, backend="torch")
    assert time.perf_counter() - t0 < 10.0  # vectorised: no Python loop over elements
    assert got == pytest.approx(stats.kendalltau(u.numpy(), v.numpy()).statistic, abs=1e-10)
    assert M.kendall_tau(u, v) == pytest.approx(got, abs=1e-12)  # auto -> scipy on CPU
    assert M.kendall_tau(u, v, variant="c", backend="scipy") == pytest.approx(
        M.kendall_tau(u, v, variant="c", backend="torch"), abs=1e-12
    )
    with pytest.raises(ConfigError):
        M.kendall_tau(u, v, backend="numba")


@pytest.mark.gpu
def test_kendall_torch_backend_on_cuda_matches_scipy():
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    u = torch.randint(0, 30, (150528,)).float()
    v = u + torch.randn_like(u)
    got = M.kendall_tau(u.cuda(), v.cuda())
    assert got == pytest.approx(stats.kendalltau(u.numpy(), v.numpy()).statistic, abs=1e-10)


def test_cosine_hand_computed():
    a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = torch.tensor([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0]])
    c = M.cosine_similarity(a, b)
    assert c[0] == 0 and c[1] == pytest.approx(1.0) and torch.isnan(c[2])  # zero vector: undefined


# --------------------------------------------------------------------------------------------- Simpson
@pytest.mark.parametrize("n", [3, 5, 31])
def test_simpson_odd_matches_scipy(n):
    y = np.random.default_rng(n).normal(size=n)
    assert float(M.simpson(torch.tensor(y))) == pytest.approx(integrate.simpson(y, dx=1.0), rel=1e-12)


@pytest.mark.parametrize("n", [2, 4, 6, 10])
def test_simpson_even_rules(n):
    y = np.random.default_rng(n).normal(size=n)
    t = torch.tensor(y)
    assert float(M.simpson(t, even="cartwright")) == pytest.approx(integrate.simpson(y, dx=1.0), rel=1e-12)
    if n == 2:
        return
    # legacy scipy.integrate.simps(even='avg'): mean of Simpson+trapezoid at either end
    first = integrate.simpson(y[:-1]) + (y[-1] + y[-2]) / 2
    last = (y[0] + y[1]) / 2 + integrate.simpson(y[1:])
    assert float(M.simpson(t, even="avg")) == pytest.approx((first + last) / 2, rel=1e-12)
    assert float(M.simpson(t, even="first")) == pytest.approx(first, rel=1e-12)
    with pytest.raises(ConfigError):
        M.simpson(t, even="odd")


def test_simpson_is_exact_for_cubics():
    x = np.arange(7.0)
    y = torch.tensor(x**3 - 2 * x)
    assert float(M.simpson(y)) == pytest.approx(6**4 / 4 - 36, rel=1e-12)


# --------------------------------------------------------------------------------------------- AUTVC
def test_average_total_variation_hand_computed():
    heat = np.array([[0.0, 1.0], [1.0, 1.0]])
    # abs_p99: min 0, p99 = 1 -> unchanged; |Δx| = 1 + 0, |Δy| = 1 + 0 -> 2 / 4
    assert M.average_total_variation(heat) == pytest.approx(0.5)
    assert M.average_total_variation(np.full((4, 4), 3.0)) == 0.0


def test_autvc_orders_smooth_below_noisy_and_counts_levels():
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    smooth = torch.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / 200)[None]
    noisy = torch.randn(1, 64, 64, generator=g)
    res = M.autvc(torch.cat([smooth, noisy]))
    assert len(res.atv[0]) == 2  # pyramid 64, 43, then 29 < 30 stops
    assert res.autvc[0] < res.autvc[1]
    # docs/metrics.md#aupc-and-autvc: a 224² map has 6 levels (224, 150, 100, 67, 45, 30): even N, where the Simpson rules differ
    big = torch.randn(1, 224, 224, generator=g)
    legacy, current = M.autvc(big), M.autvc(big, even="cartwright")
    assert len(legacy.atv[0]) == 6
    atv = torch.tensor(legacy.atv[0], dtype=torch.float64)
    assert float(legacy.autvc[0]) == pytest.approx(float(M.simpson(atv, even="avg")), rel=1e-6)
    assert float(current.autvc[0]) == pytest.approx(integrate.simpson(atv.numpy()), rel=1e-6)
    const = M.autvc(torch.zeros(1, 64, 64))
    assert float(const.autvc[0]) == 0.0


# --------------------------------------------------------------------------------------------- MI
def test_mi_identical_discrete_is_the_entropy():
    vals = torch.tensor([0.0, 1 / 3, 2 / 3, 1.0])
    x = vals[torch.arange(4096) % 4].reshape(1, 1, 64, 64)
    mi = M.mutual_information(x, x[:, 0])
    assert float(mi[0]) == pytest.approx(math.log(4), abs=1e-9)


def test_mi_independent_is_near_zero_and_miller_madow_reduces_bias():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(1, 1, 256, 256, generator=g)
    z = torch.rand(1, 256, 256, generator=g)
    plug = float(M.mutual_information(x, z)[0])
    mm = float(M.mutual_information(x, z, miller_madow=True)[0])
    n = 256 * 256
    assert 0 < plug < 2 * 31**2 / (2 * n)  # plug-in bias ≈ (B−1)²/(2n)
    assert abs(mm) < abs(plug) and abs(mm) < 2e-3
    const = float(M.mutual_information(x, torch.full((1, 256, 256), 0.3))[0])
    assert const == pytest.approx(0.0, abs=1e-12)  # a constant explanation carries no information


def test_mi_ksg_matches_the_gaussian_closed_form():
    rho = 0.8
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 64 * 64, generator=g, dtype=torch.float64)
    u, w = a, rho * a + math.sqrt(1 - rho**2) * b
    # MI is invariant under monotone maps: squash to [0, 1] with the normal CDF
    cdf = torch.distributions.Normal(0.0, 1.0).cdf
    x, z = cdf(u).reshape(1, 1, 64, 64), cdf(w).reshape(1, 64, 64)
    got = float(M.mutual_information(x, z, estimator="ksg", max_samples=4096)[0])
    assert got == pytest.approx(-0.5 * math.log(1 - rho**2), abs=0.05)


def test_mi_rejects_model_space_inputs():
    with pytest.raises(DataError):
        M.mutual_information(torch.randn(1, 3, 8, 8) * 3, torch.rand(1, 8, 8))


# --------------------------------------------------------------------------------------------- protocols
def test_input_noise_protocol_constant_explainer_is_perfectly_stable():
    fixed = torch.randn(2, 3, 8, 8)
    res = M.input_noise_stability(
        lambda x, i: fixed[i].clone(), torch.randn(2, 3, 8, 8), epsilons=(0.1, 0.5, 1.0)
    )
    one = torch.ones(2, 3, dtype=torch.float64)
    assert torch.allclose(res.tau, one) and torch.allclose(res.cosine, one)


def test_input_noise_is_one_sided_uniform_and_scaled():
    seen = []

    def explain(x, index):
        seen.append(x.clone())
        return x

    x = torch.zeros(1, 3, 16, 16)
    M.input_noise_stability(explain, x, epsilons=(0.5,), seed=0)
    d = seen[1] - x
    assert d.min() > 0 and d.max() <= 0.5 and abs(float(d.mean()) - 0.25) < 0.02


def test_masking_protocol_fresh_copy_all_channels_ranked_by_clean_attribution():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 10, 10, generator=g) + 1.0  # strictly positive so masked pixels are recognisable
    seen = []

    def explain(inp, index):
        seen.append((inp.clone(), index.clone()))
        return inp * torch.linspace(0, 1, 100).reshape(1, 1, 10, 10)  # rank follows position

    ratios = (0.1, 0.3, 0.5)
    res = M.masking_stability(explain, x, ratios=ratios, chunk=4)  # chunks mix images and ratios
    clean_rank = (x * torch.linspace(0, 1, 100).reshape(1, 1, 10, 10)).abs().mean(1).reshape(2, -1)
    copies = torch.cat([c for c, _ in seen[1:]])
    images = torch.cat([i for _, i in seen[1:]])
    assert images.tolist() == [0, 0, 0, 1, 1, 1]  # (image, level) order; index names each copy's image
    for k, (inp, i) in enumerate(zip(copies, images.tolist())):
        r = ratios[k % 3]
        zeroed = (inp == 0).all(0).reshape(-1)  # all channels zeroed together
        assert ((inp == 0).any(0) == (inp == 0).all(0)).all()
        assert zeroed.sum() == round(r * 100)  # not cumulative across ratios
        top = torch.topk(clean_rank[i], round(r * 100)).indices
        assert zeroed[top].all()
    assert (res.tau[:, 0] > res.tau[:, -1]).all() and (res.cosine[:, 0] > res.cosine[:, -1]).all()
    assert res.tau_level_spearman < 0
