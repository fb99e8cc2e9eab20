"""The parts of the model that realism depends on: an isotropic capillary mesh, the parafoveal fade,
and the fitted presets being what the commands use."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import svr_jax as svr
from svr_jax import growth
from svr_jax.appearance import apply_appearance, white_point
from svr_jax.faz import sample_faz


def _mesh(cfg, key, **overrides):
    vp = svr.VesselParams()
    faz = sample_faz(jax.random.key(1), center_mm=jnp.asarray([0.5 * cfg.field.fov_mm] * 2), area_mm2=0.1, area_sd_mm2=0.0,
                     irregularity=0.0, offset_sd_mm=0.0)
    kwargs = dict(cfg=cfg, faz=faz, spacing_um=40.0, subdivisions=1, kind=2, radius_um=vp.capillary_radius_um, jitter=0.0,
                  wiggle=0.0, presence=1.0)
    kwargs.update(overrides)
    return growth.grow_mesh(key, **kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_capillary_mesh_has_no_preferred_direction(small_cfg, seed):
    """Length-weighted orientation tensor of the mesh edges: both eigenvalues equal within 10 % (the old
    brick lattice had twice as much horizontal as vertical capillary length: ratio 0.5)."""
    mesh = _mesh(small_cfg, jax.random.key(seed))
    d = np.asarray(mesh.end_mm - mesh.start_mm)[np.asarray(mesh.valid)]
    length = np.hypot(d[:, 0], d[:, 1])
    u = d / length[:, None]
    tensor = (length[:, None, None] * u[:, :, None] * u[:, None, :]).sum(0)
    eig = np.linalg.eigvalsh(tensor)
    assert eig[0] / eig[1] > 0.9, eig


def test_capillary_mesh_edges_have_one_length(small_cfg):
    """Without jitter and wiggle the row edges (zig-zag) and the row-to-row edges of the honeycomb are
    equally long on average, HEX_EDGE spacings (the gentle warp stretches both alike)."""
    mesh = _mesh(small_cfg, jax.random.key(3))
    rows, cols = growth._mesh_shape(small_cfg.field.fov_mm, 40.0)
    n_row_edges = rows * (cols - 1)  # segment order: row edges first, then row-to-row edges
    valid = np.asarray(mesh.valid)
    length_um = 1000.0 * np.asarray(mesh.length_mm())
    row_edges, cross_edges = length_um[:n_row_edges][valid[:n_row_edges]], length_um[n_row_edges:][valid[n_row_edges:]]
    assert len(cross_edges) == pytest.approx(len(row_edges) / 2, rel=0.1)  # three edges per node pair: 2 row, 1 cross
    assert np.mean(row_edges) == pytest.approx(40.0 * growth.HEX_EDGE, rel=0.05)
    assert np.mean(cross_edges) == pytest.approx(40.0 * growth.HEX_EDGE, rel=0.05)


def test_mesh_covers_the_field_when_turned(small_cfg):
    """Every pixel of the field lies within one spacing of a mesh node, whatever the random turn."""
    size = small_cfg.field.fov_mm
    probe = np.stack(np.meshgrid(np.linspace(0.02, size - 0.02, 25), np.linspace(0.02, size - 0.02, 25)), -1).reshape(-1, 2)
    for seed in range(4):
        mesh = _mesh(small_cfg, jax.random.key(seed), faz=sample_faz(jax.random.key(1), center_mm=jnp.asarray([-5.0, -5.0]),
                                                                    area_mm2=0.05, area_sd_mm2=0.0, irregularity=0.0, offset_sd_mm=0.0))
        nodes = np.asarray(mesh.start_mm)
        nearest = np.min(np.linalg.norm(probe[:, None] - nodes[None], axis=-1), axis=1)
        assert nearest.max() < 0.040, (seed, nearest.max())


def _flat_appearance(**values):
    ap = svr.AppearanceParams()
    quiet = dict(texture_strength=0.0, speckle=0.0, background=0.0, background_noise=0.0, psf_sigma_um=0.5, falloff=0.0,
                 illumination_sd=0.0, line_artifact_rate=0.0, line_artifact_strength=0.0, deep_signal=0.0, gain=1.0, gamma=1.0)
    return dataclasses.replace(ap, **{**quiet, **values})


def test_parafoveal_fade(small_cfg):
    """Constant signal: the image is darker by (1 - parafovea_dim) at the FAZ border, recovers with
    distance, and parafovea_dim=0 (or no FAZ map) changes nothing."""
    size = small_cfg.field.size_px
    signal = jnp.full((size, size), 0.5)
    # A FAZ border along column 10: depth decreases to the right (outside), 1 px = 15.6 µm.
    px_mm = small_cfg.field.pixel_um / 1000.0
    depth = jnp.broadcast_to((10.0 - jnp.arange(size)) * px_mm, (size, size))
    key = jax.random.key(0)
    faded = np.asarray(apply_appearance(key, _flat_appearance(parafovea_dim=0.8, parafovea_mm=0.1), signal, signal, small_cfg, depth))
    plain = np.asarray(apply_appearance(key, _flat_appearance(parafovea_dim=0.0), signal, signal, small_cfg, depth))
    none = np.asarray(apply_appearance(key, _flat_appearance(parafovea_dim=0.8), signal, signal, small_cfg, None))
    np.testing.assert_allclose(plain, none, atol=1e-6)
    row = faded[size // 2]
    expected_border = 1.0 - np.exp(-0.5 * (1.0 - 0.8))
    assert row[10] == pytest.approx(expected_border, rel=0.02)
    assert np.all(np.diff(row[12:60]) > 0)  # recovers monotonically outside
    assert row[-5] == pytest.approx(plain[size // 2, -5], rel=0.01)  # 1.3 mm out: e^-13, fully recovered


def test_foveal_background_thins_with_the_slab(small_cfg):
    """No vessels, a constant noise floor: at and inside the FAZ border it is down by
    foveal_background_dim (the slab holds little tissue there), recovering outside over parafovea_mm;
    0 changes nothing."""
    size = small_cfg.field.size_px
    zero = jnp.zeros((size, size))
    px_mm = small_cfg.field.pixel_um / 1000.0
    depth = jnp.broadcast_to((10.0 - jnp.arange(size)) * px_mm, (size, size))  # border at column 10
    key = jax.random.key(0)
    thinned = np.asarray(apply_appearance(key, _flat_appearance(background=0.2, foveal_background_dim=0.75, parafovea_mm=0.1),
                                          zero, zero, small_cfg, depth))[size // 2]
    plain = np.asarray(apply_appearance(key, _flat_appearance(background=0.2), zero, zero, small_cfg, depth))[size // 2]
    np.testing.assert_allclose(plain, 1.0 - np.exp(-0.2), rtol=1e-4)  # the signal's fade leaves the floor alone
    assert thinned[3] == pytest.approx(1.0 - np.exp(-0.2 * 0.25), rel=0.01)  # inside the FAZ
    assert np.all(np.diff(thinned[12:60]) > 0)
    assert thinned[-5] == pytest.approx(plain[-5], rel=0.01)


def test_border_profiles_scale_signal_and_floor_by_their_knot_gains(small_cfg):
    """Constant signal (then a constant floor, no vessels): with the parametric fades off, the image is
    scaled by exp(the piecewise-linear log gain) at each pixel's distance outside the FAZ border; the
    signal's profile leaves the floor alone and vice versa; all-zero gains change nothing."""
    from svr_jax.appearance import BORDER_FLOOR_FIELDS, BORDER_GAIN_FIELDS, BORDER_KNOTS_MM

    size = small_cfg.field.size_px
    px_mm = small_cfg.field.pixel_um / 1000.0
    depth = jnp.broadcast_to((10.0 - jnp.arange(size)) * px_mm, (size, size))  # border at column 10
    outside_mm = -np.asarray(depth[0])
    gains = (0.4, -0.6, 0.3, -0.2, 0.5, -0.3)
    expected = np.exp(np.interp(outside_mm, BORDER_KNOTS_MM, gains + (0.0,)))
    key = jax.random.key(0)
    signal, zero = jnp.full((size, size), 0.3), jnp.zeros((size, size))
    quiet = dict(parafovea_dim=0.0, foveal_background_dim=0.0, gain=1.0)
    cases = ((BORDER_GAIN_FIELDS, BORDER_FLOOR_FIELDS, signal, 0.0), (BORDER_FLOOR_FIELDS, BORDER_GAIN_FIELDS, zero, 0.3))
    for fields, other, sig, floor in cases:
        profiled = _flat_appearance(background=floor, **quiet, **dict(zip(fields, gains)))
        unaffected = _flat_appearance(background=floor, **quiet, **dict(zip(other, gains)))
        plain = _flat_appearance(background=floor, **quiet)
        got = np.asarray(apply_appearance(key, profiled, sig, zero, small_cfg, depth))[size // 2]
        base = np.asarray(apply_appearance(key, plain, sig, zero, small_cfg, depth))[size // 2]
        np.testing.assert_allclose(base, 1.0 - np.exp(-0.3), rtol=1e-4)
        # The display is 1 - exp(-x): invert it to compare the linear signal.
        np.testing.assert_allclose(-np.log1p(-got) / 0.3, expected, rtol=2e-3)
        np.testing.assert_allclose(np.asarray(apply_appearance(key, unaffected, sig, zero, small_cfg, depth))[size // 2], base, rtol=1e-5)


def test_field_profile_is_a_radial_gain_from_the_centre(small_cfg):
    """field_gain_*: log gain piecewise linear in the distance from the field centre (half-sides), 0 at
    the centre; a constant signal shows it directly."""
    from svr_jax.appearance import FIELD_GAIN_FIELDS, FIELD_KNOTS

    size = small_cfg.field.size_px
    gains = (0.2, -0.3, 0.4, -0.5)
    signal = jnp.full((size, size), 0.3)
    key = jax.random.key(0)
    got = np.asarray(apply_appearance(key, _flat_appearance(**dict(zip(FIELD_GAIN_FIELDS, gains))), signal, signal, small_cfg))
    yy, xx = np.meshgrid(np.linspace(-1.0, 1.0, size), np.linspace(-1.0, 1.0, size), indexing="ij")
    expected = 0.3 * np.exp(np.interp(np.hypot(xx, yy), FIELD_KNOTS, (0.0,) + gains))
    np.testing.assert_allclose(-np.log1p(-got), expected, rtol=2e-3)


def test_fitted_presets_are_the_command_defaults():
    """`svr generate fov=...` uses conf/fov/<fov>.yaml: the fitted values, not the library defaults."""
    from omegaconf import OmegaConf

    from svr_jax.presets import conf_dir
    from svr_jax.presets import preset_params

    presets = sorted(p.stem for p in (conf_dir() / "fov").glob("*.yaml"))
    assert presets == sorted(svr.config.PRESETS)  # every preset has its fitted values, and every file a preset
    for fov in presets:
        cfg, params = preset_params(fov)
        fitted = OmegaConf.to_container(OmegaConf.load(conf_dir() / "fov" / f"{fov}.yaml").params)
        assert fitted, f"conf/fov/{fov}.yaml has no fitted params"
        for group, values in fitted.items():
            for name, value in values.items():
                assert float(getattr(getattr(params, group), name)) == pytest.approx(value), (fov, group, name)
        assert params != svr.default_params(cfg)
    assert preset_params("3mm")[0].noise == "decorrelation" and preset_params("3mm_lognormal")[0].noise == "speckle"
    assert {preset_params(fov)[0].white_point for fov in ("3mm", "6mm", "3mm_lognormal")} == {"percentile"}


def test_transfer_function_scales_each_frequency_by_its_gain():
    """A cosine of frequency f (cycles/mm) comes out scaled by exp(log gain(f)): the knot's value at a
    knot, the log-frequency interpolation between knots; zero gains leave the image unchanged."""
    from svr_jax.appearance import MTF_KNOTS_CPMM, apply_transfer, transfer_log_gain

    pixel_um, size = 10.0, 200
    x_mm = (np.arange(size) + 0.5) * pixel_um / 1000.0
    ap = dataclasses.replace(svr.AppearanceParams(), mtf_4_cpmm=-0.4, mtf_8_cpmm=0.5, mtf_16_cpmm=0.2)
    for f_cpmm, expected in ((8.0, 0.5), (10.0, 0.5 + (0.2 - 0.5) * np.log(10 / 8) / np.log(2)), (5.0, -0.4 + 0.9 * np.log(5 / 4) / np.log(2))):
        wave = np.cos(2 * np.pi * f_cpmm * x_mm)[None, :] * np.ones((size, 1))
        out = np.asarray(apply_transfer(jnp.asarray(wave + 1.0, jnp.float32), ap, pixel_um)) - 1.0
        inner = slice(40, -40)  # away from the reflect-padded edges
        amplitude = np.sqrt(2 * np.mean(out[inner, inner] ** 2)) / np.sqrt(2 * np.mean(wave[inner, inner] ** 2))
        assert abs(np.log(amplitude) - expected) < 0.03, (f_cpmm, np.log(amplitude), expected)
        assert abs(float(transfer_log_gain(ap, jnp.asarray(f_cpmm))) - expected) < 1e-5
    assert len(MTF_KNOTS_CPMM) == 6
    image = jax.random.uniform(jax.random.key(0), (64, 64))
    np.testing.assert_allclose(np.asarray(apply_transfer(image, svr.AppearanceParams(), pixel_um)), np.asarray(image), atol=1e-5)


def test_psf_aspect_blurs_the_slow_axis_more():
    """The separable blur with an aspect matches scipy's anisotropic Gaussian (the oracle) inside the
    image; aspect 1 is the isotropic blur."""
    from scipy.ndimage import gaussian_filter

    from svr_jax.appearance import gaussian_blur

    image = np.asarray(jax.random.uniform(jax.random.key(3), (80, 80)))
    sigma, aspect = 1.2, 1.8
    got = np.asarray(gaussian_blur(jnp.asarray(image), sigma, max_sigma_px=3.0, aspect=aspect))
    want = gaussian_filter(image, (sigma * np.sqrt(aspect), sigma / np.sqrt(aspect)), mode="nearest", truncate=9.0 / (sigma * np.sqrt(aspect)))
    np.testing.assert_allclose(got[12:-12, 12:-12], want[12:-12, 12:-12], atol=2e-3)
    gy, gx = np.diff(got, axis=0), np.diff(got, axis=1)
    assert np.mean(gy**2) < 0.6 * np.mean(gx**2)
    iso = np.asarray(gaussian_blur(jnp.asarray(image), sigma, max_sigma_px=3.0))
    np.testing.assert_allclose(iso[12:-12, 12:-12], gaussian_filter(image, sigma, mode="nearest", truncate=9.0 / sigma)[12:-12, 12:-12], atol=2e-3)


def test_tone_curve_is_monotone_and_piecewise_linear():
    """Log slopes s_i over fifths of [0, 1]: f(0) = 0, f(1) = 1, increasing, slope exp(s_i) / mean exp(s),
    and the identity at s = 0."""
    from svr_jax.appearance import TONE_FIELDS, tone_curve

    x = jnp.linspace(0.0, 1.0, 501)
    identity = np.asarray(tone_curve(x, svr.AppearanceParams()))
    np.testing.assert_allclose(identity, np.asarray(x), atol=1e-6)
    slopes = (0.8, -0.5, 0.0, 0.3, -1.0)
    ap = dataclasses.replace(svr.AppearanceParams(), **dict(zip(TONE_FIELDS, slopes)))
    y = np.asarray(tone_curve(x, ap))
    assert y[0] == pytest.approx(0.0, abs=1e-6) and y[-1] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(y) > 0)
    expected = np.exp(slopes) / np.mean(np.exp(slopes))
    measured = [(y[100 * i + 90] - y[100 * i + 10]) / 0.16 for i in range(5)]  # inside each fifth
    np.testing.assert_allclose(measured, expected, rtol=1e-3)


def test_detail_filter_scales_bright_and_dark_deviations_apart():
    """Against a slow reference (scipy's Gaussian neighbourhood, pixel by pixel): each pixel's deviation
    from its 0.7 px neighbourhood, scaled by the bright gain where positive and the dark gain where
    negative; gains of 1 return the image bit for bit; the gradients reach both gains."""
    from scipy.ndimage import gaussian_filter

    from svr_jax.appearance import DETAIL_SIGMA_PX, detail_filter

    image = np.asarray(jax.random.uniform(jax.random.key(5), (48, 40)), np.float32)
    assert np.array_equal(np.asarray(detail_filter(jnp.asarray(image), svr.AppearanceParams())), image)
    bright, dark = 1.3, 0.6
    ap = dataclasses.replace(svr.AppearanceParams(), detail_bright_gain=bright, detail_dark_gain=dark)
    got = np.asarray(detail_filter(jnp.asarray(image), ap))
    low = gaussian_filter(image.astype(np.float64), DETAIL_SIGMA_PX, mode="nearest", truncate=3.0 / DETAIL_SIGMA_PX)
    want = np.empty_like(low)
    for (i, j), value in np.ndenumerate(image):
        deviation = value - low[i, j]
        want[i, j] = low[i, j] + (bright if deviation > 0 else dark) * deviation
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Bright pixels rise, dark ones rise too (their pits are shallower): the mean goes up.
    assert got.mean() > image.mean()

    def mean_out(gains):
        return jnp.mean(detail_filter(jnp.asarray(image), dataclasses.replace(svr.AppearanceParams(), detail_bright_gain=gains[0], detail_dark_gain=gains[1])) ** 2)

    grad = np.asarray(jax.grad(mean_out)(jnp.asarray([1.0, 1.0])))
    assert grad[0] > 0 and grad[1] < 0  # more of the bright deviations / of the dark pits


def test_saturated_fraction_takes_the_white_point_from_the_image(small_cfg):
    """white_point="percentile", saturated_fraction f: the white point is the image's k-th brightest pixel,
    k = round(f x pixels) (oracle: a full sort), so the brightest f of the pixels saturate whatever the
    scan's brightness, as in the exported scans; "fixed" ignores f."""
    image = jax.random.uniform(jax.random.key(0), (40, 50))
    ranked = np.sort(np.asarray(image).reshape(-1))[::-1]
    for fraction, k in ((0.01, 20), (0.0126, 25), (0.04, 80), (1e-5, 1), (0.0, 1)):
        got = float(white_point(image, _flat_appearance(saturated_fraction=fraction), "percentile"))
        assert got == ranked[k - 1]
    fixed = _flat_appearance(white_point=0.8, saturated_fraction=0.04)
    assert float(white_point(image, fixed, "fixed")) == pytest.approx(0.8)

    cfg = dataclasses.replace(small_cfg, white_point="percentile")
    size = cfg.field.size_px
    signal = jax.random.uniform(jax.random.key(1), (size, size))
    key = jax.random.key(2)
    n_pixels = size * size
    for brightness in (0.5, 2.0):
        out = np.asarray(apply_appearance(key, _flat_appearance(saturated_fraction=0.02), brightness * signal, signal, cfg))
        assert np.sum(out >= 1.0) == round(0.02 * n_pixels)
    # The fit's gradients pass through the image's own white point (to the k-th brightest pixel).
    flat = _flat_appearance(saturated_fraction=0.02)
    grad = jax.grad(lambda gamma: jnp.mean(apply_appearance(key, dataclasses.replace(flat, gamma=gamma), signal, signal, cfg)))(1.0)
    assert np.isfinite(float(grad)) and float(grad) < 0  # a higher gamma darkens the mid-tones below the fixed top
    pixel_grad = np.asarray(jax.grad(lambda img: white_point(img, flat, "percentile"))(image))
    assert np.sum(pixel_grad != 0) == 1 and pixel_grad.reshape(-1)[np.argsort(-np.asarray(image).reshape(-1))[round(0.02 * 2000) - 1]] == 1.0


def test_white_point_saturates_the_brightest_pixels(small_cfg):
    """white_point w maps display value w to 1 and clips above: the image is min(plain / w, 1)."""
    size = small_cfg.field.size_px
    signal = jnp.linspace(0.0, 3.0, size)[None, :] * jnp.ones((size, 1))
    key = jax.random.key(2)
    plain = np.asarray(apply_appearance(key, _flat_appearance(), signal, signal, small_cfg))
    clipped = np.asarray(apply_appearance(key, _flat_appearance(white_point=0.8), signal, signal, small_cfg))
    assert plain.max() < 1.0  # the default clips nothing
    np.testing.assert_allclose(clipped, np.minimum(plain / 0.8, 1.0), atol=1e-6)
    assert 0.1 < np.mean(clipped == 1.0) < 0.9


def _circumferential_bias(mesh, centre, r_min_mm, r_max_mm):
    """Length-weighted mean of -cos 2(edge angle - radial angle) over the valid edges whose midpoints lie
    r_min..r_max from ``centre``: +1 all along circles round it, -1 all radial, 0 no preference."""
    start, end = np.asarray(mesh.start_mm), np.asarray(mesh.end_mm)
    keep = np.asarray(mesh.valid)
    d, mid = (end - start)[keep], (0.5 * (start + end))[keep] - np.asarray(centre)
    r = np.hypot(mid[:, 0], mid[:, 1])
    ring = (r > r_min_mm) & (r < r_max_mm)
    delta = np.arctan2(d[ring, 1], d[ring, 0]) - np.arctan2(mid[ring, 1], mid[ring, 0])
    length = np.hypot(d[ring, 0], d[ring, 1])
    return float(-np.sum(length * np.cos(2 * delta)) / np.sum(length))


def test_foveal_displacement_keeps_areas_and_runs_the_mesh_round_the_fovea(small_cfg):
    """A point r from the fovea lands at sqrt(r^2 + d^2) on the same ray; areas are kept (Jacobian
    determinant 1: node density unchanged); d = 0 is the identity; and the displaced mesh's edges next
    to the FAZ run along circles round it (the undisplaced honeycomb has no such preference)."""
    centre = jnp.asarray([0.75, 0.75])
    points = jax.random.uniform(jax.random.key(0), (256, 2), minval=0.0, maxval=1.5)
    np.testing.assert_array_equal(growth.displace_from_fovea(points, centre, 0.0), points)
    moved = growth.displace_from_fovea(points, centre, 0.2)
    r0, r1 = (np.hypot(*np.asarray(p - centre).T) for p in (points, moved))
    np.testing.assert_allclose(r1, np.sqrt(r0**2 + 0.2**2), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(moved - centre) / r1[:, None], np.asarray(points - centre) / r0[:, None], atol=1e-5)
    far = points[r0 > 0.05]
    jacobian = jax.vmap(jax.jacfwd(lambda p: growth.displace_from_fovea(p, centre, 0.2)))(far)
    np.testing.assert_allclose(np.linalg.det(np.asarray(jacobian)), 1.0, rtol=1e-3)

    key = jax.random.key(4)
    plain = _circumferential_bias(_mesh(small_cfg, key), centre, 0.2, 0.4)
    displaced = _mesh(small_cfg, key, displacement=growth.MAX_FOVEAL_DISPLACEMENT)
    assert abs(plain) < 0.05, plain
    assert _circumferential_bias(displaced, centre, 0.2, 0.4) > plain + 0.07  # measured: 0.01 -> 0.12


def test_root_vertical_bias_crowds_the_entries_at_top_and_bottom():
    """Edge roots enter evenly all round at bias 0 (half of them through the top and bottom edges), and
    7 in 8 through the top and bottom edges at bias 0.8."""
    cfg = svr.preset("3mm")
    faz = sample_faz(jax.random.key(1), center_mm=jnp.asarray([1.5, 1.5]), area_mm2=0.25, area_sd_mm2=0.0,
                     irregularity=0.0, offset_sd_mm=0.0)

    def vertical_share(bias):
        vp = dataclasses.replace(svr.VesselParams(), root_vertical_bias=bias)
        layout = jax.vmap(lambda k: growth._root_layout(k, vp, cfg, faz, 1.0)[0])(jax.random.split(jax.random.key(2), 128))
        offset = np.asarray(layout[:, cfg.growth.disc_roots:]) - 1.5
        return np.mean(np.abs(offset[..., 1]) > np.abs(offset[..., 0]))

    assert vertical_share(0.0) == pytest.approx(0.5, abs=0.05)
    assert vertical_share(0.8) == pytest.approx(0.875, abs=0.05)
