"""``svr <command> [key=value ...]``: the command-line front end.

Each command composes its Hydra config (``conf/<command>.yaml``) with the overrides given, converts it
to typed dataclasses and calls library code, which never sees a DictConfig. With ``-m``/``--multirun``
the command runs through ``hydra.main`` instead, so sweeps and launchers (joblib, submitit) work.

Any bad input ends in one line on stderr, ``svr <command>: error: ...``, exit status 2, and no output.
"""

from __future__ import annotations

import importlib
import sys

from .presets import conf_dir as conf_dir

COMMANDS = {
    "generate": "svr_jax.commands.generate",
    "fit": "svr_jax.commands.fit",
    "export": "svr_jax.commands.export_cmd",
    "check-text": "svr_jax.commands.check_text",
    "browse": "svr_jax.commands.browse",
}




def _usage() -> str:
    return f"usage: svr {{{','.join(COMMANDS)}}} [key=value ...] [-m]   (see README.md)"


def register_schema(command: str):
    """Store the command's typed schema in Hydra's ConfigStore as ``<command>_schema`` (named in the
    defaults list of ``conf/<command>.yaml``); returns the command's module."""
    from hydra.core.config_store import ConfigStore

    module = importlib.import_module(COMMANDS[command])
    ConfigStore.instance().store(name=f"{command.replace('-', '_')}_schema", node=module.SCHEMA)
    return module


def compose(command: str, overrides: list[str]):
    """Compose ``conf/<command>.yaml`` with overrides (no working-directory change, no output)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    register_schema(command)
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        return hydra_compose(config_name=command, overrides=overrides)


def _one_line(error: BaseException) -> str:
    text = " ".join(_message(error).split())
    return text or type(error).__name__


def _message(error: BaseException) -> str:
    """Hydra's "Error merging override n=abc" hides the reason in its cause: say the key, the value
    and what it should be ("n=abc: 'abc' is not an integer")."""
    from omegaconf.errors import ValidationError

    cause = error.__cause__
    if isinstance(cause, ValidationError) and getattr(cause, "full_key", None):
        wanted = str(cause).split("\n")[0]
        for kind, word in (("Integer", "an integer"), ("Float", "a number"), ("Boolean", "true or false")):
            if wanted.endswith(f"converted to {kind}"):
                wanted = f"{cause.value!r} is not {word}"
        return f"{cause.full_key}={cause.value}: {wanted}"
    return str(error)


def run_command(command: str, overrides: list[str]) -> int:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    module = importlib.import_module(COMMANDS[command])
    try:
        cfg = compose(command, overrides)
        job = module.parse(cfg)
    except (HydraException, OmegaConfBaseException, ValueError, OSError) as error:
        print(f"svr {command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    try:
        module.run(job)
    except (ValueError, OSError) as error:  # found while running, e.g. an export folder of another config
        print(f"svr {command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    return 0


def run_multirun(command: str, overrides: list[str]) -> int:
    """Sweeps through Hydra's own launcher machinery (``hydra/launcher=joblib`` etc.)."""
    import hydra

    module = register_schema(command)

    @hydra.main(config_path=str(conf_dir()), config_name=command, version_base=None)
    def _task(cfg) -> None:
        module.run(module.parse(cfg))

    sys.argv = [f"svr {command}", "--multirun", *overrides]
    _task()
    return 0


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # run as a program (not called from Python): huge-page malloc for XLA's buffers
        from .runtime import reexec_with_hugepage_malloc

        reexec_with_hugepage_malloc(["-m", "svr_jax.cli", *sys.argv[1:]])
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage(), file=sys.stderr if not argv else sys.stdout)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"svr: error: unknown command {command!r}; {_usage()}", file=sys.stderr)
        return 2
    multirun = [a for a in rest if a in ("-m", "--multirun")]
    overrides = [a for a in rest if a not in ("-m", "--multirun")]
    # A bare word after the command is its action (`svr export verify out=...` = `action=verify`), or
    # the key the command names as BARE_WORD (`svr browse FOLDER` = `export=FOLDER`).
    bare = getattr(importlib.import_module(COMMANDS[command]), "BARE_WORD", "action")
    overrides = [a if "=" in a or a.startswith("-") else f"{bare}={a}" for a in overrides]
    if multirun:
        return run_multirun(command, overrides)
    return run_command(command, overrides)


if __name__ == "__main__":
    sys.exit(main())
