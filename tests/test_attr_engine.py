"""The attribution engine against closed forms, float64 stacked references, and its sharing/seed contracts.

Oracles: a linear model's gradient is its weight row and its IG is (x − x') ⊙ w; a quadratic model's IG is
(x − x') ⊙ v² ⊙ (x + x') for every rule exact on linear integrands; IG completeness on a small CNN; the
streaming reducers against the stack of per-sample gradients reduced in float64; and kernel-call counting for
sample sharing.
"""

from __future__ import annotations

import pytest
import sampler_oracles as oracle
import torch
from torch import nn

import bamkit.attribution as A
from bamkit.attribution import paths as P
from bamkit.attribution import reducers as R
from bamkit.attribution import samplers as S
from bamkit.attribution.base import ExecOptions
from bamkit.attribution.engine import image_generators, resolve_seeds, run_methods, samples_per_image
from bamkit.errors import BamkitError, ConfigError
from bamkit.testing.models import LinearImage, SmallCNN, images


class Counting(nn.Module):
    """Counts forward calls and rows (kernel evaluations) of the wrapped model."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls, self.rows = inner, 0, 0

    def forward(self, x):
        self.calls += 1
        self.rows += x.shape[0]
        return self.inner(x)


class Quadratic(nn.Module):
    """f_c(x) = Σ (v_c ⊙ x)²: ∇f_c = 2 v_c² ⊙ x, IG from b = (x − b) ⊙ v_c² ⊙ (x + b)."""

    def __init__(self, shape=(3, 6, 6), classes=3):
        super().__init__()
        self.v = nn.Parameter(torch.randn(classes, *shape, generator=torch.Generator().manual_seed(1)))

    def forward(self, x):
        return ((self.v[None] * x[:, None]) ** 2).flatten(2).sum(2)


@pytest.fixture
def linear():
    return LinearImage(channels=3, size=8, classes=4)


@pytest.fixture
def xt():
    x = torch.randn(3, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    return x, torch.tensor([0, 3, 1])


def w_rows(model, t):
    return torch.stack([model.weight_image(int(c)) for c in t])


# ----------------------------------------------------------------------------------------------- closed forms


def test_vanilla_gradient_is_weight_row(linear, xt):
    x, t = xt
    torch.testing.assert_close(A.attribute(linear, x, t, "vanilla_gradient"), w_rows(linear, t))


def test_gradient_x_input_on_linear(linear, xt):
    x, t = xt
    torch.testing.assert_close(A.attribute(linear, x, t, "gradient_x_input"), x * w_rows(linear, t))


@pytest.mark.parametrize("rule", P.PATH_RULES)
@pytest.mark.parametrize("baseline", ["black", "mean", 0.3])
def test_ig_linear_closed_form(linear, xt, rule, baseline):
    """IG = (x − x') ⊙ w for every quadrature rule (all weights sum to 1)."""
    x, t = xt
    ig = A.attribute(linear, x, t, "integrated_gradients", n_steps=5, rule=rule, baseline=baseline)
    b = P.resolve_baseline(baseline, x, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if baseline == "black":
        ref = torch.tensor([-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]).view(1, 3, 1, 1)
        torch.testing.assert_close(b, ref.expand_as(x))
    torch.testing.assert_close(ig, (x - b) * w_rows(linear, t), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rule", ["trapezoid", "middle", "gausslegendre", "bam_linspace"])
def test_ig_quadratic_exact_rules(rule):
    """The gradient is linear in α on a quadratic model, so these rules integrate it exactly."""
    model = Quadratic().double()
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    b = torch.full_like(x, 0.25)
    t = torch.tensor([2, 0])
    ig = A.attribute(model, x, t, "integrated_gradients", n_steps=3, rule=rule, baseline=0.25)
    v2 = model.v.detach()[t] ** 2
    torch.testing.assert_close(ig, (x - b) * v2 * (x + b))


def test_ig_left_right_riemann_error_is_the_known_bias():
    """Left/right sums of a linear integrand miss by ∓ half a step: IG_right − IG_left = (x−b)⊙(g(1)−g(0))/n."""
    model = Quadratic().double()
    x = torch.randn(1, 3, 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    t = torch.tensor([1])
    n = 4
    left = A.attribute(model, x, t, "integrated_gradients", n_steps=n, rule="left", baseline="mean")
    right = A.attribute(model, x, t, "integrated_gradients", n_steps=n, rule="right", baseline="mean")
    g1 = 2 * model.v.detach()[t] ** 2 * x  # gradient at x; at the baseline 0 it is 0
    torch.testing.assert_close(right - left, x * g1 / n)


def test_ig_completeness_small_cnn():
    """Σ IG = f(x) − f(x') (Sundararajan et al. 2017 axiom) within quadrature error on a ReLU CNN."""
    model = SmallCNN().double()
    x = images(2, size=16).double()
    t = torch.tensor([1, 4])
    ig = A.attribute(
        model,
        x,
        t,
        "integrated_gradients",
        n_steps=256,
        rule="trapezoid",
        baseline="black",
        opts=ExecOptions(batch_size=128),
    )
    base = P.resolve_baseline("black", x, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    with torch.no_grad():
        delta = model(x).gather(1, t[:, None])[:, 0] - model(base).gather(1, t[:, None])[:, 0]
    torch.testing.assert_close(ig.flatten(1).sum(1), delta, rtol=5e-3, atol=5e-3)


def test_noise_methods_on_linear(linear, xt):
    """Noise does not change a linear model's gradient: SG = w, SG² = w², VarGrad = 0, AbsoluteGrad = |w|."""
    x, t = xt
    w = w_rows(linear, t)
    r = A.attribute_many(
        linear,
        x,
        t,
        [
            "smoothgrad",
            "smoothgrad_sq",
            "vargrad",
            "absolutegrad",
            "smoothgrad_x_input",
            {"name": "guided_absolutegrad", "p": 0.0},
        ],
    )
    torch.testing.assert_close(r["smoothgrad"], w)
    torch.testing.assert_close(r["smoothgrad_sq"], w * w)
    torch.testing.assert_close(r["vargrad"], torch.zeros_like(w), atol=1e-10, rtol=0)
    torch.testing.assert_close(r["absolutegrad"], w.abs())
    torch.testing.assert_close(r["guided_absolutegrad"], w.abs())
    torch.testing.assert_close(r["smoothgrad_x_input"], w * x)


def test_feature_suppression_on_linear(linear, xt):
    x, t = xt
    w = w_rows(linear, t)
    torch.testing.assert_close(A.attribute(linear, x, t, "feature_suppression", n_samples=7), w.abs())
    fs_x = A.attribute(linear, x, t, "feature_suppression", n_samples=7, times_input=True)
    torch.testing.assert_close(fs_x, w.abs() * x)


def test_smooth_taylor_on_linear_uses_documented_noise(linear, xt):
    """On a linear model R(x) = mean_i (x − z_i) ⊙ w = −σ·mean_i ε_i ⊙ w, with ε drawn per image from a
    generator seeded with seeds[j], DRAW_CHUNK samples at a time (samplers.py contract)."""
    x, t = xt
    seeds = torch.tensor([11, 12, 13])
    n, sigma = 5, 0.4
    a = A.attribute(linear, x, t, "smooth_taylor", n_samples=n, sigma=sigma, seeds=seeds)
    eps = torch.stack(
        [torch.randn((n, 3, 8, 8), generator=torch.Generator().manual_seed(int(s))).mean(0) for s in seeds]
    )
    torch.testing.assert_close(a, -sigma * eps * w_rows(linear, t), rtol=1e-5, atol=1e-6)


def test_gaussian_sigma_is_fraction_of_image_range():
    x = torch.zeros(1, 3, 4, 4)
    x[0, 0, 0, 0], x[0, 1, 1, 1] = 2.0, -1.0  # range 3
    s = S.Gaussian(n_samples=4000, sigma=0.1)
    (b,) = list(s.batches(x, image_generators(torch.tensor([0]), x.device), 4000))
    assert abs(float((b.inputs - x).std()) - 0.3) < 0.01
    torch.testing.assert_close(b.offset, x - b.inputs)
    torch.testing.assert_close(b.weight, torch.full((4000,), 1 / 4000))


def test_pixel_space_noise_is_isotropic_in_pixels():
    std = (0.1, 0.2, 0.4)
    s = S.Gaussian(n_samples=3000, sigma=0.1, noise_space="pixel", mean=(0.0, 0.0, 0.0), std=std)
    x = torch.zeros(1, 3, 4, 4)
    x[0, :, 0, 0] = torch.tensor([1.0, 0.5, 0.25])  # pixels (x·std + mean): 0.1, 0.1, 0.1 → range 0.1
    (b,) = list(s.batches(x, image_generators(torch.tensor([1]), x.device), 3000))
    pix = (b.inputs - x) * torch.tensor(std).view(1, 3, 1, 1)
    for c in range(3):
        assert abs(float(pix[:, c].std()) - 0.01) < 5e-4


def test_bernoulli_drop_rate_and_fill():
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    s = S.BernoulliDrop(n_samples=50, drop_p=0.7, fill="mean")
    b = torch.cat([bb.inputs for bb in s.batches(x, image_generators(torch.tensor([5]), x.device), 64)])
    dropped = (b == 0).all(1)  # per="pixel": all channels together
    assert abs(float(dropped.float().mean()) - 0.7) < 0.02
    kept = ~dropped
    torch.testing.assert_close(b.permute(1, 0, 2, 3)[:, kept], x[0][:, None].expand(3, 50, 16, 16)[:, kept])


# --------------------------------------------------------------------- streaming reducers vs stacked float64


def _stacked_grads(model, sampler, x, t, seeds):
    """Every sample's gradient, computed one sample at a time in float64 (independent of the engine)."""
    model = model.double()
    samples = list(sampler.batches(x.double(), image_generators(seeds, x.device), 10_000))
    (b,) = samples
    grads = []
    for i in range(len(b)):
        xi = b.inputs[i : i + 1].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(model(xi)[0, t[b.image_index[i]]], xi)
        grads.append(g[0])
    return b, torch.stack(grads)


def test_reducers_match_stacked_float64_reference():
    model = SmallCNN(width=4)
    x = images(2, size=12)
    t = torch.tensor([0, 2])
    seeds = torch.tensor([3, 4])
    n = 6
    b, g = _stacked_grads(model, S.Gaussian(n_samples=n, sigma=0.2), x, t, seeds)
    g = g.view(2, n, *g.shape[1:])
    eps = b.inputs.view(2, n, *x.shape[1:]) - x.double()[:, None]
    var = g.var(1, unbiased=True)
    q = torch.quantile(var.flatten(2), 0.6, dim=2).view(2, 3, 1, 1)
    ref = {
        "smoothgrad": g.mean(1),
        "smoothgrad_sq": (g * g).mean(1),
        "vargrad": var,
        "absolutegrad": g.abs().mean(1),
        "guided_absolutegrad": g.abs().mean(1) * torch.where(var > q, torch.ones_like(var), var),
        "gag_norm": g.abs().mean(1) * (var / q).clamp(max=1.0),
        "smoothgrad_x_input": g.mean(1) * x.double(),
        "smooth_taylor": (-eps * g).mean(1),
    }
    common = {"n_samples": n, "sigma": 0.2}
    methods = {
        k: {"name": k, **common} for k in ("smoothgrad", "vargrad", "absolutegrad", "smoothgrad_x_input")
    }
    methods["smoothgrad_sq"] = {"name": "smoothgrad_sq", **common}
    methods["guided_absolutegrad"] = {"name": "guided_absolutegrad", "p": 0.6, **common}
    methods["gag_norm"] = {"name": "guided_absolutegrad", "p": 0.6, "guide_normalize": True, **common}
    methods["smooth_taylor"] = {"name": "smooth_taylor", "sigma_mode": "relative", **common}
    # batch_size 5 splits images across batches; float64 model and inputs: the streaming sums must agree
    got = A.attribute_many(
        model.double(), x.double(), t, methods, seeds=seeds, opts=ExecOptions(batch_size=5)
    )
    for k, r in ref.items():
        torch.testing.assert_close(got[k], r, rtol=1e-9, atol=1e-12, msg=k)


def test_variance_float32_is_stable_with_large_mean():
    """Σg and Σg² in float64 keep VarGrad accurate when the gradients' mean dwarfs their spread."""
    red = R.Variance()
    n = 64
    g = 1e4 + torch.randn(n, 1, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    state = red.init((1, 1, 2, 2), g.float())
    for i in range(0, n, 7):
        b = S.SampleBatch(
            g[i : i + 7].float(),
            torch.zeros(len(g[i : i + 7]), dtype=torch.long),
            torch.full((len(g[i : i + 7]),), 1 / n),
        )
        red.update(state, g[i : i + 7].float(), b)
    ref = g.float().double().var(0, unbiased=True)
    torch.testing.assert_close(
        red.finalize(state, torch.zeros(1, 1, 2, 2)).double(), ref[None], rtol=1e-4, atol=1e-4
    )


def test_ig_smoothgrad_matches_explicit_loop():
    model = SmallCNN(width=4).double()
    x = images(2, size=12).double()
    t = torch.tensor([1, 3])
    seeds = torch.tensor([7, 8])
    k, m = 3, 4
    got = A.attribute(
        model,
        x,
        t,
        "ig_smoothgrad",
        n_samples=k,
        n_steps=m,
        sigma=0.1,
        seeds=seeds,
        opts=ExecOptions(batch_size=5),
    )
    plain = A.attribute(
        model,
        x,
        t,
        "ig_smoothgrad",
        n_samples=k,
        n_steps=m,
        sigma=0.1,
        seeds=seeds,
        magnitude=False,
        opts=ExecOptions(batch_size=64),
    )
    gauss = S.Gaussian(k, 0.1)
    base = P.resolve_baseline("black", x, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    sq, mean = torch.zeros_like(x), torch.zeros_like(x)
    for j in range(2):
        eps = oracle.gaussian_noise(
            gauss, x, j, k, torch.Generator().manual_seed(int(seeds[j])), gauss.scales(x)[j]
        )
        for c in range(k):
            ig = A.attribute(
                model,
                x[j : j + 1] + eps[c : c + 1],
                t[j : j + 1],
                "integrated_gradients",
                n_steps=m,
                baseline=base[j : j + 1],
            )
            sq[j] += ig[0] ** 2 / k
            mean[j] += ig[0] / k
    torch.testing.assert_close(got, sq, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(plain, mean, rtol=1e-9, atol=1e-12)


# ------------------------------------------------------------------------------------------------- sharing


def test_one_pass_per_sampler():
    """SG, VarGrad, AbsoluteGrad, GAG share one Gaussian batch (n 20); SG² and SG×Input another (n 25);
    vanilla and GxI one identity pass; IG its path: kernel evaluations = Σ over distinct samplers."""
    net = Counting(SmallCNN(width=4))
    x = images(2, size=12)
    t = torch.tensor([0, 1])
    names = [
        "smoothgrad",
        "vargrad",
        "absolutegrad",
        "guided_absolutegrad",
        "smoothgrad_sq",
        "smoothgrad_x_input",
        "vanilla_gradient",
        "gradient_x_input",
        "integrated_gradients",
    ]
    many = A.attribute_many(net, x, t, names, seeds=torch.tensor([1, 2]), opts=ExecOptions(batch_size=50))
    assert net.rows == 2 * (20 + 25 + 1 + 25)
    assert samples_per_image({n: A.make(n) for n in names}) == 20 + 25 + 1 + 25
    assert net.calls == 1 + 1 + 1 + 1  # each sampler's 2·n rows fit in one batch of 50
    for n in names:  # sharing changes nothing: each equals the method run alone (same samples, same order)
        alone = A.attribute(net, x, t, n, seeds=torch.tensor([1, 2]), opts=ExecOptions(batch_size=50))
        torch.testing.assert_close(many[n], alone, rtol=0, atol=0)


def test_equal_methods_run_once():
    net = Counting(LinearImage())
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    r = A.attribute_many(
        net, x, t, {"a": {"name": "smoothgrad", "n_samples": 4}, "b": {"name": "smoothgrad", "n_samples": 4}}
    )
    assert net.rows == 8
    torch.testing.assert_close(r["a"], r["b"], rtol=0, atol=0)


def test_batch_size_bounds_kernel_batches():
    net = Counting(LinearImage())
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([0, 1, 2])
    A.attribute(net, x, t, "smoothgrad", n_samples=40, opts=ExecOptions(batch_size=16))
    assert net.rows == 120 and net.calls == 8  # ceil(120 / 16)


# ------------------------------------------------------------------------------------ batching and seeds


@pytest.mark.parametrize(
    "method,params",
    [
        ("smoothgrad", {"n_samples": 5}),
        ("vargrad", {"n_samples": 4}),
        ("ig_smoothgrad", {"n_samples": 2, "n_steps": 3}),
        ("feature_suppression", {"n_samples": 6}),
        ("integrated_gradients", {"n_steps": 7}),
    ],
)
def test_batch_size_and_batch_composition_do_not_change_results(method, params):
    model = SmallCNN(width=4)
    x = images(3, size=12)
    t = torch.tensor([0, 1, 2])
    seeds = torch.tensor([5, 6, 7])
    ref = A.attribute(model, x, t, method, seeds=seeds, opts=ExecOptions(batch_size=64), **params)
    for bs in (1, 4):
        got = A.attribute(model, x, t, method, seeds=seeds, opts=ExecOptions(batch_size=bs), **params)
        torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-6)
    for j in range(3):
        one = A.attribute(model, x[j : j + 1], t[j : j + 1], method, seeds=seeds[j : j + 1], **params)
        torch.testing.assert_close(one, ref[j : j + 1], rtol=1e-4, atol=1e-6)


def test_seeds_and_generators():
    model = LinearImage()
    quad = Quadratic(shape=(3, 8, 8), classes=4)
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([0, 1])
    a = A.attribute(quad, x, t, "smoothgrad", n_samples=3, generator=torch.Generator().manual_seed(1))
    b = A.attribute(quad, x, t, "smoothgrad", n_samples=3, generator=torch.Generator().manual_seed(1))
    c = A.attribute(quad, x, t, "smoothgrad", n_samples=3, generator=torch.Generator().manual_seed(2))
    d1 = A.attribute(quad, x, t, "smoothgrad", n_samples=3)
    d2 = A.attribute(quad, x, t, "smoothgrad", n_samples=3)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    torch.testing.assert_close(d1, d2, rtol=0, atol=0)
    assert not torch.allclose(a, c)
    # with only a generator, image j's seed is the j-th draw: the same as passing those seeds explicitly
    seeds = resolve_seeds(2, torch.Generator().manual_seed(1))
    torch.testing.assert_close(
        A.attribute(quad, x, t, "smoothgrad", n_samples=3, seeds=seeds), a, rtol=0, atol=0
    )
    # deterministic methods ignore seeds
    torch.testing.assert_close(
        A.attribute(model, x, t, "vanilla_gradient", seeds=torch.tensor([1, 2])),
        A.attribute(model, x, t, "vanilla_gradient"),
        rtol=0,
        atol=0,
    )


# ------------------------------------------------------------------------------------------- interface


def test_unknown_method_suggests_close_name():
    with pytest.raises(BamkitError, match="did you mean 'integrated_gradients'"):
        A.attribute(LinearImage(), torch.randn(1, 3, 8, 8), torch.tensor([0]), "integrated_gradient")


@pytest.mark.parametrize("params", [{"n_sample": 3}, {"n_samples": 0}, {"sigma": -1.0}, {"noise_space": "x"}])
def test_bad_parameters_fail_before_running(params):
    net = Counting(LinearImage())
    with pytest.raises(ConfigError):
        A.attribute(net, torch.randn(1, 3, 8, 8), torch.tensor([0]), "smoothgrad", **params)
    assert net.calls == 0


def test_bad_inputs_and_seeds():
    m = LinearImage()
    with pytest.raises(ConfigError, match="inputs must be a float tensor"):
        A.attribute(m, torch.zeros(3, 8, 8), torch.tensor([0]), "vanilla_gradient")
    with pytest.raises(ConfigError, match="target must be"):
        A.attribute(m, torch.zeros(2, 3, 8, 8), torch.tensor([0]), "vanilla_gradient")
    with pytest.raises(ConfigError, match="seeds must be"):
        A.attribute(m, torch.zeros(2, 3, 8, 8), torch.tensor([0, 1]), "smoothgrad", seeds=torch.tensor([1]))
    with pytest.raises(ConfigError, match="IG rule"):
        A.attribute(m, torch.zeros(1, 3, 8, 8), torch.tensor([0]), "integrated_gradients", rule="simpson")


def test_callable_and_module_string_methods(linear, xt):
    x, t = xt

    def grad_fn(model, inputs, target):
        inputs = inputs.requires_grad_(True)
        (g,) = torch.autograd.grad(model(inputs).gather(1, target[:, None]).sum(), inputs)
        return g

    torch.testing.assert_close(A.attribute(linear, x, t, grad_fn), w_rows(linear, t))
    r = A.attribute_many(linear, x, t, [grad_fn, "bamkit.attribution.gradients:VanillaGradient"])
    torch.testing.assert_close(r["grad_fn"], w_rows(linear, t))
    torch.testing.assert_close(r["bamkit.attribution.gradients:VanillaGradient"], w_rows(linear, t))


def test_run_methods_under_no_grad(linear, xt):
    x, t = xt
    with torch.no_grad():
        g = run_methods(linear, x, t, {"g": A.make("vanilla_gradient")})["g"]
    torch.testing.assert_close(g, w_rows(linear, t))


def test_adaptive_smooth_taylor_picks_the_best_sigma(linear, xt):
    """With an injected objective that prefers σ near 0.7, adaptive noising returns the map of the best σ
    it visited (checked by recomputing that σ's map with the same seed)."""
    x, t = xt
    visited = []

    def objective(model, xi, ti, heat):
        # heat-map of a linear model is −σ·mean(ε)⊙w summed: its scale identifies σ up to the fixed noise
        visited.append(heat.abs().sum().item())
        return abs(heat.abs().sum().item() - target_scale)

    seeds = torch.tensor([21])
    ref = A.attribute(linear, x[:1], t[:1], "smooth_taylor", n_samples=4, sigma=0.7, seeds=seeds)
    target_scale = ref.sum(1).abs().sum().item()
    got = A.attribute(
        linear,
        x[:1],
        t[:1],
        "smooth_taylor",
        n_samples=4,
        adaptive=True,
        objective=objective,
        seeds=seeds,
        max_iter=30,
    )
    assert len(visited) > 3
    unit = A.attribute(linear, x[:1], t[:1], "smooth_taylor", n_samples=4, sigma=1.0, seeds=seeds)
    sigma_best = got.abs().sum() / unit.abs().sum()  # linear in σ for a linear model
    assert abs(float(sigma_best) - 0.7) < 0.1


def test_methods_command_lists_every_method(capsys):
    import argparse

    from bamkit.commands import methods as cmd

    p = argparse.ArgumentParser()
    cmd.add_arguments(p)
    assert cmd.run(p.parse_args([])) == 0
    out = capsys.readouterr().out
    for n in A.names():
        assert n in out
    assert "n_samples=25" in out and "Smilkov" in out


@pytest.mark.slow
def test_compiled_path_matches_eager():
    """torch.compile of forward + input gradient: same maps, one cached compiled model, padded last batch."""
    from bamkit.attribution import forward

    forward.clear_compile_cache()
    model = SmallCNN(width=4)
    x = images(3, size=12)
    t = torch.tensor([0, 1, 2])
    seeds = torch.tensor([1, 2, 3])
    opts = ExecOptions(compile=True, batch_size=8)  # 3·5 = 15 samples: the last batch of 7 is padded to 8
    for name in ("vanilla_gradient", "smoothgrad"):
        params = {"n_samples": 5} if name == "smoothgrad" else {}
        eager = A.attribute(model, x, t, name, seeds=seeds, **params)
        comp = A.attribute(model, x, t, name, seeds=seeds, opts=opts, **params)
        torch.testing.assert_close(comp, eager, rtol=1e-4, atol=1e-6)
    assert len(forward._COMPILED) == 1
    forward.clear_compile_cache()


def test_entry_point_plugin_is_registered(tmp_path, monkeypatch, linear, xt):
    """A package that declares ``[bamkit.attributions] plug_grad = plugmod:grad`` shows up in names() and runs."""
    from bamkit.attribution import adapters
    from bamkit.attribution.base import METHODS

    (tmp_path / "plugmod.py").write_text(
        "import torch\n"
        "def grad(model, inputs, target):\n"
        "    '''Plug-in gradient (test).'''\n"
        "    inputs.requires_grad_(True)\n"
        "    return torch.autograd.grad(model(inputs).gather(1, target[:, None]).sum(), inputs)[0]\n"
    )
    dist = tmp_path / "plugmod-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: plugmod\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[bamkit.attributions]\nplug_grad = plugmod:grad\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(adapters, "_loaded_entry_points", False)
    try:
        assert "plug_grad" in A.names()
        x, t = xt
        torch.testing.assert_close(A.attribute(linear, x, t, "plug_grad"), w_rows(linear, t))
        assert "Plug-in gradient" in A.get("plug_grad").paper
    finally:
        METHODS._items.pop("plug_grad", None)


# ------------------------------------------------------------------------------ samplers against their oracles
@pytest.mark.parametrize(
    "sampler",
    [
        S.Identity(),
        S.Gaussian(37, 0.2),
        S.Gaussian(5, 0.3, noise_space="pixel"),
        S.StraightPath(33, "black", "gausslegendre"),
        S.NoisyPath(3, 0.2, 11, "mean", "trapezoid"),
        S.BernoulliDrop(35, 0.6, "element", "mean"),
    ],
    ids=lambda s: type(s).__name__,
)
@pytest.mark.parametrize("batch_size", [1, 7, 64, 10_000])
def test_vectorised_batches_equal_the_one_image_at_a_time_oracle(sampler, batch_size):
    """The engine's batches (index arithmetic over global sample ranges) hold exactly the samples that the
    obvious per-image, per-DRAW_CHUNK construction gives (tests/sampler_oracles.py), whatever the batch size."""
    x = torch.randn(3, 3, 5, 6, generator=torch.Generator().manual_seed(0))
    seeds = torch.tensor([11, 12, 13])
    got = list(sampler.batches(x, image_generators(seeds, x.device), batch_size))
    want = list(oracle.parts(sampler, x, image_generators(seeds, x.device)))
    assert all(len(b) <= batch_size for b in got)
    for field in ("inputs", "image_index", "weight", "offset", "copy_index"):
        a = [getattr(b, field) for b in got]
        b = [getattr(p, field) for p in want]
        if b[0] is None:
            assert all(t is None for t in a)
            continue
        torch.testing.assert_close(torch.cat(a), torch.cat(b), rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "name", ["smoothgrad", "smoothgrad_sq", "vargrad", "guided_backprop_smoothgrad", "gradcam_smoothgrad"]
)
@pytest.mark.parametrize("bad", [2.5, True, "4", 0])
def test_noise_methods_share_one_validator(name, bad):
    """n_samples=2.5 was truncated by one family member and rejected by another; now every one says why."""
    with pytest.raises(ConfigError, match=f"{name}: n_samples must be an integer >= [12]"):
        A.make(name, n_samples=bad)


def test_declared_hyper_parameters_are_the_schema():
    """The constructor signature ``hyper_parameters`` generates is what validate_params and ``bamkit methods``
    read: the defaults of each method, in order, positional use included."""
    from bamkit.attribution.base import parameter_defaults
    from bamkit.attribution.gradients import SmoothGrad, SmoothGradSquared, VarGrad

    assert list(parameter_defaults(SmoothGradSquared)) == ["n_samples", "sigma", "noise_space", "mean", "std"]
    assert parameter_defaults(SmoothGradSquared)["n_samples"] == 25
    assert (
        parameter_defaults(SmoothGrad)["n_samples"] == 20
        and parameter_defaults(SmoothGrad)["magnitude"] is False
    )
    sg = SmoothGrad(7, 0.3)
    assert (sg.n_samples, sg.sigma, sg.mean) == (7, 0.3, (0.485, 0.456, 0.406))
    assert SmoothGradSquared().magnitude is True and "magnitude" not in SmoothGradSquared().params()
    with pytest.raises(
        ConfigError, match=r"vargrad: n_samples must be an integer >= 2 \(unbiased variance\)"
    ):
        VarGrad(n_samples=1)
    with pytest.raises(
        ConfigError, match="'smoothgrad_sq' has no parameter 'steps'; known: n_samples, sigma"
    ):
        A.make("smoothgrad_sq", steps=3)
    with pytest.raises(ConfigError, match="'smoothgrad_sq': got an unexpected keyword argument 'steps'"):
        SmoothGradSquared(steps=3)
