"""Text statistics over many simulated samples: contradictions, final-line parsing, phrasing variety.

    python benchmarks/text_stats.py --n 10000                 # reduced field (1.5 mm, 96 px): CPU-friendly
    python benchmarks/text_stats.py --n 10000 --preset 3mm    # the real 3 mm field (use an accelerator)

Every sample is simulated (stage mixture), measured from its rendered masks and findings, and every
task's text is generated and checked by ``svr_jax.text.check``. Prints per-task counts, the sentence
families that fired per measured stage, and a last JSON line with ``n``, ``contradictions``,
``final_line_parse_rate``, ``unique_sentence_ratio`` (distinct / total sentences of the reasoning texts)
and ``measured_equals_intended`` (fraction of samples whose graded stage is the intended one).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import time

import svr_jax as svr
from svr_jax.text.check import contradictions, final_line_parses, split_sentences
from svr_jax.text.reasoning import families
from svr_jax.runtime import enable_compilation_cache
from svr_jax.simulated import simulated
from svr_jax.text.tasks import TASKS, all_prompts, answer


def small_config():
    """The test suite's reduced field (tests/sim/conftest.py): same code paths, fast on a CPU."""
    cfg = svr.SimConfig(
        field=svr.FieldConfig(fov_mm=1.5, size_px=96),
        growth=svr.GrowthConfig(n_roots=4, generations=3, steps_per_branch=3, capillary_spacing_um=40.0, deep_spacing_um=55.0),
    )
    p = svr.SimParams()
    return cfg, dataclasses.replace(p, vessels=dataclasses.replace(p.vessels, faz_area_mm2=0.12, branch_length_mm=0.4))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--preset", default="small", choices=["small", "3mm", "6mm"])
    ap.add_argument("--stage", default="mixed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    enable_compilation_cache()
    if args.preset == "small":
        cfg, params = small_config()
    else:
        from svr_jax.presets import preset_params

        cfg, params = preset_params(args.preset)

    t0 = time.time()
    per_task = collections.Counter()
    bad_per_task = collections.Counter()
    fired = collections.defaultdict(collections.Counter)
    examples = []
    n_contra = n_parsed = n = agree = 0
    sentences_seen, sentences_total = set(), 0
    for index, m, _, intended in simulated(cfg, params, stage=args.stage, seed=args.seed, n=args.n, batch=args.batch):
        n += 1
        agree += m.stage == intended
        for f in families(m):
            fired[m.stage][f] += 1
        for k, task in enumerate(TASKS):
            text = answer(task, args.seed * 1_000_003 + index * len(TASKS) + k, m)
            bad = contradictions(text, m, task=task)
            per_task[task] += 1
            if bad:
                bad_per_task[task] += 1
                n_contra += len(bad)
                if len(examples) < 5:
                    examples.append((task, bad, text))
            if task == "reasoning":
                n_parsed += final_line_parses(text)
                for s in split_sentences(text):
                    sentences_seen.add(s)
                    sentences_total += 1
        if n % 1000 == 0:
            print(f"{n} samples, {n_contra} contradictions, {time.time() - t0:.0f} s", flush=True)
    for task, bad, text in examples:
        print(f"--- {task}: {bad}\n{text}")
    print("texts per task:", dict(per_task), "texts with contradictions:", dict(bad_per_task))
    print("sentence families fired, by measured stage:")
    for stage in sorted(fired):
        print(f"  {stage}: {dict(sorted(fired[stage].items()))}")
    print(json.dumps(dict(
        n=n, preset=args.preset, texts=sum(per_task.values()), contradictions=n_contra,
        final_line_parse_rate=n_parsed / max(n, 1), unique_sentence_ratio=len(sentences_seen) / max(sentences_total, 1),
        distinct_prompts=len(all_prompts()), measured_equals_intended=agree / max(n, 1), seconds=round(time.time() - t0, 1),
    )))


if __name__ == "__main__":
    main()
