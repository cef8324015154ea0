"""Every bad input and fault a researcher meets, through the real command line (``bamkit.cli.main``, the entry
point of the ``bamkit`` script) on real files: each case asserts the exit code, that no traceback is printed,
and that the one-line message names the file or value at fault. Nothing is mocked: files are written
truncated, corrupt, empty or foreign; folders are missing, wrong or read-only; the disk is a full tmpfs."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from bamkit.classes import BAM_OBJECTS, BAM_SCENES
from bamkit.cli import main
from bamkit.paths import shipped

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tiny synthetic sources, their dataset, smoke-trained f_o/f_s/f_empty, δ patches and a results folder."""
    w = tmp_path_factory.mktemp("world")
    assert main(["sources", "synth", "--out", str(w / "src"), "--scale", "tiny"]) == 0
    recipe = yaml.safe_load(shipped("data_recipes/tiny.yaml").read_text())
    recipe["sources"]["root"] = str(w / "src")
    (w / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    assert main(["build", str(w / "recipe.yaml"), "--out", str(w / "data.h5"), "--workers", "1"]) == 0
    smoke = ["--set", "smoke=true", "--set", "model.arch=small_cnn", "--set", "model.weights=none",
             "--set", "model.input_size=32", "--set", "model.width=4", "--set", "trainer.accelerator=cpu"]  # fmt: skip
    for role in ("f_o", "f_s", "f_empty"):
        cfg = str(shipped(f"train/{role}.yaml"))
        assert main(["train", cfg, "--data", str(w / "data.h5"), "--out", str(w / "models"), *smoke]) == 0
    delta = ["delta", "--data", str(w / "data.h5"), "--model", str(w / "models" / "f_empty.ckpt")]
    assert main([*delta, "--out", str(w / "delta.h5"), "--set", "steps=3"]) == 0
    suite = {
        "name": "bad",
        "methods": [{"name": "vanilla_gradient", "label": "VG"}],
        "metrics": ["mcs", "iir"],
        "scenarios": {"mcs": {"max_images": 8}},
        "samples": {"n_trials": 2, "trial_size": 4, "n_boot": 50},
    }
    (w / "suite.yaml").write_text(yaml.safe_dump(suite))
    ev = ["evaluate", str(w / "suite.yaml"), "--data", str(w / "data.h5"), "--models", str(w / "models")]
    assert main([*ev, "--patch-data", str(w / "delta.h5"), "--out", str(w / "results")]) == 0
    return w


@dataclass
class Case:
    """argv (``{w}`` = the world folder, ``{t}`` = this case's own folder), what a setup writes first, the
    expected exit code and the words the message must contain (the file or value at fault)."""

    id: str
    argv: list[str]
    code: int
    says: list[str]
    setup: Callable[[Path, Path], None] | None = None


def _write(rel: str, text: str | bytes) -> Callable[[Path, Path], None]:
    def setup(w: Path, t: Path) -> None:
        p = t / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(text) if isinstance(text, bytes) else p.write_text(text)

    return setup


def _recipe(**changes) -> Callable[[Path, Path], None]:
    def setup(w: Path, t: Path) -> None:
        r = yaml.safe_load((w / "recipe.yaml").read_text())
        for k, v in changes.items():
            node = r
            *parents, leaf = k.split(".")
            for part in parents:
                node = node[part]
            if v is _DROP:
                node.pop(leaf)
            else:
                node[leaf] = v.format(w=w, t=t) if isinstance(v, str) else v
        (t / "recipe.yaml").write_text(yaml.safe_dump(r))

    return setup


_DROP = object()


def _copy(src: str, dest: str, then: Callable[[Path], None] | None = None) -> Callable[[Path, Path], None]:
    def setup(w: Path, t: Path) -> None:
        s, d = w / src, t / dest
        if s.is_dir():
            shutil.copytree(s, d)
        else:
            shutil.copy2(s, d)
        if then is not None:
            then(d)

    return setup


def _truncate(p: Path) -> None:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])


def _corrupt_chunk(p: Path) -> None:
    """Overwrite the middle of every compressed chunk of obj_scene/masks with garbage (deflate then fails)."""
    with h5py.File(p, "r") as f:
        ds = f["obj_scene/masks"]
        assert ds.compression is not None
        chunks = [ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks())]
    with open(p, "r+b") as fh:
        for info in chunks:
            fh.seek(info.byte_offset + info.size // 4)
            fh.write(b"\xff\x00garbage" * max(1, info.size // 40))


def _one_pixel_masks(p: Path) -> None:
    """Rows 0-3 of obj_scene keep their labels and boxes but lose their object: a 1-pixel mask."""
    with h5py.File(p, "r+") as f:
        m = f["obj_scene/masks"]
        for r in range(4):
            one = np.zeros(m.shape[1:], bool)
            b = f["obj_scene/boxes"][r]
            one[b[0], b[1]] = True
            m[r] = one


def _models_without(role: str) -> Callable[[Path, Path], None]:
    def setup(w: Path, t: Path) -> None:
        shutil.copytree(w / "models", t / "models")
        for p in (t / "models").glob(f"{role}.*"):
            p.unlink()

    return setup


def _user_module(code: str, name: str = "usermaps") -> Callable[[Path, Path], None]:
    """Write a user's attribution module into the case folder (each case its own module name: Python keeps an
    imported module for the session)."""

    def setup(w: Path, t: Path) -> None:
        (t / f"{name}.py").write_text(code)
        sys.path.insert(0, str(t))

    return setup


EV = ["evaluate", "{w}/suite.yaml", "--data", "{w}/data.h5", "--models", "{w}/models", "--out", "{t}/res"]
EVP = [*EV, "--patch-data", "{w}/delta.h5"]
TR = ["train", str(shipped("train/f_o.yaml")), "--data", "{w}/data.h5", "--out", "{t}/m", "--set", "smoke=true",
      "--set", "model.arch=small_cnn", "--set", "model.weights=none", "--set", "model.input_size=32"]  # fmt: skip
DL = ["delta", "--data", "{w}/data.h5", "--model", "{w}/models/f_empty.ckpt", "--out", "{t}/d.h5"]

CASES = [
    # -- recipes and build ------------------------------------------------------------------------------------
    Case(
        "recipe missing", ["build", "{t}/nope.yaml", "--out", "{t}/o.h5"], 2, ["nope.yaml", "does not exist"]
    ),
    Case(
        "recipe empty",
        ["build", "{t}/r.yaml", "--out", "{t}/o.h5"],
        2,
        ["r.yaml", "empty"],
        _write("r.yaml", ""),
    ),
    Case(
        "recipe bad yaml",
        ["build", "{t}/r.yaml", "--out", "{t}/o.h5"],
        2,
        ["r.yaml", "line 2"],
        _write("r.yaml", "name: x\n  size: [\n"),
    ),
    Case(
        "recipe a list",
        ["build", "{t}/r.yaml", "--out", "{t}/o.h5"],
        2,
        ["r.yaml", "mapping"],
        _write("r.yaml", "- a\n- b\n"),
    ),
    Case(
        "recipe binary",
        ["build", "{t}/r.yaml", "--out", "{t}/o.h5"],
        2,
        ["r.yaml", "UTF-8"],
        _write("r.yaml", b"\x89PNG\r\n\x1a\n\xff\xfe"),
    ),
    Case(
        "size huge",
        ["build", "{t}/recipe.yaml", "--out", "{t}/o.h5"],
        2,
        ["size", "100000"],
        _recipe(size=100000),
    ),
    Case(
        "seed negative",
        ["build", "{t}/recipe.yaml", "--out", "{t}/o.h5"],
        2,
        ["seed", "-1"],
        _recipe(seed=-1),
    ),
    Case(
        "images_per_pair zero",
        ["build", "{t}/recipe.yaml", "--out", "{t}/o.h5"],
        2,
        ["images_per_pair", "0"],
        _recipe(images_per_pair=0),
    ),
    Case(
        "val_fraction > 1",
        ["build", "{t}/recipe.yaml", "--out", "{t}/o.h5"],
        2,
        ["val_fraction", "1.5"],
        _recipe(val_fraction=1.5),
    ),
    Case(
        "unknown recipe key",
        ["build", "{t}/recipe.yaml", "--out", "{t}/o.h5"],
        2,
        ["imagez_per_pair", "images_per_pair"],
        _recipe(imagez_per_pair=3),
    ),
    Case(
        "unknown object",
        ["build", "{t}/recipe.yaml", "--out", "{t}/o.h5"],
        2,
        ["dragon"],
        _recipe(objects=["dragon", *BAM_OBJECTS[1:]]),
    ),  # fmt: skip
    Case(
        "wrong --coco-images",
        ["build", "{w}/recipe.yaml", "--out", "{t}/o.h5", "--coco-images", "{t}/empty"],
        2,
        ["coco_images", "empty", "folder is wrong"],
        lambda w, t: (t / "empty").mkdir(),
    ),
    Case(
        "miniplaces folder missing",
        ["build", "{w}/recipe.yaml", "--out", "{t}/o.h5", "--miniplaces", "{t}/nowhere"],
        2,
        ["nowhere"],
    ),  # fmt: skip
    Case(
        "miniplaces without images/",
        ["build", "{w}/recipe.yaml", "--out", "{t}/o.h5", "--miniplaces", "{t}/mp"],
        2,
        ["miniplaces", "mp", "folder is wrong"],
        lambda w, t: [shutil.copytree(w / "src/miniplaces", t / "mp"), shutil.rmtree(t / "mp/images")],
    ),
    Case(
        "scene class missing",
        ["build", "{t}/recipe.yaml", "--out", "{t}/o.h5"],
        2,
        ["volcano", "MiniPlaces"],
        _recipe(scenes=[*BAM_SCENES[:8], "volcano", BAM_SCENES[9]]),
    ),  # fmt: skip
    Case(
        "unreadable existing output",
        ["build", "{w}/recipe.yaml", "--out", "{t}/o.h5"],
        2,
        ["o.h5", "--force"],
        _write("o.h5", b"not an HDF5 file at all"),
    ),
    # -- train ------------------------------------------------------------------------------------------------
    Case("train data missing", [*TR[:2], "--data", "{t}/none.h5", *TR[4:]], 2, ["none.h5"]),
    Case(
        "train data not HDF5", [*TR[:2], "--data", "{t}/x.h5", *TR[4:]], 2, ["x.h5"], _write("x.h5", "hello")
    ),
    Case("train config missing", ["train", "{t}/f_x.yaml", "--data", "{w}/data.h5"], 2, ["f_x.yaml"]),
    Case("train --set bad type", [*TR, "--set", "trainer.max_epochs=abc"], 2, ["--set", "max_epochs", "abc"]),
    Case(
        "train --set unknown key",
        [*TR, "--set", "trainer.max_epoch=3"],
        2,
        ["--set", "max_epoch", "max_epochs"],
    ),  # fmt: skip
    Case("train --set negative lr", [*TR, "--set", "optim.lr=-1"], 2, ["optim.lr", "--set optim.lr=-1"]),
    Case("train seed negative", [*TR, "--set", "seed=-1"], 2, ["seed", "-1"]),
    # -- verify / delta ---------------------------------------------------------------------------------------
    Case(
        "verify models missing",
        ["verify", "--data", "{w}/data.h5", "--models", "{t}/nomodels"],
        2,
        ["nomodels"],
    ),
    Case("verify data missing", ["verify", "--data", "{t}/no.h5", "--models", "{w}/models"], 2, ["no.h5"]),
    Case(
        "verify max-pairs 0",
        ["verify", "--data", "{w}/data.h5", "--models", "{w}/models", "--max-pairs", "0"],
        2,
        ["max_pairs", "0"],
    ),
    Case("delta model missing", ["delta", "--data", "{w}/data.h5", "--model", "{t}/f.ckpt"], 2, ["f.ckpt"]),
    Case(
        "delta model not a checkpoint",
        ["delta", "--data", "{w}/data.h5", "--model", "{t}/f.ckpt"],
        2,
        ["f.ckpt"],
        _write("f.ckpt", b"PK\x03\x04 not a torch file"),
    ),
    Case("delta lr negative", [*DL, "--set", "lr=-1"], 2, ["lr", "-1", "--set lr=-1"]),
    Case("delta seed negative", [*DL, "--set", "seed=-1"], 2, ["seed", "-1", "--set seed=-1"]),
    Case(
        "delta unknown option", [*DL, "--set", "stesp=3"], 2, ["unknown key 'stesp'", "did you mean 'steps'"]
    ),
    # -- evaluate ---------------------------------------------------------------------------------------------
    Case("suite missing", ["evaluate", "{t}/s.yaml", "--data", "{w}/data.h5"], 2, ["s.yaml"]),
    Case(
        "evaluate data missing",
        ["evaluate", "{w}/suite.yaml", "--data", "{t}/no.h5", "--models", "{w}/models"],
        2,
        ["no.h5"],
    ),
    Case("IIR without patch data", EV, 2, ["iir", "bamboo_forest_patch", "--patch-data", "--allow-missing"]),
    Case(
        "model role missing",
        [*EVP[:5], "{t}/models", *EVP[6:]],
        2,
        ["f_s", "f_s.ckpt", "--allow-missing"],
        _models_without("f_s"),
    ),
    Case("unknown method", [*EVP, "--method", "vanila_gradient"], 2, ["vanila_gradient", "vanilla_gradient"]),
    Case("user method not importable", [*EVP, "--method", "nosuchmodule:f"], 2, ["nosuchmodule"]),
    Case(
        "user method raises",
        [*EVP, "--method", "usermaps:boom"],
        2,
        ["method 'boom'", "scenario 'mcs'", "rows", "ZeroDivisionError"],
        _user_module("def boom(model, inputs, target):\n    return 1 / 0\n"),
    ),
    Case(
        "device out of memory",
        [*EVP, "--method", "oommaps:big"],
        2,
        ["out of memory", "execution.sample_batch_size=", "lower"],
        _user_module(
            "import torch\ndef big(model, inputs, target):\n"
            "    raise torch.cuda.OutOfMemoryError('CUDA out of memory. Tried to allocate 20.00 GiB')\n",
            "oommaps",
        ),
    ),
    Case(
        "corrupt compressed chunk",
        [*EVP[:3], "{t}/data.h5", *EVP[4:]],
        2,
        ["data.h5", "obj_scene/masks", "rows", "damaged"],
        _copy("data.h5", "data.h5", _corrupt_chunk),
    ),
    Case(
        "unknown metric",
        ["evaluate", "{t}/s.yaml", "--data", "{w}/data.h5", "--models", "{w}/models"],
        2,
        ["mcz"],
        _write("s.yaml", "name: s\nmethods: [vanilla_gradient]\nmetrics: [mcz]\n"),
    ),
    # -- report -----------------------------------------------------------------------------------------------
    Case("report folder missing", ["report", "{t}/nothing"], 2, ["nothing", "summary.json"]),
    Case(
        "report truncated summary",
        ["report", "{t}/results"],
        2,
        ["summary.json", "not valid JSON"],
        _copy("results", "results", lambda d: _truncate(d / "summary.json")),
    ),
    Case(
        "report garbage per_image",
        ["report", "{t}/results"],
        2,
        ["per_image.csv", "scenario"],
        _copy("results", "results", lambda d: (d / "per_image.csv").write_text("a;b\n1;2\n")),
    ),
    # -- inspect / run / sources ------------------------------------------------------------------------------
    Case("inspect missing", ["inspect", "{t}/no.h5"], 2, ["no.h5"]),
    Case("inspect not HDF5", ["inspect", "{t}/x.h5"], 2, ["x.h5"], _write("x.h5", "text")),
    Case(
        "inspect 1-pixel masks",
        ["inspect", "{t}/data.h5"],
        1,
        ["obj_scene", "row 0", "not pasted"],
        _copy("data.h5", "data.h5", _one_pixel_masks),
    ),
    Case("run config missing", ["run", "{t}/p.yaml", "--out", "{t}/o"], 2, ["p.yaml"]),
    Case(
        "run empty config",
        ["run", "{t}/p.yaml", "--out", "{t}/o"],
        2,
        ["p.yaml", "empty"],
        _write("p.yaml", ""),
    ),
    Case(
        "run seed negative",
        ["run", str(shipped("pipelines/tiny.yaml")), "--out", "{t}/o", "--seed", "-1"],
        2,
        ["seed", "-1"],
    ),
    Case(
        "run recipe path wrong",
        ["run", "{t}/p.yaml", "--out", "{t}/o"],
        2,
        ["recipe", "nope.yaml"],
        _write("p.yaml", "name: p\nrecipe: nope.yaml\n"),
    ),
    Case("sources seed negative", ["sources", "synth", "--out", "{t}/s", "--seed", "-1"], 2, ["seed", "-1"]),
    Case(
        "sources over a foreign folder",
        ["sources", "synth", "--out", "{t}/mine", "--scale", "tiny"],
        2,
        ["mine/coco", "not written by bamkit"],
        _write("mine/coco/notes.txt", "my own files"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_one_clear_line(world, case, tmp_path, capsys, monkeypatch):
    if case.setup is not None:
        case.setup(world, tmp_path)
    argv = [a.format(w=world, t=tmp_path) for a in case.argv]
    monkeypatch.chdir(tmp_path)
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if "error:" in ln]
    assert lines, f"no error line in: {err[-2000:]}"
    message = lines[-1]
    assert code == case.code, (code, message)
    for word in case.says:
        assert word in message, (word, message)


def test_the_table_is_at_least_forty_cases():
    assert len(CASES) >= 40


# -- faults of the machine: two writers, a read-only folder, a full disk ---------------------------------------
def _tmpfs(path: Path, options: str) -> bool:
    """Mount a tmpfs at ``path`` (root only); False where that is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True)


def _cli(*args: str, env: dict | None = None, preexec=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bamkit", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "BAMKIT_PROGRESS": "0", **(env or {})},
        preexec_fn=preexec,
    )


def test_two_builds_into_one_output_the_second_waits_for_nothing_and_says_so(world, tmp_path):
    """Two real processes: one builds, the other is refused at once with the holder named; the file the first
    writes is complete and passes inspect."""
    out = tmp_path / "o.h5"
    first = _cli("build", str(world / "recipe.yaml"), "--out", str(out), "--workers", "1")
    lock = Path(str(out) + ".lock")
    for _ in range(600):  # until the first holds the lock
        if lock.exists() or first.poll() is not None:
            break
        import time

        time.sleep(0.05)
    second = _cli("build", str(world / "recipe.yaml"), "--out", str(out), "--workers", "1")
    _, err2 = second.communicate(timeout=300)
    _, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    if second.returncode == 0:  # the first had already finished: the second found the output current
        assert "up to date" in err2 or "current" in err2 or err2 == "" or "exists" in err2
    else:
        assert "Traceback" not in err2 and "o.h5" in err2 and "being written by process" in err2, err2
    assert main(["inspect", str(out)]) == 0


def test_a_read_only_output_folder_is_one_line_and_nothing_is_left(world, tmp_path):
    ro = tmp_path / "ro"
    if _tmpfs(ro, "ro,size=1m"):
        try:
            p = _cli("build", str(world / "recipe.yaml"), "--out", str(ro / "o.h5"), "--workers", "1")
            _, err = p.communicate(timeout=300)
        finally:
            _umount(ro)
    elif os.geteuid() != 0:
        ro.mkdir(exist_ok=True)
        ro.chmod(0o555)
        p = _cli("build", str(world / "recipe.yaml"), "--out", str(ro / "o.h5"), "--workers", "1")
        _, err = p.communicate(timeout=300)
    else:
        pytest.skip("root without mount: no way to make a read-only folder")
    assert p.returncode != 0 and "Traceback" not in err, err
    assert "read-only" in err or "permission" in err.lower(), err
    assert len(err.strip().splitlines()) == 1, err


def test_a_full_disk_is_one_line_and_nothing_corrupt_keeps_the_final_name(world, tmp_path):
    full = tmp_path / "full"
    mounted = _tmpfs(full, "size=256k")
    preexec = None
    if not mounted:  # a file-size limit instead: writes past it fail with EFBIG
        full.mkdir(exist_ok=True)

        def preexec():  # noqa: F811
            import resource

            resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

    try:
        p = _cli("build", str(world / "recipe.yaml"), "--out", str(full / "o.h5"), "--workers", "1",
                 preexec=preexec)  # fmt: skip
        _, err = p.communicate(timeout=300)
        assert p.returncode != 0 and "Traceback" not in err, err
        assert "disk" in err.lower() or "space" in err.lower() or "size limit" in err.lower(), err
        assert not (full / "o.h5").exists()  # nothing under the final name
    finally:
        if mounted:
            _umount(full)


def test_os_error_messages_name_the_cause():
    from bamkit.cli import os_error_message

    assert "disk full" in os_error_message(OSError(errno.ENOSPC, "No space left on device", "/x/o.h5"))
    assert "read-only" in os_error_message(OSError(errno.EROFS, "Read-only file system", "/x"))


@pytest.mark.parametrize("kind", ["garbage", "hostile pickle"])
def test_a_corrupt_or_hostile_resume_state_is_moved_aside_never_run(world, tmp_path, kind, caplog):
    """A models/<name>/last.ckpt that cannot be read (or holds code) does not stop training: it is read with
    weights_only (nothing in it runs), moved aside with a message, and the model trains afresh."""
    import pickle

    argv = [a.format(w=world, t=tmp_path) for a in TR]
    assert main(argv) == 0  # a finished run leaves its resume state (and its config stamp) behind
    work = tmp_path / "m" / "f_o"
    (tmp_path / "m" / "f_o.ckpt").unlink()  # so that the next run trains (resuming) instead of skipping
    marker = tmp_path / "executed"
    if kind == "garbage":
        (work / "last.ckpt").write_bytes(b"\x00\x01 not a checkpoint")
    else:

        class Hostile:
            def __reduce__(self):
                return (os.system, (f"touch {marker}",))

        (work / "last.ckpt").write_bytes(pickle.dumps({"state_dict": Hostile()}, protocol=2))
    with caplog.at_level("WARNING"):
        assert main(argv) == 0
    assert not marker.exists()  # the pickle's code never ran
    assert (tmp_path / "m" / "f_o.ckpt").is_file()
    assert list(work.glob("last.ckpt.unreadable-*")), "the unreadable state was not kept aside"
    assert "cannot be resumed" in caplog.text
