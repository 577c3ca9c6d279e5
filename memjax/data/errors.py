"""Errors raised by :mod:`memjax.data`.

Example:
    >>> from memjax.data.errors import DatasetUnavailableError
    >>> issubclass(DatasetUnavailableError, RuntimeError)
    True
"""

from __future__ import annotations

__all__ = ["DatasetUnavailableError"]


class DatasetUnavailableError(RuntimeError):
    """The data a loader needs is not on this machine.

    The message says what to install or where to put the files. Nothing in :mod:`memjax.data`
    downloads at run time.

    Example:
        >>> from memjax.data import DatasetUnavailableError
        >>> issubclass(DatasetUnavailableError, RuntimeError)
        True
    """


def bad_arg(name: str, expected: str, got: object) -> ValueError:
    """Build a ``ValueError`` naming the argument, what was expected and what came."""
    return ValueError(f"{name}: expected {expected}, got {got!r}")
