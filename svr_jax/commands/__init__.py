"""One module per ``svr`` command: ``parse(DictConfig) -> job dataclass`` and ``run(job)``."""
