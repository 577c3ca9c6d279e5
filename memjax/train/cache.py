"""JAX's persistent compilation cache for experiments and tutorials: a second run does not
compile again.

:func:`enable_compilation_cache` points JAX at a cache folder, so an executable compiled once
(the training step, the evaluation, ...) is written there and read back by the next process
that compiles the same program on the same machine and JAX version instead of compiling it
again. Every experiment's command line turns it on (:func:`memjax.train.parse_args`:
``--cache-dir DIR``, ``--no-cache``); a notebook or script calls it once at the top.

The folder, in order of precedence:

1. the ``path`` argument (``--cache-dir DIR`` on an experiment's command line);
2. the environment variable ``MEMJAX_CACHE_DIR``;
3. ``JAX_COMPILATION_CACHE_DIR`` / ``jax.config.jax_compilation_cache_dir`` if already set;
4. ``$XDG_CACHE_HOME/memjax/jax`` (by default ``~/.cache/memjax/jax``).

``off`` (or ``none``, ``0``, ``false``, the empty string) as the path or in ``MEMJAX_CACHE_DIR``
leaves the cache off. Programs that compile in under ``min_compile_time_s`` (0.1 s) are not
written (JAX's own default is 1 s, which would skip a small run's steps). The folder grows
with every new program (a small experiment adds a few MB); delete it at any time, or cap it with
JAX's ``jax_compilation_cache_max_size`` (least-recently-used eviction; needs the ``filelock``
package). Like JAX's own cache the folder is trusted: do not point it at a folder others can
write to.

:func:`compilation_cache_hits` counts the executables read from the cache so far in this
process (the training loop uses it to say "from the compilation cache").

Example:
    >>> import tempfile, jax, jax.numpy as jnp
    >>> from memjax.train import compilation_cache_hits, enable_compilation_cache
    >>> folder = enable_compilation_cache(tempfile.mkdtemp())
    >>> folder.is_dir(), jax.config.jax_compilation_cache_dir == str(folder)
    (True, True)
    >>> _ = jax.jit(lambda x: x + 1)(jnp.ones(3))  # compiled, and written if it took >= 0.1 s
    >>> enable_compilation_cache("off") is None
    True
    >>> disable_compilation_cache()  # back to how JAX was configured before
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "compilation_cache_hits",
    "default_cache_dir",
    "disable_compilation_cache",
    "enable_compilation_cache",
]

CACHE_ENV = "MEMJAX_CACHE_DIR"
"""The environment variable naming the cache folder (``off`` leaves the cache off)."""

_OFF = {"", "off", "none", "0", "false", "no"}
_HITS = {"count": 0}
_LOCK = threading.Lock()
_LISTENING = {"on": False}
_ENABLED: dict[str, Path | None] = {"path": None}
_SAVED: dict[str, object] = {}  # the JAX settings before the first enable
_SETTINGS = (
    "jax_compilation_cache_dir",
    "jax_enable_compilation_cache",
    "jax_persistent_cache_min_compile_time_secs",
)


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/memjax/jax``, or ``~/.cache/memjax/jax`` when it is unset.

    Example:
        >>> default_cache_dir().parts[-2:]
        ('memjax', 'jax')
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "memjax" / "jax"


def _on_event(event: str, **kwargs) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        with _LOCK:
            _HITS["count"] += 1


def compilation_cache_hits() -> int:
    """The number of executables this process has read from the persistent cache (counted from
    the first :func:`enable_compilation_cache`).

    Example:
        >>> compilation_cache_hits() >= 0
        True
    """
    with _LOCK:
        return _HITS["count"]


def _resolve(path: str | os.PathLike | None) -> Path | None:
    import jax

    if path is None:
        path = os.environ.get(CACHE_ENV)
    if path is None:
        current = jax.config.jax_compilation_cache_dir
        return Path(current) if current else default_cache_dir()
    text = os.fspath(path)
    if text.strip().lower() in _OFF:
        return None
    return Path(text).expanduser()


def enable_compilation_cache(
    path: str | os.PathLike | None = None, *, min_compile_time_s: float = 0.1
) -> Path | None:
    """Turns on JAX's persistent compilation cache in ``path`` (module doc for the default and
    ``off``); returns the folder, or ``None`` when the cache was left off.

    Calling it again with another folder moves the cache there (the executables already
    compiled in this process stay in memory).

    Args:
        path: the cache folder (created if missing), ``"off"``, or ``None`` for
            ``$MEMJAX_CACHE_DIR`` / the default.
        min_compile_time_s: programs that compile faster than this are not written.

    Raises:
        ValueError: ``min_compile_time_s`` is negative, or ``path`` exists and is not a folder.

    Example:
        >>> import tempfile
        >>> enable_compilation_cache(tempfile.mkdtemp() + "/cache").name
        'cache'
        >>> disable_compilation_cache()
    """
    import jax
    from jax._src import compilation_cache as _cc, monitoring

    if not min_compile_time_s >= 0:
        raise ValueError(f"min_compile_time_s must be >= 0, got {min_compile_time_s!r}")
    folder = _resolve(path)
    if folder is None:
        return None
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"path: the compilation cache folder {folder} is a file")
    folder.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        if not _LISTENING["on"]:
            monitoring.register_event_listener(_on_event)
            _LISTENING["on"] = True
    if not _SAVED:
        _SAVED.update({name: getattr(jax.config, name) for name in _SETTINGS})
    current = jax.config.jax_compilation_cache_dir
    if _cc.is_initialized() and current != str(folder):
        _cc.reset_cache()  # the next compile opens the new folder
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    _ENABLED["path"] = folder
    return folder


def disable_compilation_cache() -> None:
    """Undoes :func:`enable_compilation_cache` in this process: JAX's cache settings go back to
    what they were before it (nothing on disk is removed).

    Example:
        >>> disable_compilation_cache()
    """
    import jax
    from jax._src import compilation_cache as _cc

    if _ENABLED["path"] is None:
        return
    if _cc.is_initialized():
        _cc.reset_cache()
    for name, value in _SAVED.items():
        jax.config.update(name, value)
    _SAVED.clear()
    _ENABLED["path"] = None
