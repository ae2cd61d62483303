"""Image profiles (Gammapy's ImageProfileEstimator and ImageProfile): closed checks on constructed
images, and every option against Gammapy 2.1 on the same images."""

from __future__ import annotations

import astropy.units as u
import numpy as np
import pytest
from astropy.coordinates import Angle, SkyCoord
from astropy.table import Table

from jaxgamma.estimators import ImageProfile, ImageProfileEstimator
from jaxgamma.geom import WcsGeom

GEOMS = {
    # a galactic map across l = 0 (the longitudes wrap at 180 deg), and a TAN map in ICRS
    "gal-car": {"skydir": (0.0, 0.0), "binsz": 0.1, "npix": (40, 24), "frame": "galactic", "proj": "CAR"},
    "icrs-tan": {"skydir": (83.63, 22.01), "binsz": 0.05, "npix": (30, 36), "frame": "icrs", "proj": "TAN"},
}


def _image(geom: WcsGeom, seed: int = 1) -> np.ndarray:
    """Poisson counts of a Gaussian blob over a flat level."""
    lon, lat = geom.get_coord()
    centre = geom.center_skydir
    sep = SkyCoord(lon, lat, unit="deg", frame=geom.frame).separation(centre).deg
    mean = 3.0 + 40.0 * np.exp(-0.5 * (sep / 0.3) ** 2)
    return np.random.default_rng(seed).poisson(mean).astype(float)


def test_lat_profile_of_a_constructed_image():
    """Each row of a CAR image is one latitude bin: the sum profile is the row sums, the mean
    profile the row means, the counts errors their square roots; masked pixels drop out."""
    geom = WcsGeom.create(**GEOMS["gal-car"])
    image = _image(geom)
    profile = ImageProfileEstimator(axis="lat", method="sum").run(image, geom, unit="ct")
    np.testing.assert_allclose(profile.profile.value, image.sum(axis=1))
    np.testing.assert_allclose(profile.profile_err.value, np.sqrt(image.sum(axis=1)))
    assert profile.profile.unit == u.ct and profile.table.meta["PROFILE_TYPE"] == "lat"
    np.testing.assert_allclose(profile.x_max - profile.x_min, 0.1 * u.deg, rtol=1e-9)
    mask = np.zeros(image.shape, bool)
    mask[:, :10] = True
    mean = ImageProfileEstimator(axis="lat", method="mean").run(image, geom, mask=mask, image_err=np.full(image.shape, 2.0))
    np.testing.assert_allclose(mean.profile.value, image[:, 10:].mean(axis=1))
    np.testing.assert_allclose(mean.profile_err.value, 2.0 / np.sqrt(30))
    assert mean.profile.unit == u.dimensionless_unscaled
    normalized = profile.normalize("integral")
    assert normalized.profile.sum().value == pytest.approx(1.0, rel=1e-12)
    assert profile.normalize().profile.max().value == pytest.approx(1.0, rel=1e-12)


def test_radial_profile_holds_every_pixel_within_the_last_edge():
    geom = WcsGeom.create(**GEOMS["icrs-tan"])
    image = np.ones(geom.data_shape)
    centre = geom.center_skydir
    profile = ImageProfileEstimator(axis="radial", center=centre).run(image, geom)
    sep = geom.separation(centre.ra.deg, centre.dec.deg)
    edges = np.append(profile.x_min.value, profile.x_max.value[-1])
    expected = np.histogram(sep, bins=edges)[0]
    np.testing.assert_allclose(profile.profile.value, expected)
    assert profile.profile_err is None
    np.testing.assert_allclose(np.diff(edges), np.mean(geom.pixel_scales), rtol=1e-12)


def test_bad_input_is_refused():
    geom = WcsGeom.create(**GEOMS["gal-car"])
    with pytest.raises(ValueError, match="method must be 'sum' or 'mean'"):
        ImageProfileEstimator(method="median")
    with pytest.raises(ValueError, match="axis must be 'lon', 'lat' or 'radial'"):
        ImageProfileEstimator(axis="x")
    with pytest.raises(ValueError, match="radial profile needs its center"):
        ImageProfileEstimator(axis="radial")
    with pytest.raises(ValueError, match="x_edges must be angles"):
        ImageProfileEstimator(x_edges=[1, 2] * u.TeV)
    with pytest.raises(ValueError, match=r"image has shape \(3, 3\), the geometry \(24, 40\)"):
        ImageProfileEstimator().run(np.ones((3, 3)), geom)
    with pytest.raises(ValueError, match="mask must be boolean"):
        ImageProfileEstimator().run(np.ones((24, 40)), geom, mask=np.ones((24, 40)))
    with pytest.raises(ValueError, match="lacks the columns"):
        ImageProfile(Table({"x_ref": [1.0, 2.0]}))
    with pytest.raises(ValueError, match="kernel must be 'box' or 'gauss'"):
        ImageProfileEstimator(axis="lat").run(np.ones((24, 40)), geom).smooth(kernel="tophat")


CASES = {
    "lon-sum-counts": ({"axis": "lon"}, {"unit": "ct"}),
    "lat-mean-counts": ({"axis": "lat", "method": "mean"}, {"unit": "ct"}),
    "radial-sum-err": ({"axis": "radial"}, {"err": True}),
    "lon-mean-err-mask": ({"axis": "lon", "method": "mean"}, {"err": True, "mask": True}),
    "lat-edges": ({"axis": "lat", "x_edges": np.linspace(-1.0, 0.9, 7)}, {"unit": "ct", "mask": True}),  # about the centre
}


@pytest.mark.gammapy
@pytest.mark.parametrize("geom_name", list(GEOMS))
@pytest.mark.parametrize("case", list(CASES))
def test_profiles_match_gammapy(geom_name, case):
    from gammapy.estimators import ImageProfileEstimator as GEstimator
    from gammapy.maps import Map
    from gammapy.maps import WcsGeom as GWcsGeom

    spec = GEOMS[geom_name]
    geom = WcsGeom.create(**spec)
    gspec = dict(spec)
    gspec["skydir"] = SkyCoord(*spec["skydir"], unit="deg", frame=spec["frame"])
    ggeom = GWcsGeom.create(**gspec)
    g_coord = ggeom.get_coord().skycoord
    for ours_deg, theirs_deg in zip(geom.get_coord(), (g_coord.data.lon.deg, g_coord.data.lat.deg), strict=True):
        np.testing.assert_allclose(ours_deg, theirs_deg, rtol=0, atol=1e-10)  # the same pixels
    options, extra = CASES[case]
    centre = geom.center_skydir
    if "x_edges" in options:
        options = {**options, "x_edges": Angle(centre.data.lat.deg + options["x_edges"], "deg")}
    if options["axis"] == "radial":
        options = {**options, "center": SkyCoord(centre.data.lon.deg + 0.2, centre.data.lat.deg - 0.1, unit="deg", frame=geom.frame)}
    image = _image(geom)
    unit = extra.get("unit", "")
    err = 0.5 + 0.1 * image if extra.get("err") else None
    mask = None
    if extra.get("mask"):
        _, lat = geom.get_coord()
        mask = lat > np.median(lat) + 0.3  # excluded
    ours = ImageProfileEstimator(**options).run(image, geom, image_err=err, mask=mask, unit=unit)
    gmap = Map.from_geom(ggeom, data=image.copy(), unit=unit)
    kwargs = {}
    if err is not None:
        kwargs["image_err"] = Map.from_geom(ggeom, data=err.copy(), unit=unit)
    if mask is not None:
        kwargs["mask"] = Map.from_geom(ggeom, data=mask.copy(), dtype=bool)
    theirs = GEstimator(**options).run(gmap, **kwargs)
    assert ours.table.colnames == theirs.table.colnames
    assert ours.table.meta["PROFILE_TYPE"] == theirs.table.meta["PROFILE_TYPE"]
    for name in ("x_min", "x_max", "x_ref"):
        np.testing.assert_allclose(ours.table[name].quantity.to_value("deg"), theirs.table[name].quantity.to_value("deg"), rtol=0, atol=1e-10)
    for name in [c for c in ("profile", "profile_err") if c in theirs.table.colnames]:
        assert ours.table[name].unit == theirs.table[name].unit
        np.testing.assert_allclose(np.asarray(ours.table[name]), np.asarray(theirs.table[name]), rtol=1e-12, equal_nan=True)
    # smoothing and normalisation of the same profile
    for kernel, radius in (("box", "0.2 deg"), ("gauss", "0.1 deg"), ("box", 1.0)):
        if options["axis"] == "radial" and kernel == "box" and not isinstance(radius, float):
            radius = "0.1 deg"
        a, b = ours.smooth(kernel=kernel, radius=radius), theirs.smooth(kernel=kernel, radius=radius)
        for name in [c for c in ("profile", "profile_err") if c in b.table.colnames]:
            np.testing.assert_allclose(np.asarray(a.table[name]), np.asarray(b.table[name]), rtol=1e-12, equal_nan=True)
    for mode in ("peak", "integral"):
        np.testing.assert_allclose(np.asarray(ours.normalize(mode).table["profile"]), np.asarray(theirs.normalize(mode).table["profile"]), rtol=1e-12)


def test_plots(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    geom = WcsGeom.create(**GEOMS["gal-car"])
    profile = ImageProfileEstimator(axis="lon").run(_image(geom), geom, unit="ct")
    ax = profile.peek()
    lines = ax.get_lines()
    assert len(lines) == 1
    np.testing.assert_allclose(lines[0].get_ydata(), profile.profile.value)
    assert ax.get_xlim()[0] > ax.get_xlim()[1]  # from high to low, as Gammapy's
    assert len(ax.collections) == 1  # the error band
    plt.close("all")
    with pytest.raises(ValueError, match="no profile_err"):
        ImageProfileEstimator(axis="lon").run(_image(geom), geom).plot_err()
