"""``pip install .`` into a fresh virtualenv gives a working ``burst`` command, away from the checkout.

The fresh virtualenv sees the test environment's packages through a ``.pth``
file (tests reach no network, so nothing is downloaded); ``pip check`` then
proves that pyproject.toml's dependencies are what burst is run with.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pandas
import pytest

import burst
from tests.conftest import REPO

pytestmark = pytest.mark.slow
NOT_SHIPPED = shutil.ignore_patterns(".venv", ".git", "build", "*.egg-info", "__pycache__", ".pytest_cache", "output", "out")


def run(*args, cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))


@pytest.fixture
def installed(tmp_path) -> Path:
    """A fresh virtualenv with burst installed from a copy of this checkout; returns its bin folder."""
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=NOT_SHIPPED)
    venv = tmp_path / "venv"
    made = run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    purelib = run(venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path)
    Path(purelib.stdout.strip(), "test-environment.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = run(venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
              source, cwd=tmp_path)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    return venv / "bin"


def test_pip_install_gives_a_burst_command_that_runs_a_campaign_anywhere(installed, tmp_path, burst_home):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    version = run(installed / "burst", "--version", cwd=elsewhere)
    assert (version.returncode, version.stdout) == (0, f"burst {burst.__version__}\n")
    module = run(installed / "python", "-m", "burst", "--version", cwd=elsewhere)
    assert module.stdout == version.stdout
    where = run(installed / "python", "-c", "import burst; print(burst.__file__)", cwd=elsewhere)
    assert where.stdout.startswith(str(installed.parent)), "burst comes from the virtualenv, not the checkout"
    check = run(installed / "python", "-m", "pip", "check", cwd=elsewhere)
    assert check.returncode == 0, check.stdout

    helped = run(installed / "burst", "--help", cwd=elsewhere)
    for command in ("run", "download", "status", "cost", "logs", "ssh", "plot", "terminate", "cleanup"):
        assert f"\n    {command}" in helped.stdout, command

    jobfile = tmp_path / "source" / "awsjobs" / "demo.csv"
    ran = run(installed / "burst", "run", "local", "pkg", jobfile, "-c", "-d", "--wait", cwd=elsewhere)
    assert ran.returncode == 1, ran.stdout + ran.stderr  # the demo's last row fails on purpose
    assert "why pkg4 failed: burst logs pkg pkg4" in ran.stdout
    assert "results: burst download pkg results/pkg --merge" in ran.stdout
    assert "no INSTALL.sh" in ran.stdout, "nothing to install was said, not silently assumed"
    status = run(installed / "burst", "status", "pkg", cwd=elsewhere)
    assert status.returncode == 1, status.stdout + status.stderr
    assert "pkg4: command exited with status 2" in status.stdout
    got = run(installed / "burst", "download", "pkg", "out", "--merge", cwd=elsewhere)
    assert got.returncode == 0, got.stderr
    merged = pandas.read_csv(elsewhere / "out" / "results.csv")
    assert sorted(merged["tag"]) == [f"pkg{i}" for i in range(5)]
    assert merged.set_index("tag")["exit_code"].to_dict() == {"pkg0": 0, "pkg1": 0, "pkg2": 0, "pkg3": 0, "pkg4": 2}
