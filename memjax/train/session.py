"""What a training session leaves behind and how it ends: the run's wall time across
``--resume``, Ctrl-C, and user errors on an experiment's command line.

* **Wall time across sessions.** :class:`RunClock` keeps ``run_time.json`` in the run folder: for
  each kept checkpoint step, the seconds spent to reach it, summed over every session that
  worked on the run (a resumed session adds its own time to what the checkpoint it resumed from
  had cost). :func:`read_run_seconds` reads the figure at the latest step, so a summary written
  after ``--resume`` times the whole run, not only the resumed part. Time after the last
  checkpoint of an interrupted session is not counted: that work is done again.
* **Ctrl-C.** The training loop turns ``KeyboardInterrupt`` into :class:`TrainingInterrupted`,
  which says where the run stopped (``interrupted at step N; rerun with --resume``).
* **The command line.** :func:`install_cli_handler` (called by :func:`memjax.train.parse_args`)
  prints that message, or the message of a user error (:class:`FileExistsError`, e.g. a run
  folder that already has checkpoints; :class:`memjax.train.ConfigError` and any exception class
  with ``user_error = True``), instead of a traceback. XLA does not look at Python's signals
  while it compiles, so a Ctrl-C would wait for
  the compile to end; under the handler the loop marks its compile with :func:`compiling`, and a
  Ctrl-C there prints the message and exits at once (exit status 130; nothing is lost: no
  checkpoint is being written while the step compiles).

Example:
    >>> import tempfile, pathlib
    >>> from memjax.train.session import RunClock, TrainingInterrupted, read_run_seconds
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> clock = RunClock(folder, resume_step=None)
    >>> clock.checkpoint(10)  # the seconds since the clock started, filed under step 10
    >>> 0 <= read_run_seconds(folder) < 60
    True
    >>> print(TrainingInterrupted(step=12, checkpoint=10, where="runs/demo"))  # doctest: +ELLIPSIS
    interrupted at step 12 (last checkpoint: step 10 in runs/demo); rerun with --resume ...
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "RUN_TIME_FILE",
    "RunClock",
    "TrainingInterrupted",
    "compiling",
    "install_cli_handler",
    "read_run_seconds",
]

RUN_TIME_FILE = "run_time.json"
"""The file in a run folder with the seconds spent up to each kept checkpoint."""

_KEEP = 16  # checkpoint steps kept in run_time.json


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`memjax.train.train`: where the run stopped and how to go on.

    Attributes:
        step: the number of updates done when it stopped.
        checkpoint: the step of the latest checkpoint (``None``: none yet).
        where: the run folder.
        compiling: it stopped while the step compiled.
        desc: the progress label (``<experiment>/<variant>``), shown in front.
    """

    def __init__(
        self,
        step: int,
        checkpoint: int | None,
        where: str | Path,
        *,
        compiling: bool = False,
        desc: str | None = None,
    ):
        self.step, self.checkpoint, self.where = int(step), checkpoint, str(where)
        self.compiling, self.desc = compiling, desc
        super().__init__(self.message())

    def message(self) -> str:
        """The text: ``[desc] interrupted at step N ...; rerun with --resume ...``."""
        during = " (while compiling)" if self.compiling else ""
        label = f"[{self.desc}] " if self.desc else ""
        if self.checkpoint is None:
            return label + (
                f"interrupted at step {self.step}{during}, before the first checkpoint in "
                f"{self.where}; rerun with --resume to start again from step 0"
            )
        return label + (
            f"interrupted at step {self.step}{during} (last checkpoint: step "
            f"{self.checkpoint} in {self.where}); rerun with --resume to continue from step "
            f"{self.checkpoint}"
        )

    def __str__(self) -> str:
        return self.message()


def _read(out_dir: Path) -> dict[str, float]:
    try:
        data = json.loads((out_dir / RUN_TIME_FILE).read_text())
        return {str(k): float(v) for k, v in data.get("checkpoints", {}).items()}
    except (OSError, ValueError, AttributeError, TypeError):
        return {}


def read_run_seconds(out_dir: str | Path) -> float:
    """The seconds the run in ``out_dir`` took up to its latest checkpoint, over all its sessions
    (0.0 when nothing was recorded).

    Example:
        >>> import tempfile
        >>> read_run_seconds(tempfile.mkdtemp())
        0.0
    """
    times = _read(Path(out_dir))
    return times[max(times, key=int)] if times else 0.0


class RunClock:
    """The wall time of a run across sessions, kept in ``out_dir / run_time.json``.

    Args:
        out_dir: the run folder.
        resume_step: the checkpoint step this session starts from (``None``: a fresh run, whose
            old record is dropped).
    """

    def __init__(self, out_dir: str | Path, *, resume_step: int | None, enabled: bool = True):
        self.out_dir = Path(out_dir)
        self.enabled = enabled
        self._t0 = time.perf_counter()
        self._times = _read(self.out_dir) if resume_step is not None else {}
        self.prior = self._times.get(str(resume_step), 0.0) if resume_step is not None else 0.0
        if resume_step is not None:  # later entries belong to work that is redone
            self._times = {k: v for k, v in self._times.items() if int(k) <= resume_step}
        elif enabled:
            (self.out_dir / RUN_TIME_FILE).unlink(missing_ok=True)

    @property
    def seconds(self) -> float:
        """The run's seconds so far: the resumed checkpoint's, plus this session's."""
        return self.prior + time.perf_counter() - self._t0

    def checkpoint(self, step: int) -> None:
        """Files the seconds so far under checkpoint ``step``."""
        if not self.enabled:
            return
        self._times[str(int(step))] = round(self.seconds, 3)
        kept = sorted(self._times, key=int)[-_KEEP:]
        self._times = {k: self._times[k] for k in kept}
        path = self.out_dir / RUN_TIME_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({"checkpoints": self._times}, indent=1) + "\n")
        os.replace(tmp, path)


# ----------------------------------------------------------------------------- command line

_CLI: dict[str, object] = {"prog": None, "message": None, "watchdog": False}
_EXITING = threading.Lock()


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def _watch(read_fd: int) -> None:
    while True:
        try:
            data = os.read(read_fd, 64)
        except OSError:
            return
        if not data:
            return
        message = _CLI["message"]
        if message is not None and signal.SIGINT in data:
            _exit_with(str(message))


def _exit_with(text: str) -> None:
    """Prints ``text`` and exits with status 130; the second of two threads to get here (the
    watchdog and the main thread's excepthook) only waits for the first to exit."""
    if _EXITING.acquire(blocking=False):
        print(f"\n{text}", file=sys.stderr)
        _flush()
        os._exit(130)
    time.sleep(10)
    os._exit(130)


def _start_watchdog() -> None:
    if _CLI["watchdog"] or threading.current_thread() is not threading.main_thread():
        return
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    try:
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    except ValueError:  # not the main interpreter
        os.close(read_fd)
        os.close(write_fd)
        return
    threading.Thread(target=_watch, args=(read_fd,), daemon=True, name="memjax-sigint").start()
    _CLI["watchdog"] = True


def _hook(previous):
    def hook(exc_type, exc, tb):
        prog = _CLI["prog"]
        if issubclass(exc_type, KeyboardInterrupt):
            text = (
                str(exc)
                if isinstance(exc, TrainingInterrupted)
                else f"{prog}: interrupted; rerun with --resume to go on from the last checkpoint"
            )
            _exit_with(text)
        if issubclass(exc_type, FileExistsError) or getattr(exc_type, "user_error", False):
            print(f"{prog}: error: {exc}", file=sys.stderr)
            _flush()
            return
        previous(exc_type, exc, tb)

    hook._memjax_cli = True
    return hook


def install_cli_handler(prog: str) -> None:
    """Makes this process an experiment's command line: Ctrl-C prints where the run stopped and
    how to resume (promptly, also while compiling) and a user error prints its message, both
    without a traceback. Called by :func:`memjax.train.parse_args`; safe to call again.

    It replaces ``sys.excepthook`` and sets a signal wake-up fd, so it is meant for a process
    that runs one experiment, not for a notebook or a test session; :func:`memjax.train.parse_args`
    calls it only when it parses the real command line (``argv=None``). In a script::

        install_cli_handler("my_experiment")
        train(...)  # Ctrl-C: "my_experiment: interrupted at step 40 (last checkpoint: ...)"
    """
    _CLI["prog"] = str(prog)
    if not getattr(sys.excepthook, "_memjax_cli", False):
        sys.excepthook = _hook(sys.excepthook)
    _start_watchdog()


@contextlib.contextmanager
def compiling(message: str) -> Iterator[None]:
    """A block during which a Ctrl-C on the command line prints ``message`` and exits at once
    (after :func:`install_cli_handler`; otherwise it does nothing).

    Example:
        >>> with compiling("interrupted at step 0 (while compiling); rerun with --resume"):
        ...     pass
    """
    if not _CLI["watchdog"]:
        yield
        return
    _CLI["message"] = message
    try:
        yield
    finally:
        _CLI["message"] = None
