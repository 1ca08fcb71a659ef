"""The installed command `layer-claims` (pyproject [project.scripts]) is `python -m harness` under another name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMMAND = Path(sys.executable).parent / "layer-claims"  # where pip puts the script of this environment


def _both(*args: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    assert COMMAND.is_file(), f"{COMMAND} is not installed: pip install -e . in this environment makes it"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}, "HF_HUB_OFFLINE": "1"}
    run = {"cwd": ROOT, "capture_output": True, "text": True, "env": env, "timeout": 600}
    return subprocess.run([str(COMMAND), *args], **run), subprocess.run([sys.executable, "-m", "harness", *args], **run)


def test_profile_gives_the_same_json():
    args = ["profile", "--model", "minilm", "--device", "cpu", "--prompt", "The cat sat on the mat.", "--factor", "0.5", "--json"]
    command, module = _both(*args)
    assert command.returncode == module.returncode == 0, command.stderr[-2000:] + module.stderr[-2000:]
    assert json.loads(command.stdout) == json.loads(module.stdout)


@pytest.mark.parametrize("args", [["--help"], ["profile", "--help"], ["report", "merge", "--help"]])
def test_the_same_help_under_its_own_name(args):
    command, module = _both(*args)
    assert command.returncode == module.returncode == 0
    assert command.stdout.startswith("usage: layer-claims")
    words = command.stdout.replace("layer-claims", "python -m harness").split()  # the usage lines wrap at the name's width
    assert words == module.stdout.split()


def test_the_same_exit_codes_and_one_line_errors():
    command, module = _both("profile", "--model", "minilm", "--layer", "abc")
    assert command.returncode == module.returncode == 2
    assert command.stderr == module.stderr and len(command.stderr.strip().splitlines()) == 1
