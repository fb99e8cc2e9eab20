"""The per-parameter table (``svr_jax.parameters``) and the presets read against it."""

import dataclasses

import pytest

import svr_jax as svr
from svr_jax.parameters import DEFAULT_FIT_PARAMS, active_fit_params, parameter_table, unit_of
from svr_jax.presets import conf_dir, preset_params


def test_every_entry_names_a_params_leaf_with_sane_metadata():
    params = svr.default_params(svr.preset("3mm"))
    table = parameter_table()
    assert len(table) >= len(DEFAULT_FIT_PARAMS)
    for path, info in table.items():
        group, name = path.split(".")
        assert name in {f.name for f in dataclasses.fields(getattr(params, group))}, path
        assert info.unit == unit_of(name)
        assert info.valid[0] < info.valid[1], path
        if info.fit_bounds is not None:
            lo, hi = info.fit_bounds
            assert info.valid[0] <= lo < hi <= info.valid[1], path
        assert info.spread is None or info.spread > 0, path
    assert table["vessels.faz_area_mm2"].unit == "mm2" and table["appearance.psf_sigma_um"].unit == "um"
    assert table["appearance.mtf_4_cpmm"].unit == "" and table["appearance.border_gain_0p1_mm"].unit == ""


@pytest.mark.parametrize("fov", sorted(p.stem for p in (conf_dir() / "fov").glob("*.yaml")))
def test_presets_hold_no_dead_value_and_stay_in_the_fit_bounds(fov):
    from omegaconf import OmegaConf

    sim, params = preset_params(fov)
    active = {p.path for p in active_fit_params(DEFAULT_FIT_PARAMS, sim)}
    dead = {p.path for p in DEFAULT_FIT_PARAMS} - active
    assert dead, "every preset has a noise model or white point not in use"
    stored = OmegaConf.to_container(OmegaConf.load(conf_dir() / "fov" / f"{fov}.yaml").params)
    written = {f"{g}.{n}" for g, values in stored.items() for n in values}
    assert not written & dead, f"{fov}: values the image does not depend on: {sorted(written & dead)}"
    table = parameter_table()
    for path in written & set(table):
        bounds = table[path].fit_bounds
        if bounds is not None:
            group, name = path.split(".")
            value = float(getattr(getattr(params, group), name))
            assert bounds[0] <= value <= bounds[1], (fov, path, value, bounds)


def test_the_static_modes_pick_the_dead_values_and_refuse_unknown_modes():
    """The noise model and the white point are static options of SimConfig: the parameter of the mode
    not in use is left out of a fit whatever its value; a mode the simulator does not know is refused."""
    from svr_jax.config import SimConfig, validate

    paths = {p.path for p in DEFAULT_FIT_PARAMS}
    for noise, white, dead in (("speckle", "fixed", {"appearance.oct_noise"}),
                               ("decorrelation", "percentile", {"appearance.speckle", "appearance.white_point"})):
        active = {p.path for p in active_fit_params(DEFAULT_FIT_PARAMS, SimConfig(noise=noise, white_point=white))}
        assert paths - active == dead
    for field, value in (("noise", "gaussian"), ("white_point", "auto")):
        with pytest.raises(ValueError, match=field):
            validate(dataclasses.replace(SimConfig(), **{field: value}))
    with pytest.raises(ValueError, match="decorrelation_looks"):
        validate(SimConfig(noise="decorrelation", decorrelation_looks=0))
