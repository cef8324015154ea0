"""One compilation per architecture (issue 14): the BAM models share one compiled step, the weights being its
inputs; counted with a backend that records every graph it is given. And the execution fast path: resolved to
bf16 + channels_last + compile on CUDA only, with the fidelity of off-fp32 maps recorded."""

from __future__ import annotations

import pytest
import torch

import bamkit.attribution as A
from bamkit.attribution import forward
from bamkit.attribution.base import ExecOptions
from bamkit.evaluate.suite import Execution
from bamkit.testing.models import images, tiny_resnet


@pytest.fixture
def counting_backend(monkeypatch):
    graphs = []

    def backend(gm, example_inputs):
        graphs.append(gm)
        return gm.forward

    monkeypatch.setattr(forward, "COMPILE_BACKEND", backend)
    forward.clear_compile_cache()
    torch._dynamo.reset()
    yield graphs
    forward.clear_compile_cache()
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
    assert e.decided_for("cpu") == {"precision": "fp32", "channels_last": False, "compile": False}
    assert e.decided_for("cuda", bf16=True) == {"precision": "bf16", "channels_last": True, "compile": True}
    assert e.decided_for(torch.device("cuda", 1), bf16=True)["precision"] == "bf16"
    # a GPU without fast bf16 keeps fp32 numbers but the NHWC, compiled path
    assert e.decided_for("cuda", bf16=False) == {"precision": "fp32", "channels_last": True, "compile": True}
    exact = Execution(precision="fp32", channels_last=False, compile=False)  # fp32 one setting away
    assert exact.decided_for("cuda", bf16=True) == {
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
    }


@pytest.mark.parametrize("gpu, bf16", [(False, False), (True, False), (True, True)])
def test_training_and_evaluation_decide_auto_by_one_rule(monkeypatch, gpu, bf16):
    """``precision: auto`` / ``channels_last: auto`` mean the same in training (Lightning's names) and in
    evaluation, on a CPU, a GPU without bf16 and a GPU with it (the capabilities faked, no GPU needed)."""
    from bamkit.devices import LIGHTNING_PRECISION
    from bamkit.train import runner
    from bamkit.train.config import TrainConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    device = "cuda" if gpu else "cpu"
    ev = Execution().decided_for(device)
    cfg = TrainConfig(name="f_o")
    assert (
        runner._precision(cfg)
        == LIGHTNING_PRECISION[ev["precision"]]
        == ("bf16-mixed" if bf16 else "32-true")
    )
    assert runner._channels_last(cfg) is ev["channels_last"] is gpu
