"""scripts/device_check.sh without a usable GPU: every check skipped with its reason, exit 0,
in seconds; and the table's rows for checks that fail, error or time out."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "device_check.sh"
CHECKS = ["embed", "mine", "train", "ddp"]


def _table_rows(stdout: str) -> list[list[str]]:
    lines = [ln for ln in stdout.splitlines() if ln.startswith("|")]
    assert lines[0] == "| check | result | target | status |" and lines[1] == "|---|---|---|---|", stdout
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


def _run(tmp_path, **env_extra) -> subprocess.CompletedProcess:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHON=sys.executable, TMPDIR=str(tmp_path))
    env.pop("DEVICE_CHECK_TRYOUT", None)
    env.update(env_extra)
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)  # from anywhere: the script finds the repository itself


@pytest.mark.parametrize("case", ["no-cuda", "no-torch", "no-python"])
def test_without_a_gpu_every_check_is_skipped_with_its_reason(tmp_path, case):
    env, want = {}, "no CUDA device"
    if case == "no-torch":  # a python whose `import torch` fails
        fake = tmp_path / "fake"
        (fake / "torch").mkdir(parents=True)
        (fake / "torch" / "__init__.py").write_text("raise ImportError('torch is hidden here')\n")
        env, want = {"PYTHONPATH": str(fake)}, "cannot import torch"
    elif case == "no-python":
        env, want = {"PYTHON": str(tmp_path / "no-such-python")}, "the probe failed"
    t0 = time.monotonic()
    proc = _run(tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert time.monotonic() - t0 < 60  # seconds: no check started
    rows = _table_rows(proc.stdout)
    assert len(rows) == len(CHECKS)
    for (check, result, _, status), name in zip(rows, CHECKS):
        assert status == "skipped" and want in result, rows
        assert check.lower().startswith(name), rows
    if case == "no-cuda":
        # one table, with the date and the machine on the line above it
        assert proc.stdout.count("| check | result | target | status |") == 1
        assert "mom device check, " in proc.stdout.splitlines()[0]
    assert not list(tmp_path.glob("mom-device-check.*"))  # its work folder is removed


def _module():
    spec = importlib.util.spec_from_file_location("device_check", ROOT / "scripts" / "device_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_table_reports_failures_errors_and_timeouts(tmp_path, capsys, monkeypatch):
    import json
    dc = _module()
    (tmp_path / "embed.json").write_text(json.dumps({"check": "embed", "seconds": 12.0, "rows": [
        dc._row("embed: cosine", "min 0.99990", ">= 0.999", True),
        dc._row("embed: speed", "70% (a | b)", ">= 85%", False)]}))
    (tmp_path / "mine.rc").write_text("124\n")  # killed by the shell's hard limit
    (tmp_path / "train.rc").write_text("1\n")
    (tmp_path / "train.log").write_text("Traceback ...\nRuntimeError: CUDA error\n\n")
    monkeypatch.setenv("LIMIT_mine", "90")
    assert dc.table(tmp_path, ["embed", "mine", "train"], "") == 1
    rows = _table_rows(capsys.readouterr().out)
    assert [r[3] for r in rows] == ["pass", "FAIL", "timeout", "error"]
    assert rows[0][0] == "embed: cosine (12 s)" and rows[1][1] == "70% (a / b)"  # no stray column
    assert "90 s" in rows[2][1] and "RuntimeError: CUDA error" in rows[3][1]
    assert dc.table(tmp_path, ["embed"], "no CUDA device") == 0  # skipped is not a failure


def test_pool_agreement_counts_anchors_and_jaccard():
    dc = _module()
    a = {0: (frozenset({1, 2}), frozenset({5})), 1: (frozenset({0}), frozenset({6}))}
    b = {0: (frozenset({1, 2}), frozenset({5})), 1: (frozenset({0, 3}), frozenset({6}))}
    assert dc._agreement(a, a) == (2, 2, 1.0, 1.0)
    same, total, jp, jn = dc._agreement(a, b)
    assert (same, total, jn) == (1, 2, 1.0) and jp == pytest.approx(0.75)
    assert dc._agreement(a, {0: a[0]})[:2] == (1, 2)  # an anchor one side lacks differs
