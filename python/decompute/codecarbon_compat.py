"""CodeCarbon's ``EmissionsTracker``, on decompute: change one import line.

    from decompute.codecarbon_compat import EmissionsTracker

``start()``/``stop()`` as CodeCarbon's, ``stop()`` returning the emissions in kg CO2e
(location-based, the workload's share); also a context manager and ``final_emissions``.
The run goes to decompute's ledger (``project_name`` is its project). CodeCarbon options
that decompute has an equivalent for are honoured (``measure_power_secs``,
``country_iso_code``, ``pue``, ``save_to_file`` as recording); the others are accepted and
ignored, with one warning naming them.
"""

from __future__ import annotations

import warnings
from typing import Any, Optional

from . import Track

_HONOURED = {"project_name", "measure_power_secs", "country_iso_code", "pue", "save_to_file"}


class EmissionsTracker:
    def __init__(
        self,
        project_name: str = "codecarbon",
        measure_power_secs: float = 15,
        country_iso_code: Optional[str] = None,
        pue: Optional[float] = None,
        save_to_file: bool = True,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            warnings.warn(
                "decompute.codecarbon_compat ignores CodeCarbon options it has no equivalent for: "
                + ", ".join(sorted(kwargs)),
                stacklevel=2,
            )
        self._track = Track(
            project=project_name,
            interval=min(max(float(measure_power_secs), 0.1), 60.0),
            zone=country_iso_code,
            pue=None if pue is None else str(pue),
            record=bool(save_to_file),
            on_exceed="warn",
        )
        self.final_emissions: Optional[float] = None

    def start(self) -> None:
        self._track.start()

    def stop(self) -> float:
        """Stops and returns the emissions in kg CO2e, as CodeCarbon does."""
        self._track.stop()
        self.final_emissions = float(self._track.carbon_g) / 1000.0
        return self.final_emissions

    def flush(self) -> Optional[float]:
        """CodeCarbon writes intermediate rows here; decompute records at stop: None."""
        return None

    def __enter__(self) -> "EmissionsTracker":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.stop()
        return False

    @property
    def tracker(self) -> Track:
        """The decompute tracker underneath (its report, figures with ranges)."""
        return self._track
