"""Export workers that finish shards at the same moment never lose, duplicate or corrupt a manifest row.

Each worker process owns a disjoint set of shards (as a multirun job owns a shard range) and, for each,
does exactly what ``svr export`` does after writing a shard: write the shard's sidecar, then rebuild
``manifest.json`` from all sidecars. A barrier releases all workers at once before every shard, so their
rebuilds overlap. The sidecars are synthetic (the manifest reads only sidecars, never the Parquet files).
"""

import json
import multiprocessing
import pickle

from svr_jax import cli
from svr_jax.commands import export_cmd
from svr_jax.export import pipeline as ex
from svr_jax.export import shards as shard_lib
from svr_jax.io import write_json

WORKERS = 6
SHARDS_PER_WORKER = 20


def sidecar_entry(shard: shard_lib.Shard) -> dict:
    stages = {"normal": shard.number % 3 + 1, "pdr": 2}
    return dict(name=shard.name, start=shard.start, stop=shard.stop, rows=sum(stages.values()), rejected=shard.number % 2,
                sha256=f"{shard.number:064x}", stages=stages)


def worker(job_bytes: bytes, plan: list, mine: list, barrier, errors) -> None:
    job = pickle.loads(job_bytes)
    try:
        for k, number in enumerate(mine):
            barrier.wait(timeout=120)
            # Every worker finished its rebuild of round k - 1: the manifest lists at least those rows.
            if k:
                listed = len(json.loads((job.out / "manifest.json").read_text())["shards"])
                assert listed >= k * WORKERS, f"round {k}: {listed} shards listed, {k * WORKERS} written"
            shard = plan[number]
            entry = dict(sidecar_entry(shard), identity=job.identity())  # as svr export records it
            write_json(job.out / "data" / (shard.name + ".json"), entry)
            ex.write_manifest(job, plan)
            json.loads((job.out / "manifest.json").read_text())  # a reader between rebuilds sees a whole file
    except BaseException as error:  # reported to the parent; the barrier is broken so nobody waits forever
        errors.put(f"{type(error).__name__}: {error}")
        barrier.abort()


def test_concurrent_shard_finishes_keep_every_row(tmp_path):
    n, shard_size = WORKERS * SHARDS_PER_WORKER * 4, 4
    job = export_cmd.parse(cli.compose("export", [f"out={tmp_path / 'race'}", f"n={n}", f"shard_size={shard_size}", "batch=4"]))
    job.identity()  # the config hash is cached on the job, so workers need not recompute it
    (job.out / "data").mkdir(parents=True)
    plan = shard_lib.plan(n, shard_size)
    context = multiprocessing.get_context("spawn")  # JAX is loaded here: no fork
    barrier, errors = context.Barrier(WORKERS), context.Queue()
    processes = [
        context.Process(target=worker, args=(pickle.dumps(job), plan, list(range(k, len(plan), WORKERS)), barrier, errors))
        for k in range(WORKERS)
    ]
    for p in processes:
        p.start()
    for p in processes:
        p.join(timeout=300)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert not found, found
    assert all(p.exitcode == 0 for p in processes)

    manifest = json.loads((job.out / "manifest.json").read_text())
    names = [e["name"] for e in manifest["shards"]]
    assert names == [s.name for s in plan]  # every shard once, in plan order
    assert manifest["complete"] and manifest["rows"] == sum(sidecar_entry(s)["rows"] for s in plan)
    assert manifest["rejected"] == sum(sidecar_entry(s)["rejected"] for s in plan)
    # Byte-identical to a rebuild by one process after the fact.
    racy = (job.out / "manifest.json").read_bytes()
    ex.write_manifest(job, plan)
    assert (job.out / "manifest.json").read_bytes() == racy
    assert not list(job.out.rglob("*.tmp"))
