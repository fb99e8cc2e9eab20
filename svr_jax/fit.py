"""Fitting ``SimParams`` to real OCTA statistics by gradient descent through the simulator.

The fit touches only a *flat selection of leaves* (``FitParam`` paths such as ``"appearance.gain"``),
so ``SimParams`` may grow new groups without this module changing. Each selected value lives in a
bounded interval and is optimised as an unconstrained logit: ``value = lo + (hi - lo) * sigmoid(u)``,
so every step stays valid (bounds also respect the renderer's static window sizes).

One step: draw ``batch`` fresh sample keys (a pure function of the seed and the step, so a resumed fit
replays exactly), simulate, compute ``stats.image_statistics`` on every synthetic image, and take an
optax (Adam) step on ``stats.total_distance`` between the batch's and the real set's moments (with the
whitened ``joint`` term when the real summary holds it: ``real_summary(..., joint=True)``). The
state (logits, optimiser state, step, loss history) is checkpointed with orbax; ``fit(...,
checkpoint_dir=d)`` resumes from the latest checkpoint in ``d``.

    real = stats.summarize(stats.batch_statistics(real_images, pixel_um=cfg.field.pixel_um))
    result = fit(cfg, default_params(cfg), real, steps=150, batch=16)
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from pathlib import Path
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import stats as stats_lib
from .config import SimConfig, SimParams, as_float32
from .parameters import DEFAULT_FIT_PARAMS as DEFAULT_FIT_PARAMS
from .parameters import EXTRA_FIT_PARAMS as EXTRA_FIT_PARAMS
from .parameters import FitParam as FitParam
from .parameters import active_fit_params as active_fit_params
from .parameters import fit_param_by_path as fit_param_by_path
from .simulate import sample_keys, simulate
from .variability import per_sample_params

# A fit's default length and step: `svr fit` and the benchmarks start from these.
FIT_STEPS, FIT_BATCH, FIT_LR = 150, 16, 0.05


def get_leaf(params: SimParams, path: str):
    group, name = path.split(".")
    return getattr(getattr(params, group), name)


def select(params: SimParams, fit_params: Sequence[FitParam]) -> jax.Array:
    """[P] the selected values."""
    return jnp.stack([jnp.asarray(get_leaf(params, p.path), jnp.float32) for p in fit_params])


def insert(params: SimParams, fit_params: Sequence[FitParam], values: jax.Array) -> SimParams:
    """``params`` with the selected leaves replaced by ``values`` [P]; other fields (any group) untouched."""
    by_group: dict[str, dict] = {}
    for i, p in enumerate(fit_params):
        group, name = p.path.split(".")
        by_group.setdefault(group, {})[name] = values[i]
    return dataclasses.replace(params, **{g: dataclasses.replace(getattr(params, g), **kv) for g, kv in by_group.items()})


def _bounds(fit_params):
    return (jnp.asarray([p.lo for p in fit_params], jnp.float32), jnp.asarray([p.hi for p in fit_params], jnp.float32))


def to_unconstrained(values: jax.Array, fit_params: Sequence[FitParam]) -> jax.Array:
    lo, hi = _bounds(fit_params)
    frac = jnp.clip((values - lo) / (hi - lo), 1e-3, 1 - 1e-3)
    return jnp.log(frac) - jnp.log1p(-frac)


def to_constrained(logits: jax.Array, fit_params: Sequence[FitParam]) -> jax.Array:
    lo, hi = _bounds(fit_params)
    return jnp.clip(lo + (hi - lo) * jax.nn.sigmoid(logits), lo, hi)  # clip: float32 rounding at saturation


def population_images(keys: jax.Array, params: SimParams, cfg: SimConfig, variability: float | jax.Array = 0.0) -> jax.Array:
    """[B] keys -> [B, H, W]: one image per key, each simulated with its own parameters drawn around
    ``params`` at ``variability`` (``svr_jax.variability``; 0: ``params`` itself; an array: traced)."""
    return jax.vmap(lambda key: simulate(key, per_sample_params(key, params, variability), cfg).image)(keys)


def synthetic_statistics(params: SimParams, keys: jax.Array, cfg: SimConfig, variability: float = 0.0) -> dict:
    images = population_images(keys, params, cfg, variability)
    return stats_lib.batch_statistics(images, pixel_um=cfg.field.pixel_um)


def make_loss(cfg: SimConfig, base: SimParams, fit_params: Sequence[FitParam], real: dict, *,
              joint_weight: float = 1.0, variability: float = 0.0) -> Callable:
    """loss(logits [P], keys [B]) -> (total distance, per-group distances)."""

    def loss(logits, keys):
        params = insert(base, fit_params, to_constrained(logits, fit_params))
        per_group = stats_lib.moment_distance(synthetic_statistics(params, keys, cfg, variability), real)
        return stats_lib.total_distance(per_group, joint_weight=joint_weight), per_group

    return loss


def step_keys(seed: int, step: int, batch: int) -> jax.Array:
    return sample_keys(seed, jnp.arange(step * batch, (step + 1) * batch))


@dataclasses.dataclass(frozen=True)
class FitResult:
    params: SimParams
    values: dict[str, float]  # path -> fitted value
    losses: np.ndarray  # [steps] loss per step (fresh keys each step)
    group_losses: dict[str, np.ndarray]  # group -> [steps]
    seconds: float  # wall time of this call (compilation included)
    step_seconds: float  # median time of a gradient step after compilation
    resumed_from: int  # step restored from a checkpoint (0: fresh start)


def _fingerprint(cfg, base, fit_params, real, seed, batch, lr, steps, joint_weight, variability) -> dict:
    # Every array of the summary (means, spreads, the joint whitener): a resume must see the same target.
    real_digest = float(sum(float(jnp.sum(a)) for v in real.values() for a in v.values()))
    return dict(
        sim=dataclasses.asdict(cfg),
        base=[float(get_leaf(base, p.path)) for p in fit_params],
        fit=[dataclasses.asdict(p) for p in fit_params],
        real_digest=round(real_digest, 5),
        seed=seed,
        batch=batch,
        lr=lr,
        steps=steps,
        joint_weight=joint_weight,
        variability=variability,
    )


def fit(
    cfg: SimConfig,
    base: SimParams,
    real: dict,
    *,
    steps: int = FIT_STEPS,
    batch: int = FIT_BATCH,
    lr: float = FIT_LR,
    seed: int = 0,
    fit_params: Sequence[FitParam] = DEFAULT_FIT_PARAMS,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 10,
    progress: bool = True,
    callback: Callable[[int, float], None] | None = None,
    joint_weight: float = 1.0,
    variability: float = 0.0,
) -> FitResult:
    """Adam on the bounded logits of ``fit_params``; resumes from ``checkpoint_dir`` when it holds a
    checkpoint of the same fit (same config, data, seed, batch, lr, start point), else raises. A larger
    ``steps`` than the checkpoint's extends the fit (the learning-rate schedule is that of the new
    ``steps`` from the resumed step on).
    ``callback(steps_done, loss)`` runs after each step (and after its checkpoint, if any).
    ``joint_weight``: how many groups the whitened ``joint`` term counts as in the loss (when present).
    ``variability``: each synthetic image of a step gets its own parameters drawn around the fitted ones
    (``svr_jax.variability``), so the fit matches the real eyes as a population, spread included, at
    the variability the data will be generated with."""
    import orbax.checkpoint as ocp
    from tqdm import tqdm

    if steps < 1 or batch < 1:
        raise ValueError(f"steps and batch must be >= 1, got steps={steps}, batch={batch}")
    fit_params = tuple(fit_params)
    started = time.perf_counter()
    optimizer = _optimizer(lr, steps)
    logits = to_unconstrained(select(base, fit_params), fit_params)
    state = dict(logits=logits, opt=optimizer.init(logits), step=jnp.asarray(0, jnp.int32),
                 losses=jnp.full((steps,), jnp.nan, jnp.float32),
                 group_losses={g: jnp.full((steps,), jnp.nan, jnp.float32) for g in real})
    meta = _fingerprint(cfg, base, fit_params, real, seed, batch, lr, steps, joint_weight, variability)
    manager = None
    resumed_from = 0
    if checkpoint_dir is not None:
        manager = ocp.CheckpointManager(
            Path(checkpoint_dir).absolute(),
            options=ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False),
        )
        latest = manager.latest_step()
        if latest is not None:
            # The fingerprint first (a small JSON item): restoring the state of another fit would fail on
            # array shapes before the mismatch could be named.
            saved = manager.restore(latest, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            mismatched = [k for k in meta if k != "steps" and json.dumps(saved.get(k)) != json.dumps(meta[k])]
            if mismatched:
                raise ValueError(f"checkpoint in {str(checkpoint_dir)!r} belongs to a different fit (differs in {mismatched}); "
                                 "use another checkpoint folder or resume=false")
            if latest > steps:
                raise ValueError(f"checkpoint in {str(checkpoint_dir)!r} is at step {latest}, past steps={steps}; "
                                 f"give steps >= {latest} or resume=false")
            saved_steps = int(saved.get("steps", steps))
            template = dict(state, losses=jnp.zeros((saved_steps,), jnp.float32),
                            group_losses={g: jnp.zeros((saved_steps,), jnp.float32) for g in real})
            restored = manager.restore(latest, args=ocp.args.Composite(state=ocp.args.StandardRestore(template)))["state"]
            # Uncommitted, as a fresh state: arrays committed to a device would make jit compile the step anew.
            restored = jax.tree.map(jnp.asarray, jax.device_get(restored))
            # A longer fit (steps raised) continues: its loss history grows, the new steps still NaN.
            extend = lambda a: jnp.concatenate([a[:steps], jnp.full((max(0, steps - a.shape[0]),), jnp.nan, jnp.float32)])  # noqa: E731
            state = dict(restored, losses=extend(restored["losses"]),
                         group_losses={g: extend(v) for g, v in restored["group_losses"].items()})
            resumed_from = int(state["step"])

    static = dict(cfg=cfg, fit_params=fit_params, lr=float(lr), steps=int(steps), joint_weight=float(joint_weight),
                  variability=float(variability))
    step_times = []
    bar = tqdm(total=steps, initial=resumed_from, desc="fit", unit="step", disable=not progress)
    for step in range(resumed_from, steps):
        t0 = time.perf_counter()
        state = _train_step(state, step_keys(seed, step, batch), base, real, **static)
        loss = float(state["losses"][step])
        step_times.append(time.perf_counter() - t0)
        bar.set_postfix(loss=f"{loss:.3f}")
        bar.update(1)
        if manager is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            manager.save(step + 1, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))
        if callback is not None:
            callback(step + 1, loss)
    bar.close()
    if manager is not None:
        manager.wait_until_finished()
        manager.close()
    values = to_constrained(state["logits"], fit_params)
    return FitResult(
        params=insert(base, fit_params, values),
        values={p.path: float(v) for p, v in zip(fit_params, np.asarray(values))},
        losses=np.asarray(state["losses"]),
        group_losses={g: np.asarray(v) for g, v in state["group_losses"].items()},
        seconds=time.perf_counter() - started,
        step_seconds=float(np.median(step_times[1:])) if len(step_times) > 1 else float("nan"),
        resumed_from=resumed_from,
    )


def _optimizer(lr: float, steps: int) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(5.0), optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.1)))


# One program per (config, fitted parameters, schedule): the start point and the real summary are
# arguments, not constants baked into the program, so a resumed fit, or a fit of the same parameters
# to other data, reuses the compiled step (and the persistent XLA cache) instead of compiling anew.
@functools.partial(jax.jit, static_argnames=("cfg", "fit_params", "lr", "steps", "joint_weight", "variability"))
def _train_step(state, keys, base, real, *, cfg, fit_params, lr, steps, joint_weight, variability):
    loss_fn = make_loss(cfg, base, fit_params, real, joint_weight=joint_weight, variability=variability)
    (loss, groups), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["logits"], keys)
    grads = jnp.nan_to_num(grads)
    updates, opt = _optimizer(lr, steps).update(grads, state["opt"], state["logits"])
    i = state["step"]
    return dict(
        logits=optax.apply_updates(state["logits"], updates),
        opt=opt,
        step=i + 1,
        losses=state["losses"].at[i].set(loss),
        group_losses={g: state["group_losses"][g].at[i].set(groups[g]) for g in groups},
    )


@functools.lru_cache(maxsize=8)
def _statistics_fn(cfg: SimConfig):
    return jax.jit(lambda x: stats_lib.batch_statistics(x, pixel_um=cfg.field.pixel_um))


@functools.lru_cache(maxsize=8)
def _images_fn(cfg: SimConfig):
    """One program per config for every spread (an argument)."""
    return jax.jit(functools.partial(population_images, cfg=cfg))


def real_summary(images: np.ndarray, cfg: SimConfig, *, chunk: int = 16, joint: bool = False,
                 joint_shrinkage: float = stats_lib.JOINT_SHRINKAGE) -> tuple[dict, dict]:
    """Real images [N, H, W] -> (per-image statistics {group: [N, k]}, summary {group: {mean, sd}});
    ``joint``: the summary also holds the feature correlation, shrunk by ``joint_shrinkage``
    (``stats.summarize``)."""
    fn = _statistics_fn(cfg)
    images = np.asarray(images, np.float32)
    n = len(images)
    padded = np.concatenate([images, np.zeros((-n % chunk,) + images.shape[1:], np.float32)])  # one shape: one compile
    parts = [jax.device_get(fn(jnp.asarray(padded[i : i + chunk]))) for i in range(0, len(padded), chunk)]
    per_image = {g: np.concatenate([p[g] for p in parts])[:n] for g in parts[0]}
    summary = stats_lib.summarize({g: jnp.asarray(v) for g, v in per_image.items()}, joint=joint, joint_shrinkage=joint_shrinkage)
    return per_image, summary


def simulate_images(params: SimParams, cfg: SimConfig, *, n: int, seed: int, variability: float = 0.0, chunk: int = 16) -> np.ndarray:
    """[n, H, W] synthetic images (fixed chunk shape: one compilation), each sample's parameters drawn
    around ``params`` at ``variability`` (``svr_jax.variability``; 0: ``params`` itself)."""
    fn, spread = _images_fn(cfg), jnp.float32(variability)
    out = []
    for start in range(0, n, chunk):
        out.append(np.asarray(fn(sample_keys(seed, jnp.arange(start, start + chunk)), as_float32(params), variability=spread)))
    return np.concatenate(out)[:n]
