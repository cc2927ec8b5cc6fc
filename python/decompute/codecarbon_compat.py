"""CodeCarbon's trackers on decompute: change one import line, keep CodeCarbon's meaning.

    from decompute.codecarbon_compat import EmissionsTracker, OfflineEmissionsTracker, track_emissions

What each returns means what it means in CodeCarbon 3.x:

- ``tracking_mode="machine"`` (CodeCarbon's default): ``stop()`` returns the **whole
  machine's** emissions in kg CO2e over the tracked time (decompute's *host* figures), as
  CodeCarbon does; ``"process"``: the tracked process and its children (decompute's
  *workload* figures, which CodeCarbon estimates from the process's CPU share).
- ``save_to_file=True`` (the default) appends one row to ``output_dir/output_file``
  (``./emissions.csv``) with CodeCarbon 3.3.2's 38 columns and units (kWh, kg, W incl. PUE),
  header first when the file is new, so CodeCarbon's own tools read it. The run is also
  recorded in decompute's ledger (``project_name`` is its project) at the *workload* scope,
  as every decompute run is, under the same run id, so importing the file into the ledger
  adds nothing twice.
- ``final_emissions`` (kg) and ``final_emissions_data`` (an :class:`EmissionsData` with
  CodeCarbon's fields) after ``stop()``; ``track_emissions`` as a decorator, with or
  without arguments (``offline=True`` and ``country_iso_code`` for the offline tracker).

CodeCarbon options with a decompute equivalent are honoured (``project_name``,
``measure_power_secs``, ``output_dir``, ``output_file``, ``save_to_file``,
``tracking_mode``, ``experiment_id``, ``pue``, ``country_iso_code``, ``cloud_provider`` with
``cloud_region``, ``on_csv_write``); its other options are accepted and ignored with one
warning naming them; a name CodeCarbon does not know is a ``TypeError``, as in CodeCarbon.
Carbon is location-based from decompute's shipped grid data, never a live API.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
import platform
import warnings
from typing import Any, Callable, Dict, List, Optional

from . import Track, _native

__all__ = [
    "EmissionsData",
    "EmissionsTracker",
    "OfflineEmissionsTracker",
    "track_emissions",
]

#: CodeCarbon 3.3.2's tracker options that decompute has no equivalent for: accepted (a
#: CodeCarbon script passes them) and ignored, with one warning.
_IGNORED = {
    "api_call_interval",
    "api_endpoint",
    "api_key",
    "output_methods",
    "save_to_api",
    "save_to_logger",
    "logging_logger",
    "save_to_prometheus",
    "save_to_logfire",
    "prometheus_url",
    "output_handlers",
    "gpu_ids",
    "emissions_endpoint",
    "experiment_name",
    "electricitymaps_api_token",
    "co2_signal_api_token",
    "log_level",
    "logger_preamble",
    "force_cpu_power",
    "force_ram_power",
    "wue",
    "force_carbon_intensity_g_co2e_kwh",
    "force_mode_cpu_load",
    "allow_multiple_runs",
    "rapl_include_dram",
    "rapl_prefer_psys",
    "metadata",
    "region",
    "country_2letter_iso_code",
}


@dataclasses.dataclass
class EmissionsData:
    """CodeCarbon's ``EmissionsData``: one run's row, its fields and units (kWh, kg, W)."""

    timestamp: str
    project_name: str
    run_id: str
    experiment_id: str
    duration: float
    emissions: float
    emissions_rate: float
    cpu_power: float
    gpu_power: float
    ram_power: float
    cpu_energy: float
    gpu_energy: float
    ram_energy: float
    energy_consumed: float
    water_consumed: float
    country_name: str
    country_iso_code: str
    region: str
    cloud_provider: str
    cloud_region: str
    os: str
    python_version: str
    codecarbon_version: str
    cpu_count: float
    cpu_model: str
    gpu_count: float
    gpu_model: str
    longitude: float
    latitude: float
    ram_total_size: float
    tracking_mode: str
    cpu_utilization_percent: float = 0.0
    gpu_utilization_percent: float = 0.0
    ram_utilization_percent: float = 0.0
    ram_used_gb: float = 0.0
    on_cloud: str = "N"
    pue: float = 1
    wue: float = 0

    @property
    def values(self) -> Dict[str, Any]:
        return dict(self.__dict__.items())

    def toJSON(self) -> str:  # noqa: N802 (CodeCarbon's name)
        return json.dumps(self.__dict__, sort_keys=True, indent=4)


_FLOATS = {f.name for f in dataclasses.fields(EmissionsData) if f.type in ("float", float)}


def _data(header: List[str], cells: List[str]) -> EmissionsData:
    kw: Dict[str, Any] = {}
    for name, cell in zip(header, cells):
        if name in _FLOATS:
            kw[name] = float(cell) if cell != "" else 0.0
        else:
            kw[name] = cell
    return EmissionsData(**kw)


class EmissionsTracker:
    """CodeCarbon's ``EmissionsTracker``: ``start()``, ``stop()`` → kg CO2e, ``with``."""

    def __init__(
        self,
        project_name: str = "codecarbon",
        measure_power_secs: float = 15,
        output_dir: str = ".",
        output_file: str = "emissions.csv",
        save_to_file: bool = True,
        tracking_mode: str = "machine",
        experiment_id: Optional[str] = None,
        on_csv_write: str = "append",
        pue: Optional[float] = None,
        country_iso_code: Optional[str] = None,
        cloud_provider: Optional[str] = None,
        cloud_region: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - _IGNORED)
        if unknown:
            raise TypeError(
                f"{type(self).__name__}() got an unexpected keyword argument '{unknown[0]}'"
            )
        if kwargs:
            warnings.warn(
                "decompute.codecarbon_compat ignores CodeCarbon options it has no equivalent for: "
                + ", ".join(sorted(kwargs)),
                stacklevel=2,
            )
        if tracking_mode not in ("machine", "process"):
            raise ValueError(
                f"tracking_mode={tracking_mode!r} is not one of 'machine', 'process'"
            )
        if on_csv_write not in ("append", "update"):
            raise ValueError(
                f"Unknown `on_csv_write` value: {on_csv_write} (should be one of 'append' or 'update')"
            )
        self._project_name = project_name
        self._tracking_mode = tracking_mode
        self._save_to_file = bool(save_to_file)
        self._output_path = os.path.join(os.fspath(output_dir), os.fspath(output_file))
        self._on_csv_write = on_csv_write
        if self._save_to_file and not os.path.isdir(os.fspath(output_dir)):
            raise OSError(f"Folder '{output_dir}' doesn't exist !")
        zone = country_iso_code
        if cloud_provider and cloud_region:
            zone = f"{cloud_provider.lower()}:{cloud_region}"
        tags = {"experiment_id": experiment_id} if experiment_id else None
        self._track = Track(
            project=project_name,
            tags=tags,
            interval=min(max(float(measure_power_secs), 0.1), 60.0),
            zone=zone,
            pue=None if pue is None else str(pue),
            on_exceed="warn",
        )
        self.final_emissions: Optional[float] = None
        self.final_emissions_data: Optional[EmissionsData] = None

    def start(self) -> None:
        self._track.start()

    def stop(self) -> Optional[float]:
        """Stops; returns the emissions in kg CO2e of ``tracking_mode``'s scope."""
        if self.final_emissions is not None:
            return self.final_emissions
        report = self._track.stop()
        header, cells = _native.codecarbon_row(json.dumps(report), self._tracking_mode)
        cells[header.index("python_version")] = platform.python_version()
        self.final_emissions_data = _data(header, cells)
        self.final_emissions = self.final_emissions_data.emissions
        if self._save_to_file:
            self._write(header, cells)
        return self.final_emissions

    def _write(self, header: List[str], cells: List[str]) -> None:
        path = self._output_path
        new = not os.path.exists(path) or os.path.getsize(path) == 0
        if not new:
            with open(path, newline="", encoding="utf-8") as f:
                theirs = next(csv.reader(f), [])
            if sorted(theirs) != sorted(header):
                # CodeCarbon moves such a file aside; decompute leaves what is not its own
                # alone. The run is in the ledger and in final_emissions_data.
                warnings.warn(
                    f"decompute: {path} has other columns than CodeCarbon 3.3.2's; nothing was "
                    "written to it (the run is in the ledger); give another output_file",
                    stacklevel=3,
                )
                return
            header_order = theirs
        else:
            header_order = header
        row = dict(zip(header, cells))
        with open(path, "a", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            if new:
                w.writerow(header_order)
            w.writerow([row[c] for c in header_order])

    def flush(self) -> Optional[float]:
        """CodeCarbon writes the emissions so far; decompute writes at ``stop()``: None."""
        return None

    def __enter__(self) -> "EmissionsTracker":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def tracker(self) -> Track:
        """The decompute tracker underneath (its report, workload figures with ranges)."""
        return self._track


class OfflineEmissionsTracker(EmissionsTracker):
    """CodeCarbon's offline tracker: ``country_iso_code`` (``"FRA"``) or ``cloud_provider``
    with ``cloud_region`` names the grid. decompute never calls an API, so the two trackers
    differ only in what they require."""

    def __init__(self, *args: Any, country_iso_code: Optional[str] = None, **kwargs: Any) -> None:
        if country_iso_code is None and not (
            kwargs.get("cloud_provider") and kwargs.get("cloud_region")
        ):
            raise ValueError(
                "OfflineEmissionsTracker needs country_iso_code (e.g. 'FRA'), or cloud_provider and cloud_region"
            )
        super().__init__(*args, country_iso_code=country_iso_code, **kwargs)


def track_emissions(fn: Optional[Callable] = None, offline: bool = False, **kwargs: Any) -> Any:
    """CodeCarbon's decorator: ``@track_emissions`` or ``@track_emissions(project_name=...)``;
    each call of the function is one tracked run."""

    def decorate(f: Callable) -> Callable:
        @functools.wraps(f)
        def wrapped(*args: Any, **kw: Any) -> Any:
            cls = OfflineEmissionsTracker if offline else EmissionsTracker
            tracker = cls(**kwargs)
            tracker.start()
            try:
                return f(*args, **kw)
            finally:
                tracker.stop()

        return wrapped

    if fn is not None:
        return decorate(fn)
    return decorate
