"""decompute: measure, model and limit the energy, carbon and water of computing.

``with decompute.track():`` measures the calling process and its children on decompute's
sampling core (the same Rust library as the ``decompute`` command), records the run in the
ledger like ``decompute run``, and checks budgets every interval. Afterwards the tracker
holds the ``decompute.run/1`` report as a dict (``t.report``) and the workload's figures
(``t.energy_j``, ``t.carbon_g``, ``t.water_l``, each a float with ``.low`` and ``.high``).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
import warnings
from typing import Any, Callable, Dict, Mapping, Optional, TypeVar

from . import _native

__version__: str = _native.__version__

__all__ = [
    "BudgetExceeded",
    "BudgetWarning",
    "Figure",
    "Track",
    "track",
    "start",
    "estimate_train",
    "estimate_infer",
]

F = TypeVar("F", bound=Callable[..., Any])


class BudgetExceeded(BaseException):
    """A budget of the tracker (or of the policy file's project) is used up.

    Derived from ``BaseException``, as ``KeyboardInterrupt`` is, so that the ``except
    Exception:`` of a training loop does not swallow it; and raised again every interval
    while the block goes on past its budget."""


class BudgetWarning(UserWarning):
    """A budget is used up and ``on_exceed="warn"`` was chosen."""


class Figure(float):
    """A figure with its range: ``f``, ``f.low``, ``f.high``."""

    low: float
    high: float

    def __new__(cls, value: float, low: float, high: float) -> "Figure":
        f = super().__new__(cls, value)
        f.low = float(low)
        f.high = float(high)
        return f

    def __repr__(self) -> str:
        return f"{float(self)!r} ({self.low!r}–{self.high!r})"


class Track:
    """Measures the calling process from ``start()`` (or ``with``) to ``stop()``.

    project: the ledger project [default: the Slurm account, the policy file's, the
        config file's, else the git repository's name].
    tags: ``{"key": "value"}`` recorded with the run.
    ledger: a ledger path or ``postgres://`` URL [default: as ``decompute run``].
    interval: seconds between samples (0.1 to 60).
    budget: ``"energy=500Wh,carbon=200g,water=3L,time=2h"`` (any subset); the policy
        file's project budgets apply too.
    on_exceed: ``"raise"`` raises :class:`BudgetExceeded` in the tracked thread at its next
        bytecode; ``"warn"`` warns with :class:`BudgetWarning`; ``"pause"`` is refused (a
        process cannot freeze itself).
    record: write the run to the ledger.
    zone, pue: as ``decompute run --zone/--pue``.
    """

    def __init__(
        self,
        project: Optional[str] = None,
        tags: Optional[Mapping[str, str]] = None,
        ledger: Optional[str] = None,
        interval: float = 1.0,
        budget: Optional[str] = None,
        on_exceed: str = "raise",
        record: bool = True,
        zone: Optional[str] = None,
        pue: Optional[str] = None,
    ) -> None:
        if on_exceed == "pause":
            raise ValueError(
                "on_exceed='pause' is refused: a process cannot freeze itself; use 'raise' or 'warn'"
            )
        if on_exceed not in ("raise", "warn"):
            raise ValueError(f"on_exceed={on_exceed!r} is not one of 'raise', 'warn'")
        self._kwargs: Dict[str, Any] = dict(
            project=project,
            tags=tags,
            ledger=ledger,
            interval=interval,
            budget=budget,
            on_exceed=on_exceed,
            record=record,
            zone=zone,
            pue=pue,
        )
        self._native = _native.Tracker(
            project=project,
            tags=[(str(k), str(v)) for k, v in (tags or {}).items()],
            ledger=None if ledger is None else os.fspath(ledger),
            record=record,
            interval=float(interval),
            budget=budget,
            zone=zone,
            pue=None if pue is None else str(pue),
            command=[sys.executable] + list(sys.argv),
        )
        self.on_exceed = on_exceed
        self.interval = float(interval)
        self.report: Optional[Dict[str, Any]] = None
        self.recorded_in: Optional[str] = None
        self.exceeded: Optional[str] = None
        self._id: Optional[str] = None
        self._nested = False
        self._watcher: Optional[threading.Thread] = None
        self._stop_watch = threading.Event()
        self._thread_id: Optional[int] = None
        self._raised = False

    # -- the tracker's life -----------------------------------------------------------
    def start(self) -> "Track":
        """Starts measuring; returns the tracker."""
        self._native.start()
        self._id = self._native.id
        self._nested = bool(self._native.nested)
        self._thread_id = threading.get_ident()
        self._stop_watch.clear()
        self._watcher = threading.Thread(
            target=self._watch, name="decompute-budget", daemon=True
        )
        self._watcher.start()
        return self

    def _watch(self) -> None:
        # Checks at a tenth of the interval (at most every 0.1 s) so a budget trips promptly;
        # raises into the tracked thread only while it runs the user's code (never inside
        # stop or __exit__), and again each interval for as long as the block goes on.
        poll = min(self.interval / 10, 0.1)
        next_raise = 0.0
        while not self._stop_watch.wait(poll):
            why = self._native.exceeded()
            if not why:
                continue
            self.exceeded = why
            if self.on_exceed != "raise" or self._thread_id is None:
                warnings.warn(f"decompute: {why}", BudgetWarning, stacklevel=2)
                return
            now = time.monotonic()
            if now >= next_raise and _native.raise_unless_stopping(
                self._thread_id, BudgetExceeded, _STOPPING_CODE
            ):
                self._raised = True
                next_raise = now + self.interval

    def stop(self, failed: bool = False) -> Dict[str, Any]:
        """Stops, records the run (unless ``record=False``) and returns the report.

        Never raises the budget's exception itself: the watcher does not raise into a thread
        that is stopping, so the run is always stopped and recorded first."""
        if self.report is not None:
            return self.report
        self._stop_watch.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join()
        by_budget = self.exceeded is not None and self.on_exceed == "raise"
        report_json, recorded = self._native.stop(failed, by_budget)
        self.report = json.loads(report_json)
        self.recorded_in = recorded
        if self.exceeded is None:
            for n in self.report.get("notes", []):
                if "budget used up" in n:
                    self.exceeded = n
        return self.report

    @property
    def id(self) -> Optional[str]:
        """The run id in the ledger (once started)."""
        return self._id

    @property
    def nested(self) -> bool:
        """Started while another tracker of this process was running (counted there)."""
        return self._nested

    def energy_so_far_j(self) -> float:
        """The workload's energy up to now, J (for per-epoch logging): the counters are read
        at this call, so an epoch shorter than the interval still gets its own energy and
        consecutive readings add up to the whole run."""
        return float(self._native.energy_now_j())

    # -- results ----------------------------------------------------------------------
    def _need(self) -> Dict[str, Any]:
        if self.report is None:
            raise RuntimeError("the tracker has not stopped yet")
        return self.report

    @property
    def energy_j(self) -> Figure:
        e = self._need()["energy_j"]
        return Figure(e["workload"], e["workload_low"], e["workload_high"])

    @property
    def carbon_g(self) -> Figure:
        c = self._need()["carbon_g"]
        return Figure(c["value"], c["low"], c["high"])

    @property
    def water_l(self) -> Figure:
        w = self._need()["water_l"]
        return Figure(w["value"], w["low"], w["high"])

    # -- with, and as a decorator -------------------------------------------------------
    def __enter__(self) -> "Track":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.stop(failed=exc_type is not None)
        if exc_type is not None and issubclass(exc_type, BudgetExceeded) and not (
            exc is not None and exc.args
        ):
            raise BudgetExceeded(self.exceeded or "a budget is used up") from None
        if exc_type is None and self._raised:
            # The block swallowed the budget's exception (a bare ``except:``) and went on:
            # it ends as what it is.
            raise BudgetExceeded(self.exceeded or "a budget is used up")
        return False

    def __call__(self, func: F) -> F:
        kwargs = self._kwargs

        @functools.wraps(func)
        def wrapper(*args: Any, **kw: Any) -> Any:
            with Track(**kwargs):
                return func(*args, **kw)

        return wrapper  # type: ignore[return-value]


#: The code the watcher never raises into: a thread inside these is stopping the tracker.
_STOPPING_CODE = [Track.stop.__code__, Track.__exit__.__code__]

#: ``with decompute.track(...) as t:`` or ``@decompute.track(...)``: the tracker class
#: itself, so the keywords and their documentation are :class:`Track`'s.
track = Track


def start(**kwargs: Any) -> Track:
    """Notebook form: ``t = decompute.start(project=...)`` … ``t.stop()``."""
    return Track(**kwargs).start()


def _args(pairs: Mapping[str, Any]) -> list:
    out = []
    for k, v in pairs.items():
        if v is None or v is False:
            continue
        flag = "--" + k.replace("_", "-")
        if v is True:
            out.append(flag)
        else:
            out += [flag, str(v)]
    return out


def estimate_train(**kwargs: Any) -> Dict[str, Any]:
    """``decompute estimate train`` as a dict (``decompute.estimate/1``).

    Keywords as the command's flags: params, active_params, tokens, flop, hardware, count,
    device_hours, days, mfu, power_w, embodied, embodied_kg, zone, pue, wue, ewif,
    grid_intensity. Numbers may be strings with suffixes ("70B", "2T")."""
    return json.loads(_native.estimate(["train"] + _args(kwargs)))


def estimate_infer(**kwargs: Any) -> Dict[str, Any]:
    """``decompute estimate infer`` as a dict (``decompute.estimate-infer/1``).

    Keywords as the command's flags: params, active_params (or model, with provider: a
    hosted model's size from the registry, a range where the provider publishes none),
    hardware, count, tokens_out, requests, batch, precision, stack, zone, pue, wue, ewif,
    grid_intensity."""
    return json.loads(_native.estimate(["infer"] + _args(kwargs)))
