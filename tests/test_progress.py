"""Progress in a log (not a terminal): plain lines every 10 % / 30 s, and BAMKIT_PROGRESS's modes."""

from __future__ import annotations

import pytest

from bamkit import progress


@pytest.mark.parametrize(
    ("env", "expected"), [("0", "off"), ("off", "off"), ("log", "log"), ("1", "bar"), ("bar", "bar")]
)
def test_the_environment_variable_chooses_the_mode(monkeypatch, env, expected):
    monkeypatch.setenv("BAMKIT_PROGRESS", env)
    assert progress.mode() == expected


def test_a_log_gets_a_line_every_tenth_and_a_final_one(monkeypatch, capsys):
    monkeypatch.setenv("BAMKIT_PROGRESS", "log")
    ticks = iter(range(0, 10_000, 6))  # 6 s per image: every 10 % step is past the 5 s minimum gap
    monkeypatch.setattr(progress.time, "monotonic", lambda: float(next(ticks)))
    assert list(progress.bar(range(50), desc="decode", unit="img")) == list(range(50))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 10  # at 5, 10, ..., 50 images: every 10 %
    assert lines[0].startswith("decode: 5/50 img (10%), ") and lines[0].endswith(" s left")
    assert lines[-1].startswith("decode: 50/50 img (100%)")


def test_a_short_task_in_a_log_says_nothing_a_longer_one_says_it_ended(monkeypatch, capsys):
    monkeypatch.setenv("BAMKIT_PROGRESS", "log")
    list(progress.bar(range(50), desc="decode", unit="img"))  # well under LOG_MIN_GAP
    assert capsys.readouterr().err == ""
    ticks = iter([0.0] + [0.01] * 50 + [7.0])  # every image at once, then the end 7 s after the start
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(ticks))
    list(progress.bar(range(50), desc="decode", unit="img"))
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("decode: 50/50 img (100%)")


def test_a_log_line_every_30_seconds_when_progress_is_slow(monkeypatch, capsys):
    monkeypatch.setenv("BAMKIT_PROGRESS", "log")
    clock = iter([0.0, 10.0, 31.0, 40.0, 62.0, 70.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    with progress.bar(total=1000, desc="train f_o", unit="step") as b:
        for _ in range(4):
            b.update(1)
    lines = capsys.readouterr().err.strip().splitlines()
    # 10 s: too soon; 31 s: a line; 40 s: too soon; 62 s: a line; close: nothing new to say
    assert [line.split(",")[0] for line in lines] == [
        "train f_o: 2/1000 step (0%)",
        "train f_o: 4/1000 step (0%)",
    ]
