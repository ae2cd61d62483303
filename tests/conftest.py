"""Shared test fixtures: $GAMMAPY_DATA and the optional Gammapy reference."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

# pytest-xdist workers (pyproject's addopts) each get their own persistent compilation cache: JAX
# writes cache entries in place, so one worker could read another's half-written entry
if os.environ.get("PYTEST_XDIST_WORKER") and not os.environ.get("JAXGAMMA_COMPILATION_CACHE"):
    _cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "jaxgamma"
    os.environ["JAXGAMMA_COMPILATION_CACHE"] = str(_cache / f"jax-tests-{os.environ['PYTEST_XDIST_WORKER']}")

# The suite is dominated by XLA compilation (thousands of small programs, most run a few times):
# LLVM's optimisation level 0 compiles them ~30 % faster (test_batch: 173 s -> 122 s). It changes
# no semantics (no fast-math either way); benchmarks and users keep XLA's default.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jaxgamma  # noqa: F401  (enables float64 before any test builds arrays)

# Modules that take longest (Gammapy-side reductions and fits, dense Hessians), scheduled first so
# that the parallel workers finish together (longest-first; the rest keep their order).
SLOW_MODULES = (
    "test_batch.py", "test_flux_points_estimator.py", "test_parameter_estimator.py", "test_lightcurve.py",
    "test_spectrum_reduction.py", "test_ts_map.py", "test_analysis.py", "test_estimators.py",
    "test_flux_profile.py", "test_sampling.py", "test_fit_seed.py", "test_map_dataset_onoff.py", "test_fit.py",
    "test_nested.py", "test_spectral.py", "test_simulate_dl3.py", "test_map_dataset.py",
)  # fmt: skip


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(SLOW_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
    # the "gammapy" marker (pyproject): live comparisons skip when the crosscheck extra is absent
    import importlib.util

    if importlib.util.find_spec("gammapy") is None:
        skip = pytest.mark.skip(reason="Gammapy (the crosscheck extra) is not installed")
        for item in items:
            if "gammapy" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after each test module. Every loaded XLA CPU executable keeps
    memory mappings; the whole suite in one process compiles thousands of programs and reached the
    kernel's per-process limit (vm.max_map_count, 65530) near its end, where XLA aborted the process
    while loading the next program (test_ts_map). Module-scoped fixtures are unaffected (values,
    not programs); a later module recompiles what it needs (or reads it from the persistent cache)."""
    yield
    import gc

    import jax

    jax.clear_caches()
    gc.collect()


def gammapy_data_path() -> Path | None:
    path = os.environ.get("GAMMAPY_DATA")
    return Path(path) if path and Path(path).is_dir() else None


@pytest.fixture
def gammapy_data() -> Path:
    """The $GAMMAPY_DATA folder; the test is skipped when it is not set."""
    path = gammapy_data_path()
    if path is None:
        pytest.skip("GAMMAPY_DATA is not set (or not a folder): this test reads Gammapy's example data")
    return path


@pytest.fixture(scope="module")
def data_dir() -> Path:
    """$GAMMAPY_DATA, shared by the tests of one module; they are skipped when it is not set."""
    path = gammapy_data_path()
    if path is None:
        pytest.skip("GAMMAPY_DATA is not set (or not a folder): these tests read Gammapy's example data")
    return path


@pytest.fixture(scope="session")
def cta_plain(tmp_path_factory) -> Path:
    """``cta-1dc-gc-reduced/stacked.fits.gz`` uncompressed, once per session (Gammapy decompresses a
    .gz file once per HDU: 12 s); skipped without $GAMMAPY_DATA."""
    path = gammapy_data_path()
    if path is None:
        pytest.skip("GAMMAPY_DATA is not set (or not a folder): this test reads Gammapy's example data")
    plain = tmp_path_factory.mktemp("cta") / "stacked.fits"
    plain.write_bytes(gzip.decompress((path / "cta-1dc-gc-reduced/stacked.fits.gz").read_bytes()))
    return plain


@pytest.fixture(scope="session")
def cta_gc_models():
    """Near the best fit of the stacked CTA-1DC dataset: an ECPL point source "gc" and the FoV
    background norm of the dataset "stacked" (immutable: shared by the session)."""
    from jaxgamma.models import (
        ExpCutoffPowerLawSpectralModel,
        FoVBackgroundModel,
        Models,
        PointSpatialModel,
        PowerLawNormSpectralModel,
        SkyModel,
    )

    spectral = ExpCutoffPowerLawSpectralModel(
        index=2.4, amplitude="2.7e-12 cm-2 s-1 TeV-1", reference="1 TeV", lambda_="0.01 TeV-1"
    )
    source = SkyModel(spectral, PointSpatialModel(lon_0=-0.048, lat_0=-0.053, frame="galactic"), name="gc")
    background = FoVBackgroundModel(dataset_name="stacked", spectral_model=PowerLawNormSpectralModel(norm=1.3))
    return Models([source, background])


def count_compiles(fn):
    """``(fn(), number of XLA backend compilations it triggered)``."""
    from jax._src import monitoring

    events = []

    def listen(event, duration, **kwargs):
        if event.endswith("backend_compile_duration"):
            events.append(event)

    monitoring.register_event_duration_secs_listener(listen)
    try:
        out = fn()
    finally:
        monitoring.unregister_event_duration_listener(listen)
    return out, len(events)


def one_bin_spectrum(n: float, start: float, stop: float, name: str, background: float = 12.0):
    """A one-bin (1-10 TeV) spectrum with ``n`` counts, a known background, exposure 1e11 cm2 s and
    one GTI ``[start, stop]`` (s since Gammapy's default reference time): the analytic Cash case of
    the light-curve tests."""
    import numpy as np

    from jaxgamma.data.gti import GTI
    from jaxgamma.datasets import SpectrumDataset

    return SpectrumDataset(
        counts=np.array([n]),
        background=np.array([background]),
        exposure=np.array([1e11]),
        energy_edges=np.array([1.0, 10.0]),
        gti=GTI.create(start=[start], stop=[stop]),
        name=name,
    )
