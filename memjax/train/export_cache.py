"""A ``jax.export`` cache of the training step: a second run skips tracing and lowering.

JAX's persistent compilation cache (:mod:`memjax.train.cache`) saves XLA's work, but to find the
executable it needs the lowered program, so every run still traces the step in Python
(``value_and_grad`` through the model, the optimizer) and lowers it: for a small Titans model the
larger part of a second run's wait for its first step. This cache saves that too. The first
run traces the guarded step (:func:`memjax.train.steps.guard_step`) once, serializes it with
``jax.export`` into ``<folder>/<key>.jaxexport``, and compiles the *exported* program; a later
run with the same key deserializes it and compiles it again, which the persistent compilation
cache answers from disk. The two runs compile one and the same StableHLO module, so they run
one and the same executable: results are bit-for-bit those of the traced step (tested).

The run's initial state (parameter init, optimizer init: a few dozen small eager programs) is
cached beside it by :func:`cached_init`: the arrays as computed, read back bit-for-bit.

The step is exported over its flattened arguments, so any state pytree (``TrainState`` with
optax state, Flax NNX ``nnx.State``, Equinox arrays) round-trips exactly; typed PRNG keys cross
the boundary as their key data. The file holds the key's description, the metric names and the
serialized ``jax.export.Exported``.

**The key** (SHA-256 over all of it): the caller's ``key_parts`` (the training loop passes the
config, ``run_info`` (experiment, preset, variant) and the phase), the flattened input shapes,
dtypes, weak types and shardings, the JAX/jaxlib/optax/flax/equinox/numpy versions, the backend
and a few settings read while tracing (x64, matmul precision, ``MEMJAX_JIT_CHECKS``), a
fingerprint of the step function and hooks (:func:`fingerprint`: their code and everything they
capture — closure cells, defaults,
dataclass fields such as a model's sizes, optax hyperparameters, arrays by content — and the
data-valued globals they read), and a hash of the ``.py`` sources of ``memjax`` and of every
other local (not installed) package whose functions the fingerprint met, e.g. ``experiments``.
A step that captures something the fingerprint cannot describe (an object without fields, an
open file) is not exported: it is traced as without the cache, and the loop says why. What the
key cannot see: a step or ``init_params`` that reads files or mutable state while it is traced
(keep them pure functions of their arguments and captured values, as ``jit`` expects).

Any miss (new key), unreadable file, version mismatch or deserialization error falls back to
tracing; an unreadable file is reported once in the log and replaced. Not used with a device
mesh (``data_parallel``/``fsdp``): those runs trace as before.

**Where, and how to turn it off.** :func:`memjax.train.train` uses it when given
``export_cache=FOLDER``. An experiment's command line (:func:`memjax.train.parse_args`) turns it
on in ``memjax-export/`` inside the persistent compilation cache folder (so ``--cache-dir DIR`` and
``MEMJAX_CACHE_DIR`` move it too, and ``--no-cache`` turns both off); ``--no-export-cache`` or
``MEMJAX_EXPORT_CACHE=off`` turns off only this one. Like the compilation cache the folder is
trusted (a file there becomes code that runs): do not point it at a folder others can write to.
Delete it at any time.

Example:
    >>> import tempfile, jax, jax.numpy as jnp, optax
    >>> from memjax.train import TrainState
    >>> from memjax.train.export_cache import compile_step
    >>> from memjax.train.steps import guard_step, make_supervised_step
    >>> loss_fn = lambda p, batch, key: jnp.mean((batch * p["w"] - 1.0) ** 2)
    >>> step_fn = make_supervised_step(loss_fn, optax.sgd(0.5))
    >>> state = TrainState.create({"w": jnp.zeros(())}, optax.sgd(0.5), key=jax.random.key(0))
    >>> args = (state, jnp.ones(4), jnp.int32(-1))
    >>> folder = tempfile.mkdtemp()
    >>> step, how = compile_step(folder, guard_step(step_fn), args, fingerprint_of=step_fn)
    >>> how
    'traced, exported to the cache'
    >>> new, metrics, bad = step(*args)
    >>> float(new.params["w"]), float(metrics["loss"]), int(bad)
    (1.0, 1.0, -1)
    >>> _, how = compile_step(folder, guard_step(step_fn), args, fingerprint_of=step_fn,
    ...                       memo=False)
    >>> how
    'from the export cache'
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import json
import os
import pickle
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

from memjax.core.checks import jit_checks_enabled

__all__ = [
    "EXPORT_ENV",
    "EXPORT_SUBDIR",
    "Unkeyable",
    "cache_key",
    "cached_init",
    "compile_step",
    "export_cache_dir",
    "fingerprint",
    "source_hash",
]

EXPORT_ENV = "MEMJAX_EXPORT_CACHE"
"""Environment variable: ``off`` turns the export cache off; a path puts it there."""
EXPORT_SUBDIR = "memjax-export"
"""The export cache's folder inside the persistent compilation cache folder."""

_MAGIC = b"MEMJAX-EXPORT-1\n"
_SUFFIX = ".jaxexport"
_OFF = {"", "off", "none", "0", "false", "no"}
_MEMO: dict[str, tuple[Callable[..., Any], str]] = {}
_REPORTED: set[str] = set()
_PACKAGES = ("jax", "jaxlib", "optax", "flax", "equinox", "numpy")


class Unkeyable(TypeError):
    """The step captures something :func:`fingerprint` cannot describe, so no key is safe."""


def export_cache_dir(compilation_cache: str | os.PathLike | None) -> Path | None:
    """The export cache folder for a persistent compilation cache folder (``None``: off):
    ``$MEMJAX_EXPORT_CACHE`` when it is a path, ``None`` when it is ``off``, else
    ``<compilation_cache>/memjax-export``.

    Example:
        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ):
        ...     _ = os.environ.pop("MEMJAX_EXPORT_CACHE", None)
        ...     print(export_cache_dir("/tmp/jax-cache").name, export_cache_dir(None))
        memjax-export None
        >>> with mock.patch.dict(os.environ, {"MEMJAX_EXPORT_CACHE": "off"}):
        ...     print(export_cache_dir("/tmp/jax-cache"))
        None
    """
    env = os.environ.get(EXPORT_ENV)
    if env is not None:
        if env.strip().lower() in _OFF:
            return None
        return Path(env).expanduser()
    if compilation_cache is None:
        return None
    return Path(compilation_cache) / EXPORT_SUBDIR


# ----------------------------------------------------------------------------- the fingerprint


def fingerprint(obj: Any) -> str:
    """A SHA-256 hex digest of what ``obj`` computes with, stable across processes.

    Functions: module, name, bytecode and constants, defaults, closure cells and the values of
    the data-valued globals they read (functions, classes and modules they reference count by
    name: their source is in :func:`source_hash` or in an installed package's version).
    Dataclasses and other objects: their type and fields; NumPy/JAX arrays: shape, dtype and
    bytes; ``functools.partial``, bound methods and ``__wrapped__`` wrappers: what they wrap.

    Raises:
        Unkeyable: ``obj`` holds a value with neither fields nor a stable ``repr``.

    Example:
        >>> import optax
        >>> fingerprint(optax.adam(1e-3)) == fingerprint(optax.adam(1e-3))
        True
        >>> fingerprint(optax.adam(1e-3)) == fingerprint(optax.adam(2e-3))
        False
    """
    return _fingerprint(obj)[0]


def _fingerprint(obj: Any) -> tuple[str, frozenset[str]]:
    """The digest and the top-level modules of the functions met."""
    h = hashlib.sha256()
    modules: set[str] = set()
    _Walker(h, modules).walk(obj, 0)
    return h.hexdigest(), frozenset(modules)


_SCALARS = (type(None), bool, int, float, complex, str, bytes, np.generic, np.dtype, range)


@dataclasses.dataclass
class _Walker:
    h: Any
    modules: set[str]
    seen: dict[int, int] = dataclasses.field(default_factory=dict)
    keep: list[Any] = dataclasses.field(default_factory=list)  # ids stay unique while walking

    def put(self, *tokens: Any) -> None:
        for t in tokens:
            self.h.update(repr(t).encode() + b"\x00")

    def walk(self, obj: Any, depth: int) -> None:
        if depth > 200:
            raise Unkeyable("the step's captured values nest deeper than 200 levels")
        if isinstance(obj, (*_SCALARS, enum.Enum)):
            self.put(type(obj).__name__, obj)
            return
        if id(obj) in self.seen:
            self.put("ref", self.seen[id(obj)])
            return
        self.seen[id(obj)] = len(self.seen)
        self.keep.append(obj)
        d = depth + 1
        if isinstance(obj, np.ndarray | jax.Array):
            self._array(obj)
        elif isinstance(obj, tuple | list):
            self.put(_name(type(obj)), len(obj))
            for x in obj:
                self.walk(x, d)
        elif isinstance(obj, set | frozenset):
            self.put(type(obj).__name__, sorted(_fingerprint(x)[0] for x in obj))
        elif isinstance(obj, Mapping):
            self.put(_name(type(obj)), len(obj))
            for k in sorted(obj, key=repr):
                self.walk(k, d)
                self.walk(obj[k], d)
        elif isinstance(obj, types.FunctionType):
            self._function(obj, d)
        elif isinstance(obj, types.MethodType):
            self.put("method")
            self.walk(obj.__func__, d)
            self.walk(obj.__self__, d)
        elif isinstance(obj, functools.partial):
            self.put("partial")
            self.walk((obj.func, obj.args, obj.keywords), d)
        elif isinstance(obj, types.ModuleType):
            self.put("module", obj.__name__)
            self.modules.add(obj.__name__.partition(".")[0])
        elif isinstance(obj, type):
            self.put("type", _name(obj))
            self.modules.add(str(obj.__module__).partition(".")[0])
        elif getattr(obj, "__wrapped__", None) is not None:  # jit, lru_cache, functools.wraps
            self.put("wrapper", _name(type(obj)))
            self.walk(obj.__wrapped__, d)
        elif isinstance(obj, types.BuiltinFunctionType | types.CodeType) or (
            callable(obj) and hasattr(obj, "__qualname__") and not hasattr(obj, "__dict__")
        ):
            self.put("builtin", getattr(obj, "__module__", None), getattr(obj, "__qualname__", obj))
        elif dataclasses.is_dataclass(obj):
            self.put("dataclass", _name(type(obj)))
            self.modules.add(type(obj).__module__.partition(".")[0])
            for f in dataclasses.fields(obj):
                self.put(f.name)
                self.walk(getattr(obj, f.name), d)
        elif hasattr(obj, "__dict__") or hasattr(type(obj), "__slots__"):
            self._object(obj, d)
        else:
            text = repr(obj)
            if " at 0x" in text:
                raise Unkeyable(f"the step captures a {_name(type(obj))} with no stable repr")
            self.put(_name(type(obj)), text)

    def _array(self, obj: Any) -> None:
        if isinstance(obj, jax.Array) and jax.dtypes.issubdtype(obj.dtype, jax.dtypes.prng_key):
            self.put("key", str(obj.dtype))
            obj = jax.random.key_data(obj)
        data = np.ascontiguousarray(np.asarray(obj))
        self.put("array", data.shape, str(data.dtype))
        self.h.update(hashlib.sha256(data.tobytes()).digest())

    def _function(self, fn: types.FunctionType, d: int) -> None:
        self.put("function", fn.__module__, fn.__qualname__)
        self.modules.add(str(fn.__module__).partition(".")[0])
        self._code(fn.__code__)
        self.walk((fn.__defaults__, fn.__kwdefaults__), d)
        for cell in fn.__closure__ or ():
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                self.put("empty cell")
                continue
            self.walk(value, d)
        for name in sorted(_global_names(fn.__code__)):
            if name in fn.__globals__:
                value = fn.__globals__[name]
                if _is_data(value):
                    self.put("global", name)
                    self.walk(value, d)

    def _code(self, code: types.CodeType) -> None:
        self.put(code.co_name, code.co_names, code.co_varnames)
        self.h.update(code.co_code)
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                self._code(c)
            else:
                self.put(c)

    def _object(self, obj: Any, d: int) -> None:
        cls = type(obj)
        self.put("object", _name(cls))
        self.modules.add(str(cls.__module__).partition(".")[0])
        fields = dict(getattr(obj, "__dict__", {}))
        for slot in getattr(cls, "__slots__", ()):
            if isinstance(slot, str) and hasattr(obj, slot):
                fields[slot] = getattr(obj, slot)
        for k in sorted(fields):
            self.put(k)
            self.walk(fields[k], d)


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _global_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            names |= _global_names(c)
    return names


def _is_data(value: Any) -> bool:
    if isinstance(value, (*_SCALARS, np.ndarray, jax.Array, enum.Enum)):
        return True
    if isinstance(value, tuple | list | frozenset | set | dict):
        return all(_is_data(v) for v in (value.values() if isinstance(value, dict) else value))
    return False


# ----------------------------------------------------------------------------- sources, key


@functools.lru_cache(maxsize=64)
def _package_hash(name: str) -> str | None:
    """SHA-256 of the ``.py`` files of the local (not installed) package ``name``; ``None`` for
    an installed one (its version is in the key) or one without files."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if not file or "site-packages" in file or "dist-packages" in file:
        return None
    path = Path(file)
    files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    digest = hashlib.sha256()
    for f in files:
        digest.update(str(f.relative_to(path.parent)).encode() + b"\x00" + f.read_bytes())
    return digest.hexdigest()


def source_hash(packages: Any = ("memjax",)) -> str:
    """SHA-256 over the ``.py`` sources of the named local packages (``__main__``: the script);
    installed packages are skipped (their versions are in the key).

    Example:
        >>> len(source_hash()) == 64 and source_hash() == source_hash(["memjax", "memjax"])
        True
    """
    digest = hashlib.sha256()
    for name in sorted(set(packages) | {"memjax"}):
        part = _package_hash(name)
        if part is not None:
            digest.update(f"{name}:{part}\n".encode())
    return digest.hexdigest()


def _versions() -> dict[str, str | None]:
    out = {}
    for name in _PACKAGES:
        module = sys.modules.get(name)
        out[name] = getattr(module, "__version__", None) if module is not None else None
    import jaxlib

    out["jaxlib"] = jaxlib.__version__
    return out


def _leaf_spec(x: Any) -> tuple[str, ...]:
    aval = jax.typeof(x)
    sharding = getattr(x, "sharding", None)
    return (str(aval.shape), str(aval.dtype), str(aval.weak_type), str(sharding))


def _key(key_parts: Mapping[str, Any], leaves: list[Any], treedef: Any, fp: str, src: str) -> str:
    desc = {
        "parts": key_parts,
        "leaves": [_leaf_spec(x) for x in leaves],
        "tree": str(treedef),
        "versions": _versions(),
        "backend": jax.default_backend(),
        "devices": [d.device_kind for d in jax.local_devices()[:1]],
        "x64": bool(jax.config.jax_enable_x64),
        "precision": str(jax.config.jax_default_matmul_precision),
        "jit_checks": jit_checks_enabled(),  # MEMJAX_JIT_CHECKS: checks are added at trace time
        "step": fp,
        "sources": src,
    }
    text = json.dumps(desc, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_key(fingerprint_of: Any, args: Any, key_parts: Mapping[str, Any] | None = None) -> str:
    """The export cache's key (SHA-256 hex) of a step that computes with ``fingerprint_of``,
    called with ``args``, with the caller's ``key_parts`` (module docstring: what it covers).

    Raises:
        Unkeyable: :func:`fingerprint` cannot describe ``fingerprint_of``.

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda x: x + 1
        >>> cache_key(f, (jnp.ones(2),)) == cache_key(f, (jnp.zeros(2),))  # shapes, not values
        True
        >>> cache_key(f, (jnp.ones(2),)) == cache_key(f, (jnp.ones(3),))
        False
    """
    leaves, treedef = jax.tree.flatten(args)
    fp, modules = _fingerprint(fingerprint_of)
    return _key(dict(key_parts or {}), leaves, treedef, fp, source_hash(modules))


# ----------------------------------------------------------------------------- the step


def _is_key(x: Any) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_data(leaves: list[Any]) -> list[Any]:
    return [jax.random.key_data(x) if _is_key(x) else x for x in leaves]


def _flat_step(step: Callable[..., Any], treedef: Any, impls: list[Any], names: list[str]):
    """``step`` over the flattened arguments (keys as key data) returning the flattened
    ``(state, metrics, bad)``; records the metric names in ``names``."""

    def flat(*data):
        leaves = [x if impl is None else jax.random.wrap_key_data(x, impl=impl)
                  for x, impl in zip(data, impls, strict=True)]  # fmt: skip
        new, metrics, bad = step(*jax.tree.unflatten(treedef, leaves))
        names[:] = sorted(metrics)
        return _to_data(jax.tree.leaves((new, dict(metrics), bad)))

    return flat


def _write(path: Path, header: dict, blob: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(_MAGIC + json.dumps(header).encode() + b"\n" + blob)
    os.replace(tmp, path)


def _read(path: Path, key: str) -> tuple[dict, Any]:
    from jax import export

    raw = path.read_bytes()
    if not raw.startswith(_MAGIC):
        raise ValueError("not a memjax export file")
    head, sep, blob = raw[len(_MAGIC) :].partition(b"\n")
    header = json.loads(head)
    if not sep or header.get("key") != key:
        raise ValueError("its key does not match its name")
    exported = export.deserialize(bytearray(blob))
    return header, exported


def compile_step(
    folder: str | os.PathLike,
    step: Callable[..., Any],
    args: tuple[Any, Any, Any],
    *,
    fingerprint_of: Any,
    key_parts: Mapping[str, Any] | None = None,
    donate: bool = False,
    memo: bool = True,
) -> tuple[Callable[..., Any], str]:
    """The guarded step ``(state, batch, bad) -> (state, metrics, bad)`` compiled for ``args``
    through the export cache in ``folder``, and how it was had (module docstring).

    Args:
        folder: the export cache folder (created when a step is written).
        step: the guarded step, not jitted (:func:`memjax.train.steps.guard_step`).
        args: example ``(train_state, batch, bad)``; the call needs the same shapes and dtypes.
        fingerprint_of: what ``step`` computes with, for the key (the step function and its
            hooks); see :func:`fingerprint`.
        key_parts: JSON-able values that belong in the key (the config, the variant, ...).
        donate: donate the train state's buffers.
        memo: reuse a step already compiled in this process for the same key.

    Returns:
        ``(callable, how)``: ``how`` is ``"from the export cache"``, ``"traced, exported to the
        cache"``, or ``"traced (<why not cached>)"`` when the step was compiled without the
        cache (nothing could key it, or it could not be exported).
    """
    leaves, treedef = jax.tree.flatten(args)
    state_leaves = len(jax.tree.leaves(args[0]))
    impls = [jax.random.key_impl(x) if _is_key(x) else None for x in leaves]
    data = _to_data(leaves)
    out_tree_of = functools.partial(_out_tree, args)
    try:
        key = cache_key(fingerprint_of, args, key_parts)
    except Unkeyable as e:
        return _traced(step, args, donate), f"traced; {e}, so it is not cached"
    except Exception as e:  # a value the walk could not read: no safe key
        return _traced(step, args, donate), f"traced; no key ({type(e).__name__}: {e})"
    if memo and key in _MEMO:
        return _MEMO[key]
    path = Path(folder) / f"{key[:40]}{_SUFFIX}"
    donate_argnums = tuple(range(state_leaves)) if donate else ()
    how = "from the export cache"
    exported = None
    if path.exists():
        try:
            header, exported = _read(path, key)
            names = list(header["metrics"])
        except Exception as e:  # any unreadable file means: trace again
            _report(path, e, "tracing the step instead")
            exported = None
    if exported is None:
        from jax import export

        names: list[str] = []
        flat = _flat_step(step, treedef, impls, names)
        try:
            traced = export.export(jax.jit(flat))(*[jax.typeof(x) for x in data])
            blob = traced.serialize()
        except Exception as e:  # e.g. a custom call export refuses
            why = f"{type(e).__name__}: {e}".splitlines()[0][:160]
            return _traced(step, args, donate), f"traced (not exportable: {why})"
        exported = export.deserialize(blob)  # what a later run compiles: the same module
        _write(path, {"key": key, "metrics": names, "parts": key_parts}, bytes(blob))
        how = "traced, exported to the cache"
    call = jax.jit(exported.call, donate_argnums=donate_argnums)
    call.lower(*data).compile()
    out_tree = out_tree_of(names)
    out_impls = impls[:state_leaves] + [None] * (out_tree.num_leaves - state_leaves)

    def run(*arguments):
        flat_out = call(*_to_data(jax.tree.leaves(arguments)))
        leaves_out = [x if impl is None else jax.random.wrap_key_data(x, impl=impl)
                      for x, impl in zip(flat_out, out_impls, strict=True)]  # fmt: skip
        return jax.tree.unflatten(out_tree, leaves_out)

    if memo:
        _MEMO[key] = (run, "from the export cache")
    return run, how


@dataclasses.dataclass(frozen=True)
class _KeyLeaf:  # not a pytree node: a leaf of the saved tree
    """A typed PRNG key in a saved initial state: its key data and implementation."""

    data: np.ndarray
    impl: str


def _encode(x: Any) -> Any:
    if _is_key(x):
        return _KeyLeaf(np.asarray(jax.random.key_data(x)), str(jax.random.key_impl(x)))
    if isinstance(x, jax.Array):
        if jax.typeof(x).weak_type:
            raise Unkeyable("the initial state has a weakly typed array")
        return np.asarray(x)
    return x


def _decode(x: Any) -> Any:
    # device_put is a transfer; jnp.asarray would run (and compile) a copy program per shape
    if isinstance(x, _KeyLeaf):
        return jax.random.wrap_key_data(jax.device_put(x.data), impl=x.impl)
    return jax.device_put(x) if isinstance(x, np.ndarray) else x


def cached_init(
    folder: str | os.PathLike,
    make: Callable[[], Any],
    *,
    fingerprint_of: Any,
    key_parts: Mapping[str, Any] | None = None,
) -> tuple[Any, str | None]:
    """``make()`` (the run's initial state: parameter init, optimizer init), or the arrays a
    run with the same key saved, and how it was had (``None``: computed and saved).

    The arrays are saved as computed (eagerly, op by op, as without the cache) and read back
    bit-for-bit, so a second run skips the initialization's small programs without changing a
    bit. The key is :func:`cache_key` of ``fingerprint_of`` (``init_params``, the optimizer,
    ...) and ``key_parts``, which must hold what else the state depends on (the seed).

    Example:
        >>> import tempfile, jax, jax.numpy as jnp
        >>> folder = tempfile.mkdtemp()
        >>> init = lambda: {"w": jax.random.normal(jax.random.key(0), (2,)), "n": jnp.int32(3)}
        >>> first, how = cached_init(folder, init, fingerprint_of=init, key_parts={"seed": 0})
        >>> again, how2 = cached_init(folder, init, fingerprint_of=init, key_parts={"seed": 0})
        >>> how, how2, bool((first["w"] == again["w"]).all()), again["n"].dtype
        (None, 'from the export cache', True, dtype('int32'))
    """
    try:
        key = cache_key(fingerprint_of, (), key_parts)
    except Exception as e:  # nothing can key it: compute it, as without the cache
        return make(), f"not cached: {e}"
    path = Path(folder) / f"{key[:40]}.init"
    if path.exists():
        try:
            raw = path.read_bytes()
            head, sep, blob = raw[len(_MAGIC) :].partition(b"\n")
            if not raw.startswith(_MAGIC) or not sep or json.loads(head).get("key") != key:
                raise ValueError("not a memjax initial state for this key")
            return jax.tree.map(_decode, pickle.loads(blob)), "from the export cache"
        except Exception as e:  # unreadable: compute it again and rewrite the file
            _report(path, e, "computing the initial state instead")
    value = make()
    try:
        blob = pickle.dumps(jax.tree.map(_encode, value), protocol=5)
    except Exception as e:  # e.g. a weakly typed leaf: not saved, nothing changes
        return value, f"not cached: {e}"
    _write(path, {"key": key, "parts": key_parts}, blob)
    return value, None


def _report(path: Path, error: Exception, instead: str) -> None:
    if str(path) in _REPORTED:
        return
    _REPORTED.add(str(path))
    print(
        f"export cache: could not read {path} ({type(error).__name__}: {error}); {instead} "
        "and rewriting the file",
        file=sys.stderr,
        flush=True,
    )


def _out_tree(args: tuple[Any, Any, Any], names: list[str]) -> Any:
    """The tree of ``(state, metrics, bad)``: the state keeps its layout (the guard checks)."""
    return jax.tree.structure((args[0], dict.fromkeys(names, 0), 0))


def _traced(step: Callable[..., Any], args: tuple[Any, Any, Any], donate: bool):
    jitted = jax.jit(step, donate_argnums=(0,) if donate else ())
    jitted.lower(*args).compile()
    return jitted
