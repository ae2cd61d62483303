"""The config-driven high-level analysis, step by step as Gammapy 2.1's ``Analysis``.

>>> analysis = Analysis(AnalysisConfig.read("config.yaml"))
>>> analysis.get_observations()          # DataStore + selection -> .observations
>>> analysis.get_datasets()              # makers from the config -> .datasets (reduced, stacked or not)
>>> analysis.set_models(models_yaml)     # + one FoVBackgroundModel per map dataset -> .models
>>> analysis.run_fit()                   # mask_fit from fit.fit_range, jaxgamma.fit -> .fit_result

Datasets in jaxgamma hold no models: the analysis keeps them next to the datasets (``.models``) and
passes both to :func:`jaxgamma.fit`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import astropy.units as u
import numpy as np
import yaml

from .config import AnalysisConfig, ConfigError

__all__ = ["Analysis"]

log = logging.getLogger(__name__)



def _make_path(path: Any) -> Path:
    return Path(os.path.expandvars(os.fspath(path)))


def _unexpanded_hint(path: Path) -> str:
    return " (an environment variable in it is not set)" if "$" in str(path) else ""


class Analysis:
    """Config-driven high-level analysis (Gammapy's ``Analysis``).

    Parameters
    ----------
    config : AnalysisConfig or dict
        The configuration (a dict is read as :meth:`AnalysisConfig.from_dict`).

    Attributes
    ----------
    config : AnalysisConfig
    datastore : jaxgamma.data.DataStore or None
    observations : jaxgamma.data.Observations or None
    datasets : jaxgamma.datasets.Datasets or None
    models : jaxgamma.models.Models
        The models of the datasets (``RuntimeError`` before there are datasets, as Gammapy).
    fit_result : jaxgamma.fit.FitResult or None
    fit_options : dict
        Keyword arguments of :func:`jaxgamma.fit` (optimizer, tolerances, ...) used by :meth:`run_fit`.
    """

    def __init__(self, config: AnalysisConfig | Mapping[str, Any]):
        self.config = config  # type: ignore[assignment]
        self.config.set_logging()
        self.datastore: Any = None
        self.observations: Any = None
        self.datasets: Any = None
        self._models: Any = None
        self.fit_options: dict[str, Any] = {}
        self.fit_result: Any = None
        self._skipped_obs_ids: list[int] = []
        self.flux_points: Any = None
        self.excess_map: Any = None
        self.light_curve: Any = None

    # -- configuration ---------------------------------------------------------------------------------
    @property
    def config(self) -> AnalysisConfig:
        """The analysis configuration."""
        return self._config

    @config.setter
    def config(self, value: AnalysisConfig | Mapping[str, Any]) -> None:
        if isinstance(value, AnalysisConfig):
            self._config = value
        elif isinstance(value, Mapping):
            self._config = AnalysisConfig.from_dict(value)
        else:
            raise TypeError(f"config must be a dict or an AnalysisConfig, got {type(value).__name__}")

    def update_config(self, config: str | AnalysisConfig) -> None:
        """Update the configuration with the non-default settings of ``config`` (Gammapy's)."""
        self.config = self.config.update(config=config)

    # -- observations ----------------------------------------------------------------------------------
    def _set_data_store(self) -> None:
        from ..data import DataStore

        path = _make_path(self.config.observations.datastore)
        if path.is_file():
            log.debug(f"Setting datastore from file: {path}")
            self.datastore = DataStore.from_file(path)
        elif path.is_dir():
            log.debug(f"Setting datastore from directory: {path}")
            self.datastore = DataStore.from_dir(path)
        else:
            raise FileNotFoundError(
                2, f"Datastore not found: {str(path)!r}{_unexpanded_hint(path)}", os.fspath(path)
            )

    def _make_obs_table_selection(self) -> list[int]:
        """The obs ids selected from the data store's observation table (Gammapy's rules: obs_ids
        or obs_file, then the cone on the pointing positions)."""
        settings = self.config.observations
        table = self.datastore.obs_table
        if "OBS_ID" not in table.colnames:
            raise ValueError("observation table of the data store: no OBS_ID column")
        available = [int(i) for i in np.asarray(table["OBS_ID"])]

        if len(settings.obs_ids) and settings.obs_file is not None:
            raise ValueError("Values for both parameters obs_ids and obs_file are not accepted.")
        if len(settings.obs_ids):
            requested = list(settings.obs_ids)
            origin = "observations.obs_ids"
        elif settings.obs_file is not None:
            requested = _read_obs_file(_make_path(settings.obs_file))
            origin = f"observations.obs_file {str(settings.obs_file)!r}"
        else:
            requested = None
        if requested is None:
            rows = np.arange(len(available))
        else:
            index = {obs_id: row for row, obs_id in enumerate(available)}
            missing = [i for i in requested if i not in index]
            if missing:
                raise ValueError(
                    f"{origin}: observations {missing} are not in the data store's observation table "
                    f"({str(_make_path(settings.datastore))!r})"
                )
            rows = np.array([index[i] for i in requested], dtype=int)

        cone = settings.obs_cone
        if cone.lon is not None:
            rows = rows[_in_cone(table, rows, cone)]
        return [available[r] for r in rows]

    def get_observations(self) -> None:
        """Fetch the observations selected by the configuration from the data store
        (``.observations``)."""
        settings = self.config.observations
        self._set_data_store()
        log.info("Fetching observations.")
        ids = self._make_obs_table_selection()
        self.observations = self.datastore.get_observations(
            ids, skip_missing=True, required_irf=list(settings.required_irf)
        )
        wanted = list(self.datastore.obs_ids) if ids is None else [int(i) for i in ids]
        got = {int(o.obs_id) for o in self.observations}
        self._skipped_obs_ids = [i for i in wanted if i not in got]
        if self._skipped_obs_ids:
            log.warning(
                f"Observations skipped (missing from the store or lacking a required HDU of "
                f"{list(settings.required_irf)}): {self._skipped_obs_ids}"
            )
        if settings.obs_time.start is not None:
            start, stop = settings.obs_time.start, settings.obs_time.stop
            if stop is None:
                raise ValueError("observations.obs_time: start is set but stop is not")
            if start.isscalar:
                intervals = [(start, stop)]
            else:
                intervals = list(zip(start, stop, strict=True))
            self.observations = self.observations.select_time(intervals)
        log.info(f"Number of selected observations: {len(self.observations)}")
        for obs in self.observations:
            log.debug(obs)

    # -- data reduction --------------------------------------------------------------------------------
    def get_datasets(self) -> None:
        """Reduce the observations to datasets (``.datasets``), as configured under ``datasets``."""
        if not self.observations or len(self.observations) == 0:
            skipped = self._skipped_obs_ids
            why = (
                f" (skipped: {skipped}: not in the data store or lacking a required HDU of "
                f"observations.required_irf = {list(self.config.observations.required_irf)}; see the log)"
                if skipped
                else ""
            )
            raise RuntimeError(f"No observations have been selected{why}.")
        if self.config.datasets.type == "1d":
            self._spectrum_extraction()
        else:
            self._map_making()

    @staticmethod
    def _make_energy_axis(axis: Any, name: str = "energy") -> Any:
        from ..geom import MapAxis

        if axis.min is None or axis.max is None:
            return None
        if axis.nbins is None or axis.nbins < 1:
            return None
        return MapAxis.from_bounds(
            axis.min.value,
            axis.max.to_value(axis.min.unit),
            nbin=axis.nbins,
            unit=axis.min.unit.to_string(),
            interp="log",
            node_type="edges",
            name=name,
        )

    @staticmethod
    def _create_wcs_geometry(wcs_settings: Any, axes: list[Any]) -> Any:
        from astropy.coordinates import SkyCoord

        from ..geom import WcsGeom

        params: dict[str, Any] = {}
        skydir = wcs_settings.skydir
        if skydir.frame not in ("icrs", "galactic"):
            raise ValueError(
                f"datasets.geom.wcs.skydir.frame: expected 'icrs' or 'galactic', got {skydir.frame!r}"
            )
        if skydir.lon is not None:
            if skydir.lat is None:
                raise ValueError("datasets.geom.wcs.skydir: lon is set but lat is not")
            params["skydir"] = SkyCoord(skydir.lon, skydir.lat, frame=skydir.frame)
        params["frame"] = skydir.frame
        params["axes"] = axes
        params["binsz"] = wcs_settings.binsize.to_value("deg")
        params["width"] = (
            wcs_settings.width.width.to_value("deg"),
            wcs_settings.width.height.to_value("deg"),
        )
        return WcsGeom.create(**params)

    @staticmethod
    def _create_region_geometry(on_region: Any, axes: list[Any]) -> Any:
        from astropy.coordinates import SkyCoord
        from regions import CircleSkyRegion

        from ..geom import RegionGeom

        missing = [k for k in ("frame", "lon", "lat", "radius") if getattr(on_region, k) is None]
        if missing:
            raise ConfigError(
                f"AnalysisConfig: datasets.on_region: {missing} must be set for datasets.type '1d'"
            )
        if on_region.frame not in ("icrs", "galactic"):
            raise ConfigError(
                f"AnalysisConfig: datasets.on_region.frame: expected 'icrs' or 'galactic', got {on_region.frame!r}"
            )
        center = SkyCoord(on_region.lon, on_region.lat, frame=on_region.frame)
        return RegionGeom.create(region=CircleSkyRegion(center, on_region.radius), axes=axes)

    def _create_geometry(self) -> Any:
        settings = self.config.datasets
        energy = self._make_energy_axis(settings.geom.axes.energy)
        if energy is None:
            raise ValueError("datasets.geom.axes.energy: min, max and nbins are all needed")
        if settings.type == "1d":
            return self._create_region_geometry(settings.on_region, [energy])
        return self._create_wcs_geometry(settings.geom.wcs, [energy])

    def _create_reference_dataset(self, name: str | None = None) -> Any:
        from ..datasets import MapDataset, SpectrumDataset

        geom = self._create_geometry()
        geom_settings = self.config.datasets.geom
        if self.config.datasets.type == "1d":
            energy_axis_true = None
            if geom_settings.axes.energy_true.min is not None:
                energy_axis_true = self._make_energy_axis(geom_settings.axes.energy_true, name="energy_true")
            return SpectrumDataset.create(geom, energy_axis_true=energy_axis_true, name=name)
        geom_irf: dict[str, Any] = {"energy_axis_true": None, "binsz_irf": None}
        if geom_settings.axes.energy_true.min is not None:
            geom_irf["energy_axis_true"] = self._make_energy_axis(
                geom_settings.axes.energy_true, name="energy_true"
            )
        if geom_settings.wcs.binsize_irf is not None:
            geom_irf["binsz_irf"] = geom_settings.wcs.binsize_irf.to_value("deg")
        return MapDataset.create(geom, name=name, **geom_irf)

    def _create_dataset_maker(self) -> Any:
        from ..makers import MapDatasetMaker, SpectrumDatasetMaker

        settings = self.config.datasets
        if settings.type == "1d":
            # as Gammapy: counts, exposure and edisp (the background comes from the OFF regions)
            return SpectrumDatasetMaker(
                selection=["counts", "exposure", "edisp"],
                containment_correction=bool(settings.containment_correction),
            )
        return MapDatasetMaker(selection=list(settings.map_selection))

    def _create_safe_mask_maker(self) -> Any:
        from ..makers import SafeMaskMaker

        settings = self.config.datasets.safe_mask
        try:
            return SafeMaskMaker(methods=list(settings.methods), **settings.parameters)
        except TypeError as err:
            raise ConfigError(f"AnalysisConfig: datasets.safe_mask.parameters: {err}") from None

    def _create_background_maker(self) -> Any:
        settings = self.config.datasets.background
        method = settings.method
        if method is None:
            log.warning("No background maker set. Check configuration.")
            return None
        dataset_type = self.config.datasets.type
        needs = {"reflected": "1d", "fov_background": "3d", "ring": "3d"}[method]
        if dataset_type != needs:
            other = "reflected" if dataset_type == "1d" else "fov_background' or 'ring"
            raise ConfigError(
                f"AnalysisConfig: datasets.background.method {method!r} needs datasets.type {needs!r} "
                f"(use '{other}' for a {dataset_type} analysis)"
            )
        if method == "ring" and self.config.datasets.geom.axes.energy.nbins != 1:
            raise ConfigError(
                "AnalysisConfig: datasets.background.method 'ring': you need to define a single-bin "
                "energy geometry for your dataset (datasets.geom.axes.energy.nbins: 1), as Gammapy"
            )
        from ..makers import FoVBackgroundMaker, ReflectedRegionsBackgroundMaker, RingBackgroundMaker

        log.info("Creating the background Maker.")
        kwargs: dict[str, Any] = {}
        if settings.exclusion is not None:
            kwargs["exclusion_mask"] = _read_exclusion_mask(_make_path(settings.exclusion))
        kwargs.update(settings.parameters)
        maker_class = {
            "fov_background": FoVBackgroundMaker,
            "reflected": ReflectedRegionsBackgroundMaker,
            "ring": RingBackgroundMaker,
        }[method]
        log.debug(f"Creating {maker_class.__name__} with arguments {kwargs}")
        try:
            return maker_class(**kwargs)
        except TypeError as err:
            raise ConfigError(f"AnalysisConfig: datasets.background.parameters: {err}") from None

    def _map_making(self) -> None:
        from ..datasets import Datasets
        from ..makers import DatasetsMaker
        from ..models import Models

        settings = self.config.datasets
        offset_max = settings.geom.selection.offset_max
        log.info("Creating reference dataset and makers.")
        stacked = self._create_reference_dataset(name="stacked")
        makers = [self._create_dataset_maker(), self._create_safe_mask_maker()]
        background_maker = self._create_background_maker()
        # Stacking folds the FoV background normalisation into the stacked background (Gammapy
        # stacks npred_background); joint datasets keep their unscaled background and carry the
        # fitted FoVBackgroundModel, as Gammapy's: the background maker is then run here. A ring
        # background is made per observation either way (Gammapy's DatasetsMaker): ON/OFF datasets,
        # or stacked, a Cash dataset with their WStat backgrounds.
        fov = background_maker is not None and background_maker.tag == "FoVBackgroundMaker"
        if background_maker is not None and (settings.stack or not fov):
            makers.append(background_maker)
        log.info("Start the data reduction loop.")
        datasets_maker = DatasetsMaker(
            makers,
            stack_datasets=settings.stack,
            n_jobs=self.config.general.n_jobs,
            cutout_mode="trim",
            cutout_width=2 * offset_max,
        )
        datasets = datasets_maker.run(stacked, self.observations)
        models = []
        if fov and not settings.stack:
            reduced = []
            for dataset in datasets:
                scaled, model = background_maker.run_with_model(dataset)
                # the maker masks the whole dataset when the normalisation fails
                failed = scaled.mask_safe is not None and not np.any(scaled.mask_safe)
                reduced.append(scaled if failed else dataset)
                models.append(model)
            datasets = Datasets(reduced)
        self.datasets = datasets
        self._models = Models(models)

    def _spectrum_extraction(self) -> None:
        """The 1D reduction (Gammapy's ``_spectrum_extraction``): per observation, the spectrum in
        the ON region, the reflected-regions OFF counts (observations without an OFF region are
        discarded) and the safe mask; then stacked when ``datasets.stack``. The datasets are
        named by observation id (Gammapy gives them random names) and ``stacked``."""
        from ..datasets import Datasets
        from ..makers import ProgressBar
        from ..models import Models

        log.info("Reducing spectrum datasets.")
        settings = self.config.datasets
        dataset_maker = self._create_dataset_maker()
        safe_mask_maker = self._create_safe_mask_maker()
        background_maker = self._create_background_maker()
        reference = self._create_reference_dataset()
        datasets = []
        with ProgressBar(len(self.observations), desc="Observations") as bar:
            for observation in self.observations:
                log.debug(f"Processing observation {observation.obs_id}")
                dataset = dataset_maker.run(reference.replace(name=str(observation.obs_id)), observation)
                if background_maker is not None:
                    dataset = background_maker.run(dataset, observation)
                    if dataset.counts_off is None:
                        log.debug(f"No OFF region found for observation {observation.obs_id}. Discarding.")
                        bar.update(1, label=str(observation.obs_id))
                        continue
                dataset = safe_mask_maker.run(dataset, observation)
                log.debug(dataset)
                datasets.append(dataset)
                bar.update(1, label=str(observation.obs_id))
        if not datasets:
            raise RuntimeError(
                "No spectrum dataset: no observation has an OFF region outside the exclusion mask"
            )
        self.datasets = Datasets(datasets)
        if settings.stack:
            self.datasets = Datasets([self.datasets.stack_reduce(name="stacked")])
        self._models = Models([])

    # -- models ----------------------------------------------------------------------------------------
    @property
    def models(self) -> Any:
        """The models of the datasets."""
        if not self.datasets:
            raise RuntimeError("No datasets defined. Impossible to set models.")
        from ..models import Models

        return self._models if self._models is not None else Models()

    @models.setter
    def models(self, models: Any) -> None:
        self.set_models(models, extend=False)

    def set_models(self, models: Any, extend: bool = True) -> None:
        """Set the models of the datasets; a ``FoVBackgroundModel`` is added for every map dataset
        that has none (named ``<dataset>-bkg``), as Gammapy.

        Parameters
        ----------
        models : Models, list of models, str or Path
            Models, a models YAML string, or a models YAML file (a path, or a string that is one).
        extend : bool
            Add to the models already set (True) or replace them.
        """
        from ..datasets import MapDataset
        from ..models import FoVBackgroundModel, Models

        if not self.datasets or len(self.datasets) == 0:
            raise RuntimeError("Missing datasets")
        log.info("Reading model.")
        models = _as_models(models)
        if extend and self._models is not None:
            models = models + self._models  # both collections' penalties kept
        background_for = {m.dataset_name for m in models if isinstance(m, FoVBackgroundModel)}
        missing = [
            FoVBackgroundModel(dataset_name=d.name)
            for d in self.datasets
            if type(d) is MapDataset and d.name not in background_for
        ]
        if missing:
            models = models + Models(missing)
        unknown = sorted(
            {
                n
                for m in models
                for n in (getattr(m, "datasets_names", None) or ())
                if n not in self.datasets.names
            }
        )
        if unknown:
            log.warning(f"Models refer to datasets that are not in the analysis: {unknown}")
        self._models = models
        log.info(models)

    def read_models(self, path: Any, extend: bool = True) -> None:
        """Read models from a YAML file and set them (:meth:`set_models`)."""
        from ..io.models import read_models

        path = _make_path(path)
        self.set_models(read_models(path), extend=extend)
        log.info(f"Models loaded from {path}.")

    def write_models(self, overwrite: bool = True, write_covariance: bool = True) -> None:
        """Write the models to ``general.models_file``."""
        from ..io.models import write_models

        filename = self.config.general.models_file
        if filename is None:
            raise RuntimeError("Missing models_file in config.general")
        models = self.models if write_covariance else self.models.with_covariance(None)
        write_models(filename, models, overwrite=overwrite)
        log.info(f"Models written to {filename}.")

    def read_datasets(self) -> None:
        """Read the datasets (and models) from ``general.datasets_file`` (and ``models_file``)."""
        from ..io.datasets import read_datasets

        filename = self.config.general.datasets_file
        filename_models = self.config.general.models_file
        if filename is None:
            raise RuntimeError("Missing datasets_file in config.general")
        datasets, models = read_datasets(filename)
        self.datasets, self._models = datasets, models
        log.info(f"Datasets loaded from {filename}.")
        if filename_models is not None:
            self.read_models(filename_models, extend=False)

    def write_datasets(self, overwrite: bool = True, write_covariance: bool = True) -> None:
        """Write the datasets to ``general.datasets_file`` (a YAML plus one FITS file per dataset)
        and, when ``general.models_file`` is set, the models there, as Gammapy's ``Datasets.write``."""
        from ..io._atomic import check_writable
        from ..io.datasets import write_datasets
        from ..io.models import write_models

        filename = self.config.general.datasets_file
        filename_models = self.config.general.models_file
        if filename is None:
            raise RuntimeError("Missing datasets_file in config.general")
        if not self.datasets:
            raise RuntimeError("No datasets to write.")
        if filename_models is not None:
            check_writable([filename_models], overwrite)
        write_datasets(filename, self.datasets, overwrite=overwrite)
        log.info(f"Datasets stored to {filename}.")
        if filename_models is not None:
            models = self.models if write_covariance else self.models.with_covariance(None)
            write_models(filename_models, models, overwrite=overwrite)
            log.info(f"Models stored to {filename_models}.")

    # -- fit ---------------------------------------------------------------------------------------------
    def run_fit(self) -> None:
        """Fit the models to the datasets: ``mask_fit`` of every dataset from ``fit.fit_range``
        (Gammapy's ``geom.energy_mask``), then :func:`jaxgamma.fit`; the result is ``.fit_result`` and
        ``.models`` become the best-fit models (with errors and covariance)."""
        from ..datasets import Datasets
        from ..fit import fit

        if not self.models:
            raise RuntimeError("Missing models")
        fit_range = self.config.fit.fit_range
        datasets = []
        for dataset in self.datasets:
            mask = dataset.energy_mask(fit_range.min, fit_range.max)
            datasets.append(dataset.replace(mask_fit=mask))
        self.datasets = Datasets(datasets)
        log.info("Fitting datasets.")
        result = fit(self.datasets, self.models, **self.fit_options)
        self.fit_result = result
        if result.models is not None:
            self._models = result.models
        log.info(result)

    # -- estimators --------------------------------------------------------------------------------------
    def get_flux_points(self) -> None:
        """Flux points of the ``flux_points.source`` model in the ``flux_points.energy`` bins
        (:class:`jaxgamma.estimators.FluxPointsEstimator` with ``flux_points.parameters``), from
        the datasets and the analysis' models (the fitted ones after :meth:`run_fit`). The result,
        in ``.flux_points``, is a :class:`jaxgamma.datasets.FluxPointsDataset` (as Gammapy's); its
        models are ``analysis.models[source]``."""
        from ..datasets import FluxPointsDataset
        from ..estimators import FluxPointsEstimator

        if self.datasets is None:
            raise RuntimeError("get_flux_points: no datasets yet; run get_datasets() first")
        settings = self.config.flux_points
        axis = self._make_energy_axis(settings.energy)
        if axis is None:
            raise ValueError("get_flux_points: set flux_points.energy (min, max and nbins)")
        estimator = FluxPointsEstimator(
            source=settings.source, energy_edges=axis.edges_in("TeV") * u.TeV, **dict(settings.parameters)
        )
        log.info("Calculating flux points.")
        points = estimator.run(self.datasets, self.models)
        self.flux_points = FluxPointsDataset(data=points, name=settings.source)

    def get_excess_map(self) -> None:
        """Excess and significance maps of the (stacked) dataset with the ``excess_map`` settings
        (``correlation_radius``, ``energy_edges``, estimator ``parameters``) and the analysis'
        models as background: :class:`jaxgamma.estimators.ExcessMapEstimator`, result in
        ``.excess_map`` (a :class:`jaxgamma.estimators.FluxMaps`)."""
        from ..estimators import ExcessMapEstimator

        if self.datasets is None:
            raise RuntimeError("get_excess_map: no datasets yet; run get_datasets() first")
        if len(self.datasets) != 1:
            raise ValueError(
                f"get_excess_map: the datasets must be stacked to compute the excess map, got {len(self.datasets)} "
                "(set datasets.stack: true)"
            )
        dataset = self.datasets[0]
        if dataset.tag not in ("MapDataset", "MapDatasetOnOff"):
            raise ValueError(f"get_excess_map: cannot compute an excess map for a {dataset.tag} (1D dataset)")
        settings = self.config.excess_map
        axis = self._make_energy_axis(settings.energy_edges)
        energy_edges = None if axis is None else axis.edges_in("TeV") * u.TeV
        estimator = ExcessMapEstimator(
            correlation_radius=settings.correlation_radius, energy_edges=energy_edges, **dict(settings.parameters)
        )
        log.info("Computing excess maps.")
        self.excess_map = estimator.run(dataset, models=self._models)

    def get_light_curve(self) -> None:
        """Light curve of the ``light_curve.source`` model (:class:`jaxgamma.estimators.LightCurveEstimator`
        with ``light_curve.parameters``) in the ``light_curve.energy_edges`` bins and the
        ``light_curve.time_intervals`` (``start`` / ``stop`` lists; without them, one interval per
        dataset from its GTI), from the datasets and the analysis' models (the fitted ones after
        :meth:`run_fit`). The result, in ``.light_curve``, is a :class:`jaxgamma.estimators.LightCurve`."""
        from astropy.time import Time

        from ..estimators import LightCurveEstimator

        if self.datasets is None:
            raise RuntimeError("get_light_curve: no datasets yet; run get_datasets() first")
        settings = self.config.light_curve
        axis = self._make_energy_axis(settings.energy_edges)
        if axis is None:
            raise ValueError("get_light_curve: missing or incomplete light_curve.energy_edges (min, max and nbins)")
        start, stop = settings.time_intervals.start, settings.time_intervals.stop
        if start is None or stop is None:
            log.info("Time intervals not defined. Extract light curve on datasets GTIs.")
            time_intervals = None
        else:
            start, stop = Time(start), Time(stop)
            start, stop = start.reshape(-1), stop.reshape(-1)
            if len(start) != len(stop):
                raise ValueError(
                    f"get_light_curve: light_curve.time_intervals has {len(start)} start and {len(stop)} stop times"
                )
            time_intervals = list(zip(start, stop, strict=True))
        estimator = LightCurveEstimator(
            time_intervals=time_intervals,
            source=settings.source,
            energy_edges=axis.edges_in("TeV") * u.TeV,
            **dict(settings.parameters),
        )
        log.info("Computing light curve.")
        self.light_curve = estimator.run(self.datasets, self.models)
        log.info("\n%s", self.light_curve.to_table(format="lightcurve", sed_type="flux"))

    def __str__(self) -> str:
        lines = ["Analysis", ""]
        lines.append(f"\tobservations : {None if self.observations is None else len(self.observations)}")
        lines.append(f"\tdatasets     : {None if self.datasets is None else self.datasets.names}")
        lines.append(f"\tmodels       : {None if self._models is None else self._models.names}")
        lines.append(f"\tfit result   : {self.fit_result!r}")
        return "\n".join(lines)


# -- helpers ---------------------------------------------------------------------------------------------
def _as_models(models: Any) -> Any:
    """Models from Models, a list of models, a YAML string or a YAML file."""
    from ..io.models import models_from_dict, read_models
    from ..models import Models

    if isinstance(models, Models):
        return models
    if isinstance(models, os.PathLike):
        return read_models(models)
    if isinstance(models, str):
        try:
            data = yaml.safe_load(models)
        except yaml.YAMLError as err:
            raise ValueError(f"models: malformed YAML: {err}") from None
        if isinstance(data, Mapping):
            return models_from_dict(data)
        if isinstance(data, str) and "\n" not in models.strip():
            return read_models(models.strip())
        raise ValueError(
            f"models: expected a models YAML string (with 'components') or a file, got {models[:80]!r}"
        )
    if isinstance(models, list | tuple):
        return Models(models)
    try:
        return Models(models)
    except TypeError:
        raise TypeError(f"Invalid type: {models!r}") from None


def _read_obs_file(path: Path) -> list[int]:
    """Observation ids from the first column of a text file (one per line), as Gammapy's
    ``Table.read(path, format="ascii", data_start=0).columns[0]``."""
    origin = f"observations.obs_file {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            2, f"{origin}: no such file{_unexpanded_hint(path)}", os.fspath(path)
        ) from None
    ids = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.replace(",", " ").split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            ids.append(int(fields[0]))
        except ValueError:
            raise ValueError(
                f"{origin}, line {number}: expected an observation id, got {fields[0]!r}"
            ) from None
    return ids


def _in_cone(table: Any, rows: np.ndarray, cone: Any) -> np.ndarray:
    """Which of ``rows`` point inside the cone (separation < radius, as Gammapy's sky-circle)."""
    from astropy.coordinates import SkyCoord

    for key in ("frame", "lat", "radius"):
        if getattr(cone, key) is None:
            raise ValueError(f"observations.obs_cone: lon is set but {key} is not")
    for column in ("RA_PNT", "DEC_PNT"):
        if column not in table.colnames:
            raise ValueError(
                f"observation table of the data store: no {column} column for observations.obs_cone"
            )
    center = SkyCoord(cone.lon, cone.lat, frame=cone.frame)
    ra = np.asarray(table["RA_PNT"], dtype=float)[rows]
    dec = np.asarray(table["DEC_PNT"], dtype=float)[rows]
    pointing = SkyCoord(ra, dec, unit="deg", frame="icrs")
    return np.asarray(center.separation(pointing) < cone.radius)


def _read_exclusion_mask(path: Path) -> Any:
    """The exclusion mask of ``datasets.background.exclusion`` (Gammapy's ``Map.read`` of the first
    HDU with data, as booleans): ``(WcsGeom, bool array)``, True where the counts may be used."""
    from astropy.io import fits

    from ..geom import WcsGeom, find_map_hdus

    where = f"datasets.background.exclusion {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(2, f"{where}: no such file{_unexpanded_hint(path)}", os.fspath(path))
    try:
        with fits.open(path, memmap=False) as hdulist:
            image, bands, format = find_map_hdus(hdulist)
            geom = WcsGeom.from_header(image.header, bands, format=format)
            data = np.asarray(image.data)
    except (OSError, ValueError, KeyError, NotImplementedError) as err:
        raise ValueError(f"{where}: cannot read a WCS map: {err}") from None
    if data.shape != geom.data_shape:
        raise ValueError(f"{where}: data shape {data.shape} does not match its geometry {geom.data_shape}")
    return geom, data.astype(bool)
