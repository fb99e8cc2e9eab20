"""Re-derive the fit / held-out split of the real development eyes from a labels.csv.

    python scripts/make_split.py [--real ../shared/data/octa500] [--write]

Without ``--write`` it checks that the committed ``svr_jax/data/octa500_split.json`` is exactly what
``svr_jax.split.derive_split`` makes from the folder's labels.csv (exit 1 if not) and prints the counts
per stratum; ``--write`` (re)writes the file.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    from svr_jax import split as split_lib

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--real", type=Path, default=Path(os.environ.get("SVR_OCTA500", REPO.parent / "shared" / "data" / "octa500")))
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    with open(args.real / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    derived = split_lib.derive_split(rows)
    counts = Counter((split_lib.stratum(r), derived.half_of(str(r["id"]))) for r in rows)
    for key in sorted({k for k, _ in counts}):
        print(f"{key[0]:g} mm {key[1]:<7} fit {counts[key, 'fit']:3d}  heldout {counts[key, 'heldout']:3d}")
    path = REPO / "svr_jax" / "data" / split_lib.SPLIT_FILE
    if args.write:
        path.write_text(split_lib.to_json(derived))
        print(f"wrote {path}")
        return 0
    same = path.is_file() and split_lib.read_split(path) == derived
    print(f"{path}: {'matches' if same else 'DIFFERS FROM'} the split derived from {args.real / 'labels.csv'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
