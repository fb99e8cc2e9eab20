"""The fit: statistics are differentiable, reparametrisation stays in range, a tiny fit lowers the loss
and resumes from its orbax checkpoint; the ``svr fit`` front end rejects bad input in one line."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import svr_jax as svr
from svr_jax import fit as fit_lib
from svr_jax import stats as stats_lib

REPO = Path(__file__).resolve().parents[2]


def tiny_config() -> svr.SimConfig:
    """The 3 mm preset's imaging model on a 1 mm, 64 px field with small trees (the fit tests move
    appearance parameters; small trees make a program that compiles in a fraction of the time)."""
    cfg = svr.preset("3mm")
    growth = svr.GrowthConfig(n_roots=4, generations=3, steps_per_branch=3, capillary_spacing_um=40.0, deep_spacing_um=55.0)
    return dataclasses.replace(cfg, field=dataclasses.replace(cfg.field, size_px=64, fov_mm=1.0), growth=growth)


def test_statistics_shapes_and_gradients():
    image = jax.random.uniform(jax.random.key(0), (48, 48))
    stats = stats_lib.image_statistics(image, pixel_um=10.0)
    assert set(stats) == set(stats_lib.STAT_GROUPS)
    assert stats["histogram"].shape == (stats_lib.HIST_BINS,)
    np.testing.assert_allclose(float(jnp.sum(stats["histogram"])), 1.0, rtol=1e-5)
    assert stats_lib.feature_vector(stats).shape == (36,)
    jitted = jax.jit(lambda im: stats_lib.image_statistics(im, pixel_um=10.0))(image)
    for group in stats:
        np.testing.assert_allclose(np.asarray(stats[group]), np.asarray(jitted[group]), rtol=2e-4, atol=2e-5)
    grad = jax.grad(lambda im: sum(jnp.sum(v) for v in stats_lib.image_statistics(im, pixel_um=10.0).values()))(image)
    assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad).sum()) > 0


def test_moment_distance_is_zero_on_itself_and_grows_with_a_shift():
    images = jax.random.uniform(jax.random.key(1), (6, 32, 32))
    batch = stats_lib.batch_statistics(images, pixel_um=10.0)
    real = stats_lib.summarize(batch)
    same = stats_lib.total_distance(stats_lib.moment_distance(batch, real))
    shifted = stats_lib.total_distance(stats_lib.moment_distance(stats_lib.batch_statistics(0.7 * images, pixel_um=10.0), real))
    assert float(same) < 1e-6 < float(shifted)


def test_total_distance_counts_the_joint_term_as_joint_weight_groups():
    per_group = dict(quantiles=jnp.float32(1.0), spectrum=jnp.float32(2.0), joint=jnp.float32(6.0))
    assert float(stats_lib.total_distance(per_group)) == 3.0  # plain mean
    assert float(stats_lib.total_distance(per_group, joint_weight=4.0)) == (1.0 + 2.0 + 4 * 6.0) / 6
    assert float(stats_lib.total_distance(per_group, joint_weight=0.0)) == 1.5 == float(stats_lib.group_total(per_group))


def _correlated_statistics(rng, n: int, shift: np.ndarray | None = None) -> dict:
    """Fake per-image statistics {group: [n, k]} whose 36 features are strongly correlated."""
    widths = dict(quantiles=5, spectrum=12, local_std=6, oriented=8, vessel=2, faz=3)
    latent = rng.normal(size=(n, 4))
    mixing = np.random.default_rng(99).normal(size=(4, 36))
    features = latent @ mixing + 0.05 * rng.normal(size=(n, 36)) + (0.0 if shift is None else shift)
    out, start = {}, 0
    for group, k in widths.items():
        out[group] = jnp.asarray(features[:, start:start + k], jnp.float32)
        start += k
    return out


@pytest.mark.parametrize("shrinkage", [stats_lib.JOINT_SHRINKAGE, 0.1])
def test_joint_distance_is_the_shrunk_mahalanobis_distance_and_sees_correlated_shifts(shrinkage):
    rng = np.random.default_rng(0)
    real_stats = _correlated_statistics(rng, 400)
    real = stats_lib.summarize(real_stats, joint=True, joint_shrinkage=shrinkage)
    # Oracle: the squared Mahalanobis distance of the means under the shrunk correlation, per feature.
    features = np.asarray(stats_lib.feature_vector(real_stats), np.float64)
    scale = np.asarray(stats_lib.spread_scale(dict(mean=features.mean(0), sd=features.std(0))))
    corr = np.cov(((features - features.mean(0)) / scale).T, bias=True)
    shrunk = (1 - shrinkage) * corr + shrinkage * np.diag(np.diag(corr))
    # A shift that breaks the correlation (half a real sd per feature, alternating signs) ...
    across = 0.5 * features.std(0) * np.where(np.arange(36) % 2 == 0, 1.0, -1.0)
    # ... and one along it (the same size, along the main direction of variation)
    along = features.std(0) * np.sign(np.linalg.eigh(corr)[1][:, -1]) * 0.5
    distances = {}
    for name, shift in (("across", across), ("along", along)):
        synthetic = _correlated_statistics(np.random.default_rng(1), 400, shift)
        got = stats_lib.moment_distance(synthetic, real)
        scaled = (np.asarray(stats_lib.feature_vector(synthetic), np.float64) - features.mean(0)) / scale
        delta, precision = scaled.mean(0), np.linalg.inv(shrunk + 1e-6 * np.eye(36))
        # ... less the batch mean's own sampling variance (the unbiased estimate)
        expected = (delta @ precision @ delta - np.trace(precision @ np.cov(scaled.T)) / len(scaled)) / 36
        np.testing.assert_allclose(float(got["joint"]), expected, rtol=2e-3)
        distances[name] = (float(got["joint"]), float(np.mean([got[g] for g in stats_lib.FEATURE_GROUPS])))
    # The per-feature terms rank the correlation-breaking shift below the other; the joint term ranks it
    # far above (4x), as a classifier two-sample test would (it separates along any direction).
    assert distances["across"][0] > 4 * distances["along"][0]
    assert distances["across"][1] < distances["along"][1]
    same = stats_lib.moment_distance(real_stats, real)
    assert float(same["joint"]) < 1e-6
    # The per-feature breakdown of the realism report sums to the plug-in squared distance (the oracle's
    # delta' P delta, no sampling correction), and its z are the oracle's mean offsets.
    z, terms = stats_lib.mahalanobis_terms(np.asarray(stats_lib.feature_vector(synthetic)), real)
    np.testing.assert_allclose(z, delta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(terms.sum(), delta @ precision @ delta, rtol=2e-3)


@pytest.mark.parametrize("size_px, fov_mm", [(304, 3.0), (400, 6.0)])
def test_feature_names_label_every_feature(size_px, fov_mm):
    names = stats_lib.feature_names(size_px, 1000.0 * fov_mm / size_px)
    stats = stats_lib.image_statistics(jnp.zeros((size_px, size_px)), pixel_um=1000.0 * fov_mm / size_px)
    assert len(names) == len(set(names)) == stats_lib.feature_vector(stats).shape[0]
    assert names[5] == {3.0: "power 0.8 cyc/mm", 6.0: "power 0.4 cyc/mm"}[fov_mm]  # lowest band: 2 / fov


def test_joint_distance_from_small_batches_is_unbiased():
    # A fit sees 16 images a step: the squared whitened batch mean alone overshoots the distance of the
    # means by the mean's variance (and its gradient would shrink the synthetic spread); the estimate does not.
    real = stats_lib.summarize(_correlated_statistics(np.random.default_rng(0), 400), joint=True)
    shift = 0.03 * np.asarray(real["joint"]["sd"])  # small: the batch mean's variance is then not negligible
    population = _correlated_statistics(np.random.default_rng(2), 16 * 300, shift)
    exact = float(stats_lib.moment_distance(population, real)["joint"])
    batches = [{g: v[i * 16:(i + 1) * 16] for g, v in population.items()} for i in range(300)]
    per_batch = np.array([float(stats_lib.moment_distance(b, real)["joint"]) for b in batches])
    target = real["joint"]
    scale, whitener = np.asarray(stats_lib.spread_scale(target)), np.asarray(target["whitener"])

    def squared_whitened_mean(b):  # the uncorrected estimate
        features = np.asarray(stats_lib.feature_vector(b), np.float64)
        return np.mean((whitener @ ((features.mean(0) - np.asarray(target["mean"])) / scale)) ** 2)

    naive = np.array([squared_whitened_mean(b) for b in batches])
    bias = naive.mean() - exact  # the batch mean's sampling variance (whitened variance / 16)
    assert exact > 0.02 and bias > 0.05 * exact
    # Averaged over batches the estimate lands on the population value, the uncorrected one does not.
    assert abs(per_batch.mean() - exact) < 0.1 * bias


def test_reparametrisation_stays_in_bounds_and_keeps_other_fields():
    cfg = tiny_config()
    params = svr.default_params(cfg)
    chosen = fit_lib.DEFAULT_FIT_PARAMS + fit_lib.EXTRA_FIT_PARAMS
    values = fit_lib.select(params, chosen)
    logits = fit_lib.to_unconstrained(values, chosen)
    span = np.asarray([p.hi - p.lo for p in chosen])
    back = np.asarray(fit_lib.to_constrained(logits, chosen))
    assert np.all(np.abs(back - np.asarray(values)) <= 1.1e-3 * span)  # values on a bound come back just inside it
    extreme = fit_lib.to_constrained(jnp.full(len(chosen), 1e4), chosen)
    assert all(np.float32(v) <= np.float32(p.hi) for v, p in zip(extreme, chosen))
    one = fit_lib.fit_param_by_path(["appearance.gain"])
    moved = fit_lib.insert(params, one, jnp.asarray([2.5]))
    assert float(moved.appearance.gain) == 2.5
    assert moved.vessels == params.vessels and float(moved.appearance.speckle) == float(params.appearance.speckle)
    assert fit_lib.fit_param_by_path(["vessels.branch_ratio"]) == fit_lib.EXTRA_FIT_PARAMS[:1]  # on request
    with pytest.raises(ValueError, match="cannot fit"):
        fit_lib.fit_param_by_path(["appearance.nope"])
    with pytest.raises(ValueError, match="names no parameter"):
        fit_lib.fit_param_by_path([])


class Interrupt(Exception):
    pass


# The tiny fits below share one fit (config, parameters, schedule, joint term): one compiled step.
TINY_FIT = dict(steps=8, batch=4, lr=0.2, progress=False)


def tiny_fit_problem():
    """(config, start, fitted parameters) of the tiny fits."""
    cfg = tiny_config()
    return cfg, svr.default_params(cfg), fit_lib.fit_param_by_path(["appearance.gain", "appearance.speckle"])


def tiny_fit_setup(n_real: int):
    """``tiny_fit_problem`` and a real summary (with the joint term) of the simulator's own images at
    gain 2.2, speckle 0.8."""
    cfg, start, chosen = tiny_fit_problem()
    target = dataclasses.replace(start, appearance=dataclasses.replace(start.appearance, gain=2.2, speckle=0.8))
    _, real = fit_lib.real_summary(fit_lib.simulate_images(target, cfg, n=n_real, seed=99), cfg, joint=True)
    return cfg, start, real, chosen


def test_tiny_fit_lowers_the_loss_and_resumes(tmp_path):
    cfg, start, real, chosen = tiny_fit_setup(16)
    kwargs = dict(TINY_FIT, fit_params=chosen, checkpoint_dir=tmp_path / "ck", checkpoint_every=2)

    def stop_after_4(done, loss):
        if done == 4:
            raise Interrupt

    with pytest.raises(Interrupt):
        fit_lib.fit(cfg, start, real, callback=stop_after_4, **kwargs)
    result = fit_lib.fit(cfg, start, real, **kwargs)
    assert result.resumed_from == 4
    assert np.all(np.isfinite(result.losses))
    assert result.losses[-2:].mean() < 0.5 * result.losses[:2].mean()
    assert abs(result.values["appearance.gain"] - 1.1) > 0.2  # moved from the default towards the target
    # A checkpoint of another fit is refused, not silently resumed.
    with pytest.raises(ValueError, match="different fit"):
        fit_lib.fit(cfg, start, real, **{**kwargs, "lr": 0.1})


def test_tiny_fit_with_the_joint_term_lowers_it():
    cfg, start, real, chosen = tiny_fit_setup(48)
    result = fit_lib.fit(cfg, start, real, fit_params=chosen, **TINY_FIT)
    joint = result.group_losses["joint"]
    assert np.all(np.isfinite(joint)) and joint[-2:].mean() < 0.5 * joint[:2].mean()


def test_a_checkpoint_fitted_to_another_joint_shrinkage_is_refused(tmp_path):
    # Same images, same means: only the joint term's whitener differs, and the fit's target with it.
    cfg, start, chosen = tiny_fit_problem()
    images = fit_lib.simulate_images(start, cfg, n=8, seed=5)
    kwargs = dict(TINY_FIT, fit_params=chosen, checkpoint_dir=tmp_path / "ck", checkpoint_every=4)
    summaries = [fit_lib.real_summary(images, cfg, joint=True, joint_shrinkage=s)[1] for s in (0.1, 0.01)]
    fit_lib.fit(cfg, start, summaries[0], **kwargs)
    assert fit_lib.fit(cfg, start, summaries[0], **kwargs).resumed_from == TINY_FIT["steps"]
    with pytest.raises(ValueError, match="different fit"):
        fit_lib.fit(cfg, start, summaries[1], **kwargs)


def test_less_shrinkage_weighs_the_tight_directions_more():
    # A shift along the direction in which real features barely vary (a near-exact relation between
    # them) is what a classifier sees first; the joint term sees it in proportion to 1 / shrinkage.
    real_stats = _correlated_statistics(np.random.default_rng(0), 400)
    features = np.asarray(stats_lib.feature_vector(real_stats), np.float64)
    scale = features.std(0)
    _, vectors = np.linalg.eigh(np.cov((features / scale).T))
    ratios = {}
    for name, direction in (("tight", vectors[:, 0]), ("loose", vectors[:, -1])):
        shifted = _correlated_statistics(np.random.default_rng(1), 400, 0.2 * scale * direction)
        joint = [float(stats_lib.moment_distance(shifted, stats_lib.summarize(real_stats, joint=True, joint_shrinkage=s))["joint"])
                 for s in (0.01, 0.1)]
        ratios[name] = joint[0] / joint[1]
    assert ratios["tight"] > 5.0
    assert 0.8 < ratios["loose"] < 1.25


def test_population_images_draw_each_samples_parameters_like_a_loop_over_keys():
    # The fit at variability > 0 sees the population that `simulate_images(..., variability=)` and the
    # exporters make: each key simulated with its own parameter draw. Oracle: each key's parameters
    # drawn outside the program and simulated at variability 0 (the spread is an argument of one
    # program, the tiny fits' own).
    from svr_jax.variability import per_sample_params

    cfg = tiny_config()
    params = svr.default_params(cfg)
    keys = fit_lib.step_keys(3, 0, 3)
    got = fit_lib.simulate_images(params, cfg, n=3, seed=3, variability=0.5)
    for i in range(3):
        oracle = fit_lib.simulate_images(per_sample_params(keys[i], params, 0.5), cfg, n=3, seed=3)[i]
        np.testing.assert_allclose(got[i], oracle, atol=1e-4)
    fixed = fit_lib.simulate_images(params, cfg, n=3, seed=3)
    assert np.abs(fixed - got).max() > 0.05  # the draws did change the images


def test_cli_rejects_bad_data_in_one_line(tmp_path, capsys):
    from svr_jax.cli import main

    assert main(["fit", f"data={tmp_path / 'missing'}", f"out={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("svr fit: error:") and "missing" in err and "\n" not in err
    (tmp_path / "empty").mkdir()
    assert main(["fit", f"data={tmp_path / 'empty'}", f"out={tmp_path / 'out'}"]) == 2
    assert "no images found" in capsys.readouterr().err
    assert main(["fit", f"data={tmp_path}", "steps=0"]) == 2
    assert "steps must be >= 1" in capsys.readouterr().err
    assert main(["fit", f"data={tmp_path}", "variability=-0.1"]) == 2
    assert "variability must be >= 0" in capsys.readouterr().err


def test_write_preset_keeps_header_and_other_values(tmp_path, monkeypatch):
    from omegaconf import OmegaConf

    from svr_jax.fit_report import write_preset

    conf = tmp_path / "conf"
    shutil.copytree(REPO / "svr_jax" / "conf", conf)
    (conf / "fov" / "3mm.yaml").write_text("# header\nname: 3mm\nparams:\n  vessels:\n    murray_exponent: 2.9\n")
    monkeypatch.setenv("SVR_CONF_DIR", str(conf))
    path = write_preset("3mm", {"appearance.gain": 1.23456, "vessels.capillary_presence": 0.9}, tmp_path / "out" / "3mm.yaml")
    assert (conf / "fov" / "3mm.yaml").read_text().endswith("murray_exponent: 2.9\n")  # the installed preset is untouched
    text = path.read_text()
    assert text.startswith("# header")
    node = OmegaConf.load(path)
    assert node.params.appearance.gain == pytest.approx(1.235)
    assert node.params.vessels.murray_exponent == 2.9 and node.params.vessels.capillary_presence == 0.9
    from svr_jax.presets import sim_and_params
    from svr_jax.commands.schema import overrides_dict

    _, params = sim_and_params("3mm", None, None, overrides_dict(OmegaConf.to_container(node.params)), {})
    assert float(params.appearance.gain) == pytest.approx(1.235)
