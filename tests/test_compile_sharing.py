"""One compilation per architecture (issue 14): the BAM models share one compiled step, the weights being its
inputs; counted with a backend that records every graph it is given. And the execution fast path: resolved to
bf16 + channels_last + compile on CUDA only, with the fidelity of off-fp32 maps recorded."""

from __future__ import annotations

import pytest
import torch

import bamkit.attribution as A
from bamkit.attribution import engine
from bamkit.attribution.base import ExecOptions
from bamkit.evaluate.suite import Execution
from bamkit.testing.models import images, tiny_resnet


@pytest.fixture
def counting_backend(monkeypatch):
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    monkeypatch.setattr(engine, "COMPILE_BACKEND", backend)
    engine.clear_compile_cache()
    torch._dynamo.reset()
    yield graphs
    engine.clear_compile_cache()
    torch._dynamo.reset()


def test_one_compiled_step_serves_every_model_of_an_architecture(counting_backend):
    x = images(4, size=32, seed=1)
    target = torch.tensor([0, 1, 2, 3])
    opts = ExecOptions(compile=True, batch_size=4)
    models = [tiny_resnet(seed=s).eval() for s in (0, 1, 2)]
    out = {}
    for i, m in enumerate(models):
        out[i] = A.attribute_many(m, x, target, ["vanilla_gradient"], seeds=torch.arange(4), opts=opts)
        if i == 0:
            after_first = len(counting_backend)
    assert after_first >= 1
    assert len(counting_backend) == after_first  # models 2 and 3 reuse model 1's graphs
    for i, m in enumerate(models):  # and each gets its own weights' gradients, as in eager mode
        eager = A.attribute_many(m, x, target, ["vanilla_gradient"], seeds=torch.arange(4))
        torch.testing.assert_close(
            out[i]["vanilla_gradient"], eager["vanilla_gradient"], rtol=1e-4, atol=1e-6
        )
    assert not torch.allclose(out[0]["vanilla_gradient"], out[1]["vanilla_gradient"])


def test_another_architecture_compiles_its_own_step(counting_backend):
    x = images(2, size=32, seed=1)
    opts = ExecOptions(compile=True, batch_size=2)
    A.attribute_many(tiny_resnet(width=8).eval(), x, 0, ["vanilla_gradient"], opts=opts)
    n = len(counting_backend)
    A.attribute_many(tiny_resnet(width=4).eval(), x, 0, ["vanilla_gradient"], opts=opts)
    assert len(counting_backend) > n


def test_the_fast_path_is_the_default_on_cuda_only():
    e = Execution()
    assert e.resolved("cpu") == {"precision": "fp32", "channels_last": False, "compile": False}
    assert e.resolved("cuda") == {"precision": "bf16", "channels_last": True, "compile": True}
    assert e.resolved(torch.device("cuda", 1))["precision"] == "bf16"
    exact = Execution(precision="fp32", channels_last=False, compile=False)  # fp32 one setting away
    assert exact.resolved("cuda") == {"precision": "fp32", "channels_last": False, "compile": False}
