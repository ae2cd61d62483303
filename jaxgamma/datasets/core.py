"""Dataset protocol, the ``Datasets`` collection and the evaluation plan.

A dataset is immutable: arrays (numpy, native-endian float64 or bool) plus static geometry. It holds
no model. Everything that does not depend on a parameter (integration grids, cutouts, IRF kernels at
a source position, masks) is computed once, in numpy, by :meth:`Dataset.plan`, which returns an
``equinox.Module`` whose arrays are leaves and whose ``npred(models)`` / ``stat_sum(models)`` are
pure JAX functions of the model parameters. ``jaxgamma.likelihood.joint_stat`` jit-compiles the sum
of the plans' statistics, passing the plans' arrays as arguments (never closed over).

A plan is valid as long as the models keep the structure and positions it was planned for; a plan
records the model names it uses and looks them up by name at trace time.
"""

from __future__ import annotations

import inspect
import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import astropy.units as u
import equinox as eqx
import jax.numpy as jnp
import numpy as np
from astropy.table import Table

from ..stats import wstat, wstat_npred_background, wstat_npred_off

log = logging.getLogger(__name__)


# -- helpers shared by the dataset classes ---------------------------------------------------------
def _make_name() -> str:
    return uuid.uuid4().hex[:8]


def _random_state(seed: Any) -> np.random.RandomState:
    # numpy's legacy RandomState, as Gammapy's get_random_state: the same seed draws the same counts
    if isinstance(seed, np.random.RandomState):
        return seed
    if seed is None:
        return np.random.RandomState()
    return np.random.RandomState(int(seed))


def _meta_tuple(meta: Any) -> tuple[tuple[str, Any], ...]:
    if meta is None:
        return ()
    items = meta.items() if isinstance(meta, dict) else meta
    out = []
    for k, v in items:
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, list):
            v = tuple(v)
        out.append((str(k), v))
    return tuple(out)


__all__ = ["Dataset", "DatasetPlan", "Datasets"]


class DatasetPlan(eqx.Module):
    """What a dataset needs to evaluate its statistic for a given model structure: arrays (leaves)
    and static metadata. Subclasses implement ``npred`` and ``stat_array``/``stat_sum``."""

    def npred(self, models: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def stat_sum(self, models: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError


class OnOffPlanMixin(eqx.Module):
    """Methods shared by the plans of ON/OFF datasets (spectra and maps): the background is
    profiled out per bin (WStat). Subclasses provide ``counts``, ``counts_off``, ``alpha`` and
    ``npred_signal(models)``."""

    def signal_and_background(self, models: Any) -> tuple[Any, Any]:
        """``(npred_signal, npred_background)`` in one evaluation; the background is
        ``alpha * mu_bkg``, 0 where it is not finite (``alpha == 0``), as Gammapy."""
        signal = self.npred_signal(models)  # type: ignore[attr-defined]
        return signal, wstat_npred_background(self.counts, self.counts_off, self.alpha, signal)  # type: ignore[attr-defined]

    def npred_background(self, models: Any) -> Any:
        """``alpha * mu_bkg``: the profile-likelihood background in the ON region."""
        return self.signal_and_background(models)[1]

    def npred_off(self, models: Any) -> Any:
        """``mu_bkg``: the predicted OFF counts (0 where alpha is 0)."""
        return wstat_npred_off(self.npred_background(models), self.alpha)  # type: ignore[attr-defined]

    def npred(self, models: Any) -> Any:
        signal, background = self.signal_and_background(models)
        npred = signal + background
        return jnp.where(npred < 0, 0.0, npred)

    def stat_array(self, models: Any) -> Any:
        """WStat per bin (masked bins included; 0 where alpha is 0)."""
        return wstat(self.counts, self.counts_off, self.alpha, self.npred_signal(models))  # type: ignore[attr-defined]


class Dataset(eqx.Module):
    """Abstract dataset. Concrete datasets define ``tag``, ``stat_type``, ``plan(models)`` and their
    readers/writers."""

    tag: ClassVar[str] = "Dataset"
    stat_type: ClassVar[str] = ""
    # concrete datasets declare a static ``name: str`` field (declared here for type checkers only:
    # a field on this base would change the subclasses' field order)
    if TYPE_CHECKING:

        @property
        def name(self) -> str: ...

    def plan(self, models: Any) -> DatasetPlan:  # pragma: no cover - abstract
        raise NotImplementedError

    def npred(self, models: Any) -> np.ndarray:
        """Predicted counts (or flux for flux points) for ``models`` (eager convenience)."""
        models = _as_models(models)
        return np.asarray(self.plan(models).npred(models))

    def stat_sum(self, models: Any) -> float:
        """The fit statistic for ``models`` (eager convenience)."""
        models = _as_models(models)
        return float(self.plan(models).stat_sum(models))

    def replace(self, **changes: Any) -> Dataset:
        """A copy with some fields changed, e.g. ``dataset.replace(mask_fit=...)``."""
        import dataclasses

        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"{type(self).__name__} {self.name!r}: unknown fields {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def info_dict(self, models: Any = None) -> dict[str, Any]:
        """Summary numbers (concrete datasets add theirs; ``models`` for the predicted ones)."""
        return {"name": self.name, "type": self.tag}


def _livetime_seconds(value: Any, what: str) -> float | None:
    """A livetime in s (float, or a Quantity / string with a time unit), or None."""
    if value is None:
        return None
    try:
        seconds = float(value) if isinstance(value, int | float) else float(u.Quantity(value).to_value("s"))
    except (TypeError, ValueError, u.UnitsError) as err:
        raise ValueError(f"{what}: livetime must be a time (s), got {value!r}: {err}") from None
    if not np.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{what}: livetime must be finite and >= 0 s, got {value!r}")
    return seconds


def summary_row(label: str, value: str) -> str:
    """One line of a Gammapy-style dataset summary."""
    return f"  {label:32}: {value}"


def summary_count_rows(info: dict[str, Any], exposure_unit: str) -> list[str]:
    """The counts, predicted counts, exposure, bins and statistic block of a dataset summary (as
    Gammapy prints it), from :meth:`info_dict`."""
    row = summary_row
    return [
        row("Total counts", f"{info['counts']:.0f} "),
        row("Total background counts", f"{info['background']:.2f}"),
        row("Total excess counts", f"{info['excess']:.2f}"),
        "",
        row("Predicted counts", f"{info['npred']:.2f}"),
        row("Predicted background counts", f"{info['npred_background']:.2f}"),
        row("Predicted excess counts", f"{info['npred_signal']:.2f}"),
        "",
        row("Exposure min", f"{info['exposure_min']:.2e} {exposure_unit}"),
        row("Exposure max", f"{info['exposure_max']:.2e} {exposure_unit}"),
        "",
        row("Number of total bins", f"{info['n_bins']} "),
        row("Number of fit bins", f"{info['n_fit_bins']} "),
        "",
        row("Fit statistic type", info["stat_type"]),
        row("Fit statistic value (-2 log(L))", f"{info['stat_sum']:.2f}"),
        "",
    ]


def time_intervals(model: Any, gti: Any) -> np.ndarray | None:
    """What a plan needs for Gammapy's temporal norm of ``model`` on a dataset with ``gti``: the
    ``(2, n)`` MJD start / stop times in the temporal model's scale, or None (no temporal model or
    no GTI: no factor, as Gammapy)."""
    temporal = getattr(model, "temporal_model", None)
    if temporal is None or gti is None:
        return None
    from ..models.temporal import gti_mjd

    return gti_mjd(gti, temporal.scale)


def add_time_info(info: dict[str, Any], livetime: float | None, gti: Any) -> None:
    """``livetime``, ``ontime`` (the GTI sum) and the counts / background / excess rates of
    :meth:`info_dict` (NaN when unknown)."""
    live = np.nan if livetime is None else livetime
    info["livetime"] = live
    info["ontime"] = np.nan if gti is None else gti.time_sum
    with np.errstate(divide="ignore", invalid="ignore"):
        info["counts_rate"] = info["counts"] / live
        info["background_rate"] = info["background"] / live
        info["excess_rate"] = info["excess"] / live


def _as_models(models: Any) -> Any:
    from ..models import Models

    return models if isinstance(models, Models) else Models(models)


class Datasets:
    """An ordered collection of uniquely named datasets, looked up by name or index."""

    def __init__(self, datasets: Iterable[Dataset] | Dataset = ()):
        if isinstance(datasets, Datasets):
            datasets = list(datasets)
        elif isinstance(datasets, Dataset):
            datasets = [datasets]
        datasets = list(datasets)
        names = [d.name for d in datasets]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"dataset names must be unique, repeated: {duplicates}")
        self._datasets = tuple(datasets)

    def __len__(self) -> int:
        return len(self._datasets)

    def __iter__(self) -> Iterator[Dataset]:
        return iter(self._datasets)

    def __getitem__(self, key: int | str) -> Dataset:
        if isinstance(key, str):
            for d in self._datasets:
                if d.name == key:
                    return d
            raise KeyError(f"no dataset named {key!r}; datasets: {self.names}")
        return self._datasets[key]

    def __contains__(self, key: object) -> bool:
        return key in self.names

    @property
    def names(self) -> list[str]:
        return [d.name for d in self._datasets]

    def replace(self, name: str, dataset: Dataset) -> Datasets:
        return Datasets([dataset if d.name == name else d for d in self._datasets])

    @property
    def gti(self) -> Any:
        """One interval per dataset with a GTI, from its first start to its last stop (Gammapy's
        ``Datasets.gti``); ``None`` when no dataset has one."""
        from ..data.gti import GTI

        gtis = [getattr(d, "gti", None) for d in self._datasets]
        intervals = [(g.time_start[0], g.time_stop[-1]) for g in gtis if g is not None and len(g) > 0]
        return GTI.from_time_intervals(intervals) if intervals else None

    def select_time(self, time_min: Any, time_max: Any, atol: Any = "1e-6 s") -> Datasets:
        """The datasets whose GTI lies within ``[time_min, time_max]`` (astropy Time), up to
        ``atol``, as Gammapy's ``Datasets.select_time``; a dataset without GTI is an error."""
        from astropy.time import Time

        time_min, time_max, atol = Time(time_min), Time(time_max), u.Quantity(atol)
        selected = []
        for d in self._datasets:
            gti = getattr(d, "gti", None)
            if gti is None or len(gti) == 0:
                raise ValueError(f"select_time: dataset {d.name!r} has no GTI (good time intervals)")
            if gti.time_start[0] >= time_min - atol and gti.time_stop[-1] <= time_max + atol:
                selected.append(d)
        return Datasets(selected)

    def stat_sum(self, models: Any) -> float:
        """The joint statistic: the datasets' ``stat_sum`` plus the prior terms of parameters that
        have a prior and the models' penalties (Gammapy's ``Datasets.stat_sum``; a single
        dataset's has neither)."""
        from ..models.prior import prior_stat_sum
        from ..stats import penalty_stat_sum

        models = _as_models(models)
        extra = prior_stat_sum(models) + penalty_stat_sum(models)
        return float(sum(d.stat_sum(models) for d in self._datasets) + extra)

    @property
    def energy_ranges(self) -> tuple[Any, Any]:
        """Gammapy's ``Datasets.energy_ranges``: the first and last reconstructed-energy edges of
        each dataset, as two Quantity arrays (TeV)."""
        import astropy.units as u

        lows, highs = [], []
        for d in self._datasets:
            geom = getattr(d, "geom", None)
            if geom is not None and "energy" in getattr(geom, "axes_names", ()):
                edges = np.asarray(geom.axis("energy").edges, dtype=np.float64)
            elif getattr(d, "energy_edges", None) is not None:
                edges = np.asarray(getattr(d, "energy_edges"), dtype=np.float64)  # noqa: B009
            else:
                raise TypeError(f"energy_ranges: {type(d).__name__} {d.name!r} has no reconstructed-energy axis")
            lows.append(edges[0])
            highs.append(edges[-1])
        return u.Quantity(lows, "TeV"), u.Quantity(highs, "TeV")

    def slice_by_energy(self, energy_min: Any = None, energy_max: Any = None) -> Datasets:
        """Each dataset's bins between ``energy_min`` and ``energy_max`` (their ``slice_by_energy``,
        names kept); datasets without a bin there are left out, as Gammapy's ``Datasets.slice_by_energy``."""
        from ..geom.axes import EmptyEnergyRangeError

        sliced = []
        for d in self._datasets:
            method = getattr(d, "slice_by_energy", None)
            if method is None:
                raise TypeError(f"slice_by_energy: {type(d).__name__} {d.name!r} has no energy axis to slice")
            try:
                sliced.append(method(energy_min, energy_max, name=d.name))
            except EmptyEnergyRangeError:
                log.info(f"Dataset {d.name} does not contribute in the energy range")
        return Datasets(sliced)

    def to_spectrum_datasets(self, region: Any, containment_correction: bool = False, models: Any = None) -> Datasets:
        """Each map dataset's spectrum in ``region`` (its ``to_spectrum_dataset``, names kept), as
        Gammapy's ``Datasets.to_spectrum_datasets``; ``models`` supplies the FoV background models."""
        out = []
        for d in self._datasets:
            from .map import MapDataset, MapDatasetOnOff

            if not isinstance(d, (MapDataset, MapDatasetOnOff)):
                raise TypeError(f"to_spectrum_datasets: {type(d).__name__} {d.name!r} is not a map dataset")
            out.append(d.to_spectrum_dataset(region, containment_correction, name=d.name, models=models))
        return Datasets(out)

    def stack_reduce(self, name: str | None = None, models: Any = None) -> Dataset:
        """Stack all datasets into one, following Gammapy's stacking rules for their type.

        ``models`` gives the FoV background models folded into the stacked background of Cash map
        datasets (Gammapy stacks ``npred_background``); other types do not use it.
        """
        if not self._datasets:
            raise ValueError("cannot stack an empty Datasets")
        kinds = {type(d) for d in self._datasets}
        if len(kinds) != 1:
            raise ValueError(
                f"stack_reduce needs datasets of one type, got {sorted(k.__name__ for k in kinds)}"
            )
        stack = getattr(type(self._datasets[0]), "stack_datasets", None)
        if stack is None:
            raise ValueError(f"{type(self._datasets[0]).__name__} datasets cannot be stacked")
        if models is not None and "models" in inspect.signature(stack).parameters:
            return stack(list(self._datasets), name=name, models=models)
        return stack(list(self._datasets), name=name)

    def info_table(self, models: Any = None, cumulative: bool = False) -> Table:
        """One row of ``info_dict`` per dataset, as Gammapy's ``Datasets.info_table``.

        Parameters
        ----------
        models : Models, optional
            The predicted counts and the statistic need them (NaN without).
        cumulative : bool
            Row ``i`` describes the stack of the first ``i + 1`` datasets (named "stacked", without
            models, as Gammapy).

        Raises
        ------
        ValueError
            If the datasets are not all of one type (as Gammapy).
        """
        if not self._datasets:
            return Table()
        kinds = {type(d) for d in self._datasets}
        if len(kinds) != 1:
            raise ValueError(
                f"info_table is not supported for mixed dataset types: {sorted(k.__name__ for k in kinds)}"
            )
        if cumulative:
            rows = [
                Datasets(self._datasets[: i + 1]).stack_reduce(name="stacked").info_dict()
                for i in range(len(self._datasets))
            ]
        else:
            rows = [d.info_dict() if models is None else d.info_dict(models) for d in self._datasets]
        keys = list(rows[0])
        for r in rows[1:]:
            keys += [k for k in r if k not in keys]
        return Table(rows=[[r.get(k) for k in keys] for r in rows], names=keys)

    def summary(self, models: Any = None) -> str:
        """Gammapy's ``str(datasets)``: type, name, instrument and, with ``models``, the names of
        the models that apply, for each dataset."""
        lines = [type(self).__name__, "--------", ""]
        for index, dataset in enumerate(self._datasets):
            names: Any = ""
            if models is not None:
                names = [m.name for m in _as_models(models) if m.applies_to(dataset.name)] or ""
            lines += [
                f"Dataset {index}: ",
                "",
                f"  Type       : {dataset.tag}",
                f"  Name       : {dataset.name}",
                f"  Instrument : {_instrument(dataset)}",
                f"  Models     : {names}",
                "",
            ]
        return "\n".join(lines) + "\n"

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return f"Datasets({self.names})"


def _instrument(dataset: Dataset) -> str:
    """The telescope of a dataset: ``TELESCOP`` of its meta table (Gammapy) or of its metadata."""
    table = getattr(dataset, "meta_table", None)
    if table is not None and "TELESCOP" in getattr(table, "colnames", ()):
        values = {str(v) for v in np.ravel(np.asarray(table["TELESCOP"]))}
        if values:
            return values.pop()
    meta = dict(getattr(dataset, "meta", ()) or ())
    return str(meta.get("TELESCOP", ""))
