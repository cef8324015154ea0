"""The wheel: it carries the shipped configs, and an installed bamkit runs the tiny pipeline from an empty
folder (no source checkout in sight)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _wheel(tmp: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp),
        ],
        check=True,
        capture_output=True,
    )
    return next(tmp.glob("bamkit-*.whl"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel installed into a bare folder; the dependencies come from this environment."""
    tmp = tmp_path_factory.mktemp("wheel")
    whl = _wheel(tmp)
    site = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), "-q", str(whl)],
        check=True,
        capture_output=True,
    )
    return whl, site


def _bamkit(site: Path, cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "BAMKIT_PROGRESS": "0"}
    env.pop("BAMKIT_CONFIG_ROOT", None)
    return subprocess.run(
        [sys.executable, "-m", "bamkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_the_wheel_carries_every_shipped_config(installed):
    whl, _ = installed
    names = set(zipfile.ZipFile(whl).namelist())
    for folder in ("data_recipes", "train", "evaluate", "pipelines"):
        for p in (ROOT / folder).rglob("*.yaml"):
            assert f"bamkit/_configs/{p.relative_to(ROOT).as_posix()}" in names, p


@pytest.mark.slow
def test_an_installed_bamkit_runs_the_tiny_pipeline_from_an_empty_folder(installed, tmp_path):
    _, site = installed
    r = _bamkit(site, tmp_path, "configs", "path")
    assert r.returncode == 0 and Path(r.stdout.strip()) == site / "bamkit" / "_configs", r.stderr
    t0 = time.perf_counter()
    r = _bamkit(site, tmp_path, "run", "pipelines/tiny.yaml", "--out", "run")
    assert r.returncode == 0, r.stderr[-3000:]
    print(f"tiny pipeline from the installed wheel: {time.perf_counter() - t0:.1f} s")
    assert (tmp_path / "run" / "report" / "index.html").is_file()
    # a copy to edit, and never over existing files
    r = _bamkit(site, tmp_path, "configs", "copy", "mine")
    assert r.returncode == 0 and (tmp_path / "mine" / "pipelines" / "tiny.yaml").is_file(), r.stderr
    r = _bamkit(site, tmp_path, "configs", "copy", "mine")
    assert r.returncode == 2 and "already exist" in r.stderr and "Traceback" not in r.stderr
