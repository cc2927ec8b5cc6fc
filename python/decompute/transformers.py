"""A Hugging Face ``transformers`` ``TrainerCallback``: each training run recorded as a
decompute run, the energy of each epoch added to the trainer's log history
(``decompute_energy_j``). transformers is imported only when the callback is made.

    from decompute.transformers import DecomputeCallback
    trainer = Trainer(..., callbacks=[DecomputeCallback(project="nlp")])
"""

from __future__ import annotations

from typing import Any


def DecomputeCallback(**track_kwargs: Any) -> Any:
    """A ``TrainerCallback`` tracking the training; keywords as :func:`decompute.track`."""
    try:
        from transformers import TrainerCallback  # type: ignore
    except ImportError as e:
        raise ImportError(
            "decompute.transformers needs Hugging Face transformers: pip install transformers"
        ) from e
    from . import Track

    class _Callback(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.track: Any = None
            self._epoch_start = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self.track = Track(**track_kwargs).start()
            self._epoch_start = 0.0

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.track is None:
                return
            now = self.track.energy_so_far_j()
            state.log_history.append(
                {"epoch": state.epoch, "decompute_energy_j": now - self._epoch_start}
            )
            self._epoch_start = now

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if self.track is not None:
                self.track.stop()

    return _Callback()
