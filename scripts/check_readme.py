"""Run the README's short commands, as written, on a fresh clone of this repository.

    python scripts/check_readme.py                 # every command; prints one JSON line last
    python scripts/check_readme.py --list          # only list them
    python scripts/check_readme.py --skip "make test"

A command is a line (with its ``\\`` continuations) of a ```bash block of README.md. Lines that end in a
``# needs: ...`` comment (real data, a GPU, hours) are listed as skipped. The clone's ``.venv`` is made
offline from this interpreter's installed dependencies (a venv whose ``.pth`` points at them, with the
``svr``/``svr-vlm`` entry points and make's stamp), so ``make demo`` and ``make test`` run as written
without downloading anything; ``--install`` lets make build its own ``.venv`` instead (needs the network).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def readme_commands(text: str) -> list[str]:
    """The commands of the README's ```bash blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        current = ""
        for line in block.splitlines():
            current += line.rstrip()
            if current.endswith("\\"):
                current = current[:-1] + " "
                continue
            if current.strip() and not current.lstrip().startswith("#"):
                commands.append(" ".join(current.split()))
            current = ""
    return commands


def needs(command: str) -> str | None:
    m = re.search(r"#\s*needs:\s*(.*)$", command)
    return m.group(1).strip() if m else None


def offline_venv(clone: Path) -> None:
    """``clone/.venv`` on this interpreter's packages, the clone's own code first; make's stamp set."""
    venv = clone / ".venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = subprocess.run([venv / "bin" / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "svr_checkout.pth").write_text(f"{clone}\n{sysconfig.get_paths()['purelib']}\n")
    for name, module in (("svr", "svr_jax.cli"), ("svr-vlm", "train_vlm.cli")):
        script = venv / "bin" / name
        script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom {module} import main\nsys.exit(main())\n")
        script.chmod(0o755)
    (venv / ".installed").touch()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true")
    parser.add_argument("--skip", action="append", default=[], help="skip commands that start with this text")
    parser.add_argument("--install", action="store_true", help="let make create .venv itself (network)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per command")
    args = parser.parse_args(argv)
    commands = readme_commands((REPO / "README.md").read_text())
    if args.list:
        for command in commands:
            print(("skip  " if needs(command) else "run   ") + command)
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="svr-readme-") as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
        if not args.install:
            offline_venv(clone)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SVR_CONF_DIR", "VIRTUAL_ENV")}
        for command in commands:
            reason = needs(command) or next((f"--skip {s!r}" for s in args.skip if command.startswith(s)), None)
            if reason:
                results.append(dict(command=command, skipped=reason))
                continue
            start = time.time()
            proc = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True, text=True,
                                  timeout=args.timeout)
            results.append(dict(command=command, rc=proc.returncode, seconds=round(time.time() - start, 1)))
            status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
            print(f"{status:>12}  {results[-1]['seconds']:7.1f} s  {command}", flush=True)
            if proc.returncode != 0:
                print(proc.stdout[-2000:] + proc.stderr[-4000:], file=sys.stderr)
    failed = [r["command"] for r in results if r.get("rc", 0) != 0]
    print(json.dumps(dict(ran=sum("rc" in r for r in results), skipped=sum("skipped" in r for r in results), failed=failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
