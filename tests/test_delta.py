"""IIR δ patches (BAM §4.4, App. A; docs/dataset.md#the-delta-patch): objective, batched optimiser, lossless storage, resume, CLI."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from bamkit.cli import main
from bamkit.data import h5 as bh5
from bamkit.data import h5_write as h5w
from bamkit.delta.craft import craft_file, verify_file
from bamkit.delta.optimize import delta_loss, model_input, optimize_batch, quantize
from bamkit.delta.options import DeltaOptions
from bamkit.delta.store import PATCH_SET, read_inputs
from bamkit.delta.verify import patch_figures
from bamkit.errors import ConfigError, DataError
from bamkit.models import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_classifier, network_kwargs
from bamkit.nets.small_cnn import SmallCNN
from bamkit.preprocess import Preprocess

SIZE = 16  # stored side
INPUT = 24  # model side: exercises the differentiable resize
STEPS = 25


def tiny_model(seed: int = 33, dtype: torch.dtype = torch.float32) -> nn.Module:
    """bamkit's demo network at width 4, made input-sensitive like a trained one.

    A freshly initialised BatchNorm (running mean 0, var 1) leaves the logits almost constant, so the running
    statistics are calibrated on synthetic images and the head is scaled so that ‖f(x)‖ ≈ 10–70, the scale of
    BAM's trained model (‖f(x)‖ = 31.9, App. A). With seed 33 the plain dog paste flips one of the 4 test images'
    classes, which gives the optimiser something to restore.
    """
    torch.manual_seed(seed)
    model = SmallCNN(10, width=4)
    scene, dog, _ = images(np.random.default_rng(99), 32)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(Preprocess(INPUT)(torch.from_numpy(np.concatenate([scene, dog]))))
        model.fc.weight.mul_(30.0)
    return model.to(dtype).eval()


def images(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scenes, dog composites (scene with a bright blob pasted in) and blob masks."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    scene = rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8)
    masks = np.zeros((n, SIZE, SIZE), bool)
    for i in range(n):
        cy, cx = rng.integers(5, SIZE - 5, 2)
        masks[i] = (yy - cy) ** 2 / 16 + (xx - cx) ** 2 / 9 <= 1
    dog = scene.copy()
    colour = rng.integers(100, 200, (n, 1, 1, 3))
    dog[masks] = np.broadcast_to(colour, scene.shape)[masks].astype(np.uint8)
    return scene, dog, masks


def write_dataset(
    path: Path, seed: int = 0, n_pairs: int = 12, rows: tuple[int, ...] = (7, 2, 9, 4, 11)
) -> Path:
    """A dataset file in the layout of docs/design.md: obj_scene composites and bamboo_forest scene-only rows of some pairs."""
    rng = np.random.default_rng(seed)
    scene, dog, masks = images(rng, n_pairs)
    boxes = np.tile(np.array([[2, 2, 14, 14]], np.int32), (n_pairs, 1))
    common = {
        "masks": masks,
        "boxes": boxes,
        "split": np.ones(n_pairs, np.uint8),
        "pair_index": np.arange(n_pairs, dtype=np.int32),
        "scene_label": np.zeros(n_pairs, np.int16),
    }
    r = np.asarray(rows)
    h = h5w.create_file(
        path, ["backpack", "bird", "dog"], [f"s{i}" for i in range(10)], SIZE, attrs={"seed": 0}
    )
    try:
        h5w.write_set(
            h, "obj_scene", {**common, "images": dog, "object_label": np.full(n_pairs, 2, np.int16)}
        )
        h5w.write_set(
            h,
            "bamboo_forest",
            {
                k: v[r]
                for k, v in {
                    **common,
                    "images": scene,
                    "object_label": np.full(n_pairs, -1, np.int16),
                }.items()
            },
        )
    finally:
        h.close()
    return path


def write_checkpoint(path: Path, model: nn.Module) -> Path:
    meta = {
        "name": "f_empty",
        "arch": "small_cnn",
        "arch_kwargs": network_kwargs(model),
        "class_names": [f"s{i}" for i in range(10)],
        "label_field": "scene_label",
        "train_set": "scene_only",
        "preprocess": Preprocess(INPUT).to_dict(),
        "config": {"model": {"width": 4}},
        "data_hash": "test",
    }
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "state_dict": model.state_dict(),
            "meta": meta,
        },
        path,
    )
    return path


@pytest.fixture
def batch():
    scene, dog, masks = images(np.random.default_rng(1), 4)
    return torch.from_numpy(scene), torch.from_numpy(dog), torch.from_numpy(masks)


@pytest.fixture
def files(tmp_path):
    return write_dataset(tmp_path / "bam.h5"), write_checkpoint(tmp_path / "f_empty.ckpt", tiny_model())


# --- the objective ---------------------------------------------------------------------------------------------


def test_model_input_matches_preprocess_on_stored_images(batch):
    """The differentiable twin gives the stored images' model inputs exactly (oracle: Preprocess itself)."""
    scene = batch[0]
    pp = Preprocess(INPUT)
    twin = model_input(scene.permute(0, 3, 1, 2).float(), pp)
    torch.testing.assert_close(twin, pp(scene), rtol=0, atol=1e-6)


def test_delta_loss_closed_form_on_linear_model():
    """L = ‖W(n(x+δ)) − W(n(x))‖ − η1‖δ‖ + η2·hinge + η3·Σ|δ outside|, computed by hand in numpy (float64)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).double()
    pp = Preprocess(4)
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64) * 255
    delta = (torch.rand(2, 3, 4, 4, dtype=torch.float64) - 0.5) * 200
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.float64)
    mask[:, :, 1:3, 1:3] = 1
    opts = DeltaOptions(eta1=0.03, eta2=0.2, eta3=0.05, projection="penalty")
    f0 = model(model_input(x, pp)).detach()
    loss, change, _ = delta_loss(model, pp, x, delta, mask, f0, opts)

    w = model[1].weight.detach().numpy()
    mean = np.array(pp.mean).reshape(1, 3, 1, 1)
    std = np.array(pp.std).reshape(1, 3, 1, 1)
    xn, dn, mn = x.numpy(), delta.numpy(), mask.numpy()
    # A linear model: Δf = W · (δ / 255 / σ), independent of x.
    df = ((dn / 255.0 / std).reshape(2, -1)) @ w.T
    p = xn + dn
    expect = (
        np.linalg.norm(df, axis=1)
        - 0.03 * np.linalg.norm(dn.reshape(2, -1), axis=1)
        + 0.2 * (np.maximum(p - 255, 0) + np.maximum(-p, 0)).reshape(2, -1).sum(1)
        + 0.05 * np.abs(dn * (1 - mn)).reshape(2, -1).sum(1)
    )
    assert np.allclose(change.detach().numpy(), np.linalg.norm(df, axis=1), rtol=1e-9)
    assert np.allclose(loss.detach().numpy(), expect, rtol=1e-9)
    assert np.allclose(mean.ravel(), pp.mean)  # the normalisation the closed form assumes cancels the mean


def test_options_are_validated():
    with pytest.raises(ConfigError, match="optimizer"):
        DeltaOptions(optimizer="lbfgs")
    with pytest.raises(ConfigError, match="unknown key 'stepz'; did you mean 'steps'"):
        DeltaOptions.from_kwargs(stepz=3)
    assert DeltaOptions().step_size == 500.0  # the paper's λ in pixel units
    assert DeltaOptions(optimizer="adam").step_size == 2.0


# --- the optimiser ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_loss_falls_and_predictions_are_kept(batch, optimizer):
    scene, dog, masks = batch
    model, pp = tiny_model(), Preprocess(INPUT)
    r = optimize_batch(model, pp, scene, dog, masks, DeltaOptions(steps=STEPS, optimizer=optimizer))
    assert r.history.shape == (STEPS, 4)
    assert torch.all(r.loss < r.history[0])  # the objective falls for every image
    with torch.no_grad():
        f0 = model(pp(scene))
        f_paste = model(pp(dog))  # x + δ₀: the clean paste
        f_stored = model(pp(r.patched))
    paste_change = (f_paste - f0).norm(dim=1)
    stored_change = (f_stored - f0).norm(dim=1)
    assert torch.all(
        stored_change < 0.8 * paste_change
    )  # the logit change shrinks well below the plain paste's
    assert not torch.equal(f_paste.argmax(1), f0.argmax(1))  # the paste alone changes some predictions …
    assert torch.equal(f_stored.argmax(1), f0.argmax(1))  # … the optimised patch keeps every one


def test_hard_projection_keeps_delta_exactly_inside_the_mask(batch):
    scene, dog, masks = batch
    r = optimize_batch(
        tiny_model(), Preprocess(INPUT), scene, dog, masks, DeltaOptions(steps=10, optimizer="adam", lr=20.0)
    )
    outside = ~masks
    assert torch.all(r.delta.permute(0, 2, 3, 1)[outside] == 0)
    assert torch.equal(r.patched[outside], scene[outside])  # stored bytes untouched outside the dog
    assert torch.any(r.patched[masks] != dog[masks])  # and the optimiser did move the dog pixels


def test_penalty_mode_lets_delta_leak_and_verification_flags_it(batch):
    """The paper's soft η3 term does not pin δ to the mask; the leak is measured on the stored bytes and flagged."""
    scene, dog, masks = batch
    model, pp = tiny_model(), Preprocess(INPUT)
    r = optimize_batch(model, pp, scene, dog, masks, DeltaOptions(steps=5, projection="penalty"))
    fig = patch_figures(model, pp, scene.numpy(), r.patched.numpy(), masks.numpy(), threshold=10.0)
    leak = (r.patched.int() - scene.int()).abs().masked_fill(masks[..., None], 0).flatten(1).amax(1).numpy()
    assert leak.max() > 0
    assert np.array_equal(fig["outside_max"], leak)
    assert np.array_equal(fig["passed"], fig["functionally_similar"] & (leak == 0))


def test_stored_values_are_clipped_never_wrapped():
    """Plant pixels where x + δ leaves [0, 255]: they must store as 0/255 (BAM's cast would wrap to 255/0)."""
    x = torch.tensor([[[[250.0, 5.0, 100.0, 0.0]]]]).repeat(1, 3, 1, 1)
    d = torch.tensor([[[[20.0, -30.0, 0.4, -0.4]]]]).repeat(1, 3, 1, 1)
    patched, clipped = quantize(x, d)
    assert patched[0, 0, :, 0].tolist() == [255, 0, 100, 0]
    assert clipped[0, 0].tolist() == [True, True, False, False]
    wrapped = (x + d).round().to(torch.int64) % 256  # what a plain uint8 cast does
    assert wrapped[0, 0, 0, :2].tolist() == [14, 231]


def test_out_of_range_paste_is_clipped_end_to_end(batch):
    scene, dog, masks = batch
    dog = dog.clone()
    dog[masks] = 255
    opts = DeltaOptions(steps=3, init_noise=80.0, seed=3)
    r = optimize_batch(tiny_model(), Preprocess(INPUT), scene, dog, masks, opts)
    raw = (scene.permute(0, 3, 1, 2).double() + r.delta.double()).round()
    assert (raw > 255).any()  # the planted case really leaves the range
    expect = raw.clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    assert torch.equal(r.patched, expect)
    assert torch.equal(r.clipped, ((raw < 0) | (raw > 255)).any(1))


def test_bam_code_init_adds_the_mean_subtracted_dog_to_the_scene(batch):
    """``init="bam_code"`` (BAM's script): with no steps, x + δ₀ = x + x_dog − (123.68, 116.78, 103.94) inside
    the mask (hand-computed here from the inputs), x outside; ``paste`` gives the clean composite instead."""
    scene, dog, masks = batch
    opts = DeltaOptions(steps=0, init="bam_code")
    r = optimize_batch(tiny_model(), Preprocess(INPUT), scene, dog, masks, opts)
    mean = torch.tensor([123.68, 116.78, 103.94], dtype=torch.float64)
    blend = scene.double() + torch.where(masks[..., None], dog.double() - mean, torch.zeros(()))
    assert torch.equal(r.patched, blend.round().clamp(0, 255).to(torch.uint8))
    paste = optimize_batch(tiny_model(), Preprocess(INPUT), scene, dog, masks, DeltaOptions(steps=0))
    assert torch.equal(paste.patched, torch.where(masks[..., None], dog, scene))
    with pytest.raises(ConfigError, match="init"):
        DeltaOptions(init="clean")


def test_batched_equals_one_by_one(batch):
    scene, dog, masks = batch
    model, pp = tiny_model(dtype=torch.float64), Preprocess(INPUT)
    opts = DeltaOptions(steps=STEPS, init_noise=5.0, seed=7)
    together = optimize_batch(model, pp, scene, dog, masks, opts, indices=[10, 11, 12, 13])
    for i in range(4):
        alone = optimize_batch(
            model, pp, scene[i : i + 1], dog[i : i + 1], masks[i : i + 1], opts, indices=[10 + i]
        )
        assert torch.equal(alone.patched[0], together.patched[i])
        torch.testing.assert_close(alone.delta[0], together.delta[i], rtol=0, atol=1e-6)


def test_early_stop_freezes_images(batch):
    """With a huge ratio tolerance the stopping rule reduces to "prediction kept": images whose class the paste keeps
    take no step and stay the clean paste; the others stop at the step that restores their class, with exactly the
    δ that an unstopped run has after that many steps."""
    scene, dog, masks = batch
    model, pp = tiny_model(), Preprocess(INPUT)
    with torch.no_grad():
        pred = model(pp(scene)).argmax(1)
        kept = model(pp(dog)).argmax(1) == pred
    assert kept.any() and not kept.all()
    r = optimize_batch(model, pp, scene, dog, masks, DeltaOptions(steps=50, tol=1e6))
    assert torch.all(r.steps_run[kept] == 0) and torch.equal(r.patched[kept], dog[kept])
    assert torch.all(r.steps_run[~kept] > 0) and torch.all(r.steps_run < 50)
    with torch.no_grad():
        assert torch.equal(model(pp(r.patched)).argmax(1), pred)
    i = int(r.steps_run.argmax())
    plain = optimize_batch(
        model, pp, scene[i : i + 1], dog[i : i + 1], masks[i : i + 1], DeltaOptions(steps=int(r.steps_run[i]))
    )
    torch.testing.assert_close(plain.delta[0], r.delta[i], rtol=0, atol=1e-3)  # float32: batch of 1 vs 4


def test_keep_best_returns_the_iterate_with_the_smallest_logit_change(batch):
    """Oracle: the best of the runs stopped after k = 0 … S steps (plain GD at λ = 500 oscillates)."""
    scene, dog, masks = batch
    model, pp = tiny_model(), Preprocess(INPUT)
    s = 6
    best = optimize_batch(model, pp, scene, dog, masks, DeltaOptions(steps=s, keep_best=True))
    runs = [optimize_batch(model, pp, scene, dog, masks, DeltaOptions(steps=k)) for k in range(s + 1)]
    changes = torch.stack([r.logit_change for r in runs])
    torch.testing.assert_close(best.logit_change, changes.min(0).values)
    for i, k in enumerate(changes.argmin(0).tolist()):
        torch.testing.assert_close(best.delta[i], runs[k].delta[i])


# --- the stage on files ----------------------------------------------------------------------------------------


def _read(path: Path, name: str, field: str) -> np.ndarray:
    with bh5.BamFile(path) as bf:
        return bf[name].read(field)


def test_inputs_pair_scene_rows_with_their_composites(files):
    data, _ = files
    inp = read_inputs(data)
    pairs = _read(data, "bamboo_forest", "pair_index")
    assert pairs.tolist() == [7, 2, 9, 4, 11]
    assert np.array_equal(inp.dog, _read(data, "obj_scene", "images")[pairs])


def test_craft_file_stores_a_set_that_verifies(files, tmp_path):
    data, ckpt = files
    out = tmp_path / "delta.h5"
    s = craft_file(data, ckpt, out=out, steps=STEPS, batch_size=2)
    assert s["complete"] and s["n_images"] == 5 and not s["skipped"]
    with bh5.BamFile(out) as bf:
        assert bf.has(PATCH_SET) and bf.has("bamboo_forest")
        view = bf[PATCH_SET]
        patched = view.read("images")
        fig = {
            k: view.read(k)
            for k in (
                "logit_change",
                "logit_norm",
                "ratio",
                "same_prediction",
                "outside_max",
                "functionally_similar",
                "passed",
                "steps_run",
                "delta_norm",
            )
        }
        assert view.attrs["model_checkpoint_hash"] == load_classifier(ckpt)[1].checkpoint_hash
        assert view.attrs["options"]["steps"] == STEPS and view.attrs["seed"] == 0
        for k in ("masks", "boxes", "pair_index", "scene_label", "split"):
            assert np.array_equal(view.read(k), _read(data, "bamboo_forest", k))
    # Independent recomputation of the figures from the stored bytes.
    model, meta = load_classifier(ckpt)
    scene = _read(data, "bamboo_forest", "images")
    with torch.no_grad():
        f0 = model(meta.preprocess(torch.from_numpy(scene))).double()
        f1 = model(meta.preprocess(torch.from_numpy(patched))).double()
    change = (f1 - f0).norm(dim=1).numpy()
    assert np.allclose(fig["logit_change"], change, rtol=1e-5, atol=1e-6)
    assert np.allclose(fig["logit_norm"], f0.norm(dim=1).numpy(), rtol=1e-5)
    assert np.allclose(fig["ratio"], change / f0.norm(dim=1).numpy(), rtol=1e-5, atol=1e-7)
    assert np.array_equal(fig["same_prediction"], (f0.argmax(1) == f1.argmax(1)).numpy())
    d = patched.astype(float) - scene
    assert np.allclose(fig["delta_norm"], np.sqrt((d**2).reshape(5, -1).sum(1)), rtol=1e-5)
    masks = _read(data, "bamboo_forest", "masks")
    assert np.all(d[~masks] == 0) and np.all(fig["outside_max"] == 0)
    assert np.all(fig["steps_run"] == STEPS)
    passed = fig["functionally_similar"] & (fig["outside_max"] == 0)
    assert np.array_equal(fig["passed"], passed) and s["n_failed"] == int((~passed).sum())
    assert np.array_equal(fig["functionally_similar"], fig["same_prediction"] & (fig["ratio"] < 0.1))
    assert verify_file(out, ckpt)["ok"]
    # A second call finds the set current and skips the work.
    assert craft_file(data, ckpt, out=out, steps=STEPS, batch_size=2)["skipped"]


def test_failures_are_kept_and_flagged(files, tmp_path):
    data, ckpt = files
    s = craft_file(data, ckpt, out=tmp_path / "d.h5", steps=2, threshold=1e-12)
    assert s["n_failed"] == 5 and s["failed_rows"] == [0, 1, 2, 3, 4]
    assert _read(tmp_path / "d.h5", PATCH_SET, "images").shape[0] == 5
    assert not _read(tmp_path / "d.h5", PATCH_SET, "passed").any()


def test_resume_after_interruption_gives_identical_bytes(files, tmp_path):
    data, ckpt = files
    opts = {"steps": STEPS, "batch_size": 2, "init_noise": 3.0, "seed": 5}
    craft_file(data, ckpt, out=tmp_path / "once.h5", **opts)
    part = tmp_path / "resumed.h5"
    first = craft_file(data, ckpt, out=part, max_batches=1, **opts)  # "killed" after one batch
    assert not first["complete"] and first["batches_done"] == 1 and not part.exists()
    second = craft_file(data, ckpt, out=part, max_batches=1, **opts)
    assert not second["complete"] and second["batches_done"] == 2
    craft_file(data, ckpt, out=part, **opts)
    for k in ("images", "logit_change", "steps_run", "clipped"):
        assert np.array_equal(_read(part, PATCH_SET, k), _read(tmp_path / "once.h5", PATCH_SET, k)), k
    assert not (tmp_path / "resumed.h5.delta-parts").exists()


def test_in_place_leaves_the_other_sets_untouched(files):
    data, ckpt = files
    before = hashlib.sha256(_read(data, "obj_scene", "images").tobytes()).hexdigest()
    craft_file(data, ckpt, steps=3)
    with bh5.BamFile(data) as bf:
        assert bf.sets() == ["obj_scene", "bamboo_forest", PATCH_SET]
    assert hashlib.sha256(_read(data, "obj_scene", "images").tobytes()).hexdigest() == before


def test_missing_sets_are_one_line_errors(tmp_path):
    path = tmp_path / "bam.h5"
    h = h5w.create_file(path, ["dog"], ["s0"], SIZE)
    h.close()
    with pytest.raises(DataError, match="no 'bamboo_forest' set"):
        read_inputs(path)


def test_cli_crafts_and_verifies(files, tmp_path, capsys):
    data, ckpt = files
    out = tmp_path / "cli.h5"
    assert (
        main(
            [
                "delta",
                "--data",
                str(data),
                "--model",
                str(ckpt),
                "--out",
                str(out),
                "--set",
                "steps=3",
                "--set",
                "batch_size=5",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "functionally similar" in text and "median ‖f(x+δ) − f(x)‖₂" in text
    assert main(["delta", "--data", str(data), "--model", str(ckpt), "--out", str(out), "--verify-only"]) == 0
    bad = ["delta", "--data", str(data), "--model", str(ckpt), "--set", "optimizer=adam", "--set", "lr=-1"]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert (
        "lr=-1.0 is invalid" in err and "--set optimizer=adam --set lr=-1" in err and "\n" not in err.strip()
    )
    assert main(["delta", "--data", str(data), "--model", str(ckpt), "--set", "optimizer=lbfgs"]) == 2
    assert "'lbfgs' is not one of 'sgd', 'adam'" in capsys.readouterr().err


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_cuda_agree(batch):
    scene, dog, masks = batch
    model, pp = tiny_model(dtype=torch.float64), Preprocess(INPUT)
    opts = DeltaOptions(steps=STEPS, init_noise=5.0)
    cpu = optimize_batch(model, pp, scene, dog, masks, opts)
    gpu = optimize_batch(model.cuda(), pp, scene.cuda(), dog.cuda(), masks.cuda(), opts)
    assert gpu.patched.device.type == "cuda"
    diff = (cpu.patched.int() - gpu.patched.cpu().int()).abs()
    assert diff.max() <= 1 and (diff > 0).float().mean() < 1e-3  # rounding ties may fall differently
