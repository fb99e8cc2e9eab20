"""`svr-vlm`: one entry point for the train_vlm commands.

svr-vlm train --config train_vlm/recipes/lora.yaml --train_data EXPORT
svr-vlm evaluate --model OUT --images_root FOLDER --output_dir EVAL
svr-vlm merge --adapter OUT --output_dir MERGED
svr-vlm reproduce --output_dir RUN --images_root FOLDER [--export_overrides "n=10000"] [--tiny true]
svr-vlm make-tiny FOLDER
"""

from __future__ import annotations

import sys

COMMANDS = {
    "train": "train_vlm.train",
    "evaluate": "train_vlm.evaluate",
    "merge": "train_vlm.merge_lora",
    "reproduce": "train_vlm.reproduce",
    "make-tiny": "train_vlm.tiny",
}


def main(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__.strip())
        if argv and argv[0] not in ("-h", "--help"):
            raise SystemExit(f"unknown command {argv[0]!r}; choose one of {list(COMMANDS)}")
        return
    import importlib

    # Imported on demand: `svr-vlm --help` should not pay for importing torch and transformers.
    return importlib.import_module(COMMANDS[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main()
