"""A PyTorch Lightning callback: each ``fit`` recorded as a decompute run, the energy of
each epoch logged to the trainer's logger (``decompute/energy_j``). Lightning is imported
only when the callback is made.

    from decompute.lightning import DecomputeCallback
    trainer = Trainer(callbacks=[DecomputeCallback(project="vision")])
"""

from __future__ import annotations

from typing import Any


def _base() -> type:
    try:
        from lightning.pytorch import Callback  # type: ignore
    except ImportError:
        try:
            from pytorch_lightning import Callback  # type: ignore
        except ImportError as e:
            raise ImportError(
                "decompute.lightning needs PyTorch Lightning: pip install lightning"
            ) from e
    return Callback


def DecomputeCallback(**track_kwargs: Any) -> Any:
    """A Lightning ``Callback`` tracking the fit; keywords as :func:`decompute.track`."""
    from . import Track

    class _Callback(_base()):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.track: Any = None
            self._epoch_start = 0.0

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.track = Track(**track_kwargs).start()
            self._epoch_start = 0.0

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if self.track is None:
                return
            now = self.track.energy_so_far_j()
            logger = getattr(trainer, "logger", None)
            if logger is not None:
                logger.log_metrics(
                    {"decompute/energy_j": now - self._epoch_start},
                    step=getattr(trainer, "current_epoch", None),
                )
            self._epoch_start = now

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            if self.track is not None:
                self.track.stop()

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            if self.track is not None and self.track.report is None:
                self.track.stop(failed=True)

    return _Callback()
