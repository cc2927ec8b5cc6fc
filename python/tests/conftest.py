import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def cli():
    """The decompute command built from the same library (cargo build)."""
    b = os.environ.get("DECOMPUTE_BIN") or str(ROOT / "target" / "debug" / "decompute")
    if not os.path.exists(b):
        b = shutil.which("decompute")
    assert b, "build the CLI first (cargo build) or set DECOMPUTE_BIN"

    def run(*args, **kw):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DECOMPUTE_")}
        return subprocess.run([b, *args], capture_output=True, text=True, env=env, **kw)

    return run


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for k in list(os.environ):
        if k.startswith("DECOMPUTE_"):
            monkeypatch.delenv(k)
    # No config or policy file of the machine's user.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
