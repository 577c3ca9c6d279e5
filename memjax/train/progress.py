"""Progress display: a tqdm bar (step, loss, it/s) on a terminal, short lines everywhere else.

The bar is used when ``enabled`` and stderr is a TTY and the ``CI`` environment variable is not
set. Otherwise (``--no-progress``, a pipe, a log file, CI) :class:`Progress` prints one short line
every ``every`` steps and at the last step, e.g. ``[demo] step 40/100  loss 0.1234  55.1 it/s``.

Only the values given to :meth:`Progress.update` as ``metrics`` are shown; the training loop passes
them at its log steps only, so the bar never forces a device sync. Time spent inside
:meth:`Progress.paused` (the loop compiles its step there, after printing ``compiling ...``) is left
out of ``it/s``.

Example:
    >>> from memjax.train import Progress
    >>> with Progress(total=3, enabled=False, every=3, desc="demo") as bar:  # one line on stderr
    ...     for step in range(1, 4):
    ...         bar.update(step, {"loss": 1.0 / step})
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Mapping
from typing import IO, Any

__all__ = ["Progress", "use_progress_bar"]


def use_progress_bar(enabled: bool = True, stream: IO[str] | None = None) -> bool:
    """Whether a live bar fits: ``enabled``, ``stream`` (default stderr) is a TTY, ``CI`` unset."""
    stream = sys.stderr if stream is None else stream
    if not enabled or os.environ.get("CI"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Progress:
    """Shows training progress from step ``initial`` to ``total``.

    Args:
        total: the last step.
        initial: the step the run starts from (a resumed run starts at its checkpoint).
        enabled: ``False`` for ``--no-progress``: no bar, plain lines instead.
        every: with plain lines, print every this many steps (and at ``total``).
        desc: a label in front (the experiment's name).
        stream: where to write (default ``sys.stderr``).
        quiet: no output at all (non-zero processes of a multi-host run).
    """

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        enabled: bool = True,
        every: int = 10,
        desc: str = "train",
        stream: IO[str] | None = None,
        quiet: bool = False,
    ):
        self.total = int(total)
        self.initial = int(initial)
        self.every = max(1, int(every))
        self.desc = desc
        self.stream = stream
        self.quiet = quiet
        self._bar = None
        self._t0 = time.perf_counter()
        self._step = self.initial
        self._last: dict[str, Any] = {}
        if not quiet and use_progress_bar(enabled, stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=self.total,
                initial=self.initial,
                desc=desc,
                unit="step",
                dynamic_ncols=True,
                file=stream or sys.stderr,
            )

    @property
    def uses_bar(self) -> bool:
        """Whether a live tqdm bar is shown."""
        return self._bar is not None

    def rate(self) -> float:
        """Steps per second since this display started, time inside :meth:`paused` left out."""
        elapsed = time.perf_counter() - self._t0
        return (self._step - self.initial) / elapsed if elapsed > 0 else 0.0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """A block whose duration does not count in ``it/s`` (e.g. compiling the step).

        Example:
            >>> import io
            >>> bar = Progress(2, enabled=False, stream=io.StringIO())
            >>> with bar.paused():
            ...     pass  # compile here
            >>> bar.update(2); bar.rate() > 0
            True
        """
        t0 = time.perf_counter()
        try:
            yield
        finally:
            waited = time.perf_counter() - t0
            self._t0 += waited
            if self._bar is not None:
                self._bar.unpause()  # tqdm: restart its clock from now

    def update(self, step: int, metrics: Mapping[str, Any] | None = None) -> None:
        """Marks ``step`` as done; ``metrics`` (e.g. ``{"loss": 0.3}``) are shown when given."""
        step = int(step)
        advance, self._step = step - self._step, step
        if metrics:
            self._last = dict(metrics)
        if self.quiet:
            return
        if self._bar is not None:
            if metrics:
                self._bar.set_postfix({k: _fmt(v) for k, v in self._last.items()}, refresh=False)
            self._bar.update(advance)
        elif step % self.every == 0 or step == self.total:
            self.write(self.line())

    def line(self) -> str:
        """The plain progress line for the current step."""
        parts = [f"[{self.desc}] step {self._step}/{self.total}"]
        parts += [f"{k} {_fmt(v)}" for k, v in self._last.items()]
        parts.append(f"{self.rate():.3g} it/s")
        return "  ".join(parts)

    def write(self, text: str) -> None:
        """Prints a message without breaking the bar."""
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.write(text, file=self.stream or sys.stderr)
        else:
            stream = self.stream or sys.stderr
            print(text, file=stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
