"""One compilation per architecture (issue 14): the BAM models share one compiled step, the weights being its
inputs; counted with a backend that records every graph it is given. And the execution fast path: resolved to
bf16 + channels_last + compile on CUDA only, with the fidelity of off-fp32 maps recorded."""

from __future__ import annotations

import pytest
import torch

import bamkit.attribution as A
from bamkit import devices
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
    fold = {"fold_bn": False}  # BatchNorm folding: asked for, never decided (the exact maps are worth more)
    assert e.decided_for("cpu", bf16=False) == {
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        **fold,
    }
    assert e.decided_for("cuda", bf16=True) == {
        "precision": "bf16",
        "channels_last": True,
        "compile": True,
        **fold,
    }
    assert e.decided_for(torch.device("cuda", 1), bf16=True)["precision"] == "bf16"
    # a GPU without fast bf16 keeps fp32 numbers but the NHWC, compiled path
    assert e.decided_for("cuda", bf16=False) == {
        "precision": "fp32",
        "channels_last": True,
        "compile": True,
        **fold,
    }
    # the exact path, one setting each away
    exact = Execution(precision="fp32", channels_last=False, compile=False)
    assert exact.decided_for("cuda", bf16=True) == {
        "precision": "fp32",
        "channels_last": False,
        "compile": False,
        "fold_bn": False,
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
    monkeypatch.setattr(devices, "cpu_flags", lambda: frozenset())  # whatever CPU runs the test: no AMX
    device = "cuda" if gpu else "cpu"
    ev = Execution().decided_for(device)
    cfg = TrainConfig(name="f_o")
    assert (
        runner._precision(cfg)
        == LIGHTNING_PRECISION[ev["precision"]]
        == ("bf16-mixed" if bf16 else "32-true")
    )
    assert runner._channels_last(cfg) is ev["channels_last"] is gpu


# /proc/cpuinfo lines of the CPU the demo is timed on (AMD EPYC, avx512_bf16 without AMX) and of an Intel Sapphire
# Rapids (AMX), trimmed to the flags that matter.
EPYC = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SPR = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"


@pytest.mark.parametrize(
    "cpuinfo, fast",
    [(SPR, True), (EPYC, False), ("processor\t: 0\nflags\t\t: fpu sse2 avx2\n", False), ("", False)],
)
def test_a_cpu_takes_bf16_only_with_amx_tiles(monkeypatch, cpuinfo, fast):
    """``precision: auto`` on a CPU: bf16 autocast where the CPU has AMX bf16 tiles, fp32 where it has none or only
    the avx512_bf16 vector instructions (measured slower than fp32); training and evaluation decide alike. The
    CPU is faked from its /proc/cpuinfo text, so no such CPU is needed."""
    from bamkit.devices import LIGHTNING_PRECISION
    from bamkit.train import runner
    from bamkit.train.config import TrainConfig

    flags = devices.cpu_flags(cpuinfo)
    assert devices.cpu_bf16_fast(flags) is fast
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(devices, "cpu_flags", lambda: flags)
    precision = "bf16" if fast else "fp32"
    assert Execution().decided_for("cpu")["precision"] == precision
    assert runner._precision(TrainConfig(name="f_o")) == LIGHTNING_PRECISION[precision]
    # channels_last and compile stay CUDA-only whatever the CPU
    assert Execution().decided_for("cpu")["channels_last"] is False
    assert Execution().decided_for("cpu")["compile"] is False


def test_cpu_flags_reads_the_first_processor_and_tolerates_no_cpuinfo(monkeypatch, tmp_path):
    two = SPR + "\nprocessor\t: 1\nflags\t\t: fpu\n"
    assert "amx_bf16" in devices.cpu_flags(two)  # the first processor's line
    monkeypatch.setattr(devices, "CPUINFO", str(tmp_path / "absent"))
    assert devices.cpu_flags() == frozenset()  # macOS, Windows: no file, no AMX claimed
