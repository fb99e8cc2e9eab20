"""The README stays a user's page: short, and every command in it runs as written on a fresh clone."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from check_readme import needs, readme_commands  # noqa: E402


def test_readme_is_short_and_its_commands_are_marked():
    text = (REPO / "README.md").read_text()
    assert len(text.encode()) <= 25_000
    commands = readme_commands(text)
    assert "make demo" in [c.split(" #")[0] for c in commands] and "make test" in [c.split(" #")[0] for c in commands]
    for command in commands:  # a command that cannot run on a fresh clone says why
        if "../shared/data" in command or "--real" in command:
            assert needs(command), command


@pytest.mark.slow
def test_readme_commands_run_on_a_fresh_clone():
    # `make test` would run this test again; the suite itself is what runs it.
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "check_readme.py"), "--skip", "make test"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
