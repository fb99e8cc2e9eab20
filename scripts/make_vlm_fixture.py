"""Make (or check) the committed `svr export` fixture that train_vlm's tests read: real text, real schema.

    python scripts/make_vlm_fixture.py            # re-export and rewrite tests/vlm/fixtures/svr_export/
    python scripts/make_vlm_fixture.py --check    # re-export and compare (what tests/sim does)

The fixture is what `svr export` writes for `EXPORT_OVERRIDES`, less the pixels: every record's text
columns (`records.jsonl`: id, index, task, stage, label_dr, fov_mm, messages), the shards' Arrow schema
with its `datasets` metadata (`schema.arrow`) and the prompt set (`prompts.json`). The config is small
(64 px, 1 mm) so the check renders in seconds once compiled, and weighted towards the tasks that make
a DR call, so that its records hold every answer template of every task at every stage (`tests/sim/test_vlm_fixture.py` checks that too). tests/vlm add random pixels
(`tests/vlm/export_writer.py`); they never import the simulator.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURE_DIR = REPO / "tests" / "vlm" / "fixtures" / "svr_export"
TEXT_COLUMNS = ("id", "index", "task", "stage", "label_dr", "fov_mm", "messages")
N_PAIRS = 720
# The device side is tests/sim/test_export.py's SMALL config (64 px, 1 mm, batch 4, seed 5, mixed stages),
# so the check reuses its compiled program; only the host-side task mixture and the count differ.
EXPORT_OVERRIDES = (
    f"n={N_PAIRS}", "size_px=64", "fov_mm=1.0", "seed=5", "batch=4", f"shard_size={N_PAIRS}", "stage=mixed",
    "tasks.reasoning=1", "tasks.dr_yes_no=3", "tasks.stage=3", "tasks.caption=3", "tasks.count_ma=2",
    "tasks.grounding=1", "masks=true", "llamafactory=false", "card=true",
)  # fmt: skip


def fixture_files(export_dir: Path) -> dict[str, bytes]:
    """The fixture's files (name -> bytes) for an export folder."""
    import pyarrow.parquet as pq

    shards = sorted((export_dir / "data").glob("train-*.parquet"))
    lines = []
    for shard in shards:
        for row in pq.read_table(shard, columns=list(TEXT_COLUMNS)).to_pylist():
            lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
    return {
        "records.jsonl": ("\n".join(lines) + "\n").encode(),
        "schema.arrow": pq.read_schema(shards[0]).serialize().to_pybytes(),
        "prompts.json": (export_dir / "prompts.json").read_bytes(),
    }


def run_export(out: Path) -> None:
    from svr_jax import cli

    if cli.main(["export", f"out={out}", *EXPORT_OVERRIDES]) != 0:
        raise SystemExit("svr export failed")


def fresh_fixture_files() -> dict[str, bytes]:
    with tempfile.TemporaryDirectory(prefix="vlm-fixture-") as tmp:
        run_export(Path(tmp) / "export")
        return fixture_files(Path(tmp) / "export")


def committed_fixture_files() -> dict[str, bytes]:
    return {name: (FIXTURE_DIR / name).read_bytes() for name in ("records.jsonl", "schema.arrow", "prompts.json")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed fixture instead")
    parser.add_argument("--from-export", type=Path, help="use this export (made with EXPORT_OVERRIDES)")
    args = parser.parse_args(argv)
    files = fixture_files(args.from_export) if args.from_export else fresh_fixture_files()
    if args.check:
        differ = [name for name, data in committed_fixture_files().items() if files[name] != data]
        print(json.dumps({"fixture_matches_export": not differ, "differ": differ}))
        return 1 if differ else 0
    FIXTURE_DIR.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (FIXTURE_DIR / name).write_bytes(data)
    print(json.dumps({"fixture": str(FIXTURE_DIR), "records": files["records.jsonl"].count(b"\n")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
