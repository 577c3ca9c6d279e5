"""The persistent compilation cache: folder resolution (argument, MEMJAX_CACHE_DIR, off) and a
compiled program read back from disk once the in-memory caches are gone."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest

from memjax.train import (
    CACHE_ENV,
    compilation_cache_hits,
    default_cache_dir,
    disable_compilation_cache,
    enable_compilation_cache,
)


@pytest.fixture
def restore_cache():
    disable_compilation_cache()  # an earlier parse_args may have turned it on
    before = jax.config.jax_compilation_cache_dir
    yield
    disable_compilation_cache()
    assert jax.config.jax_compilation_cache_dir == before


def test_folder_resolution(tmp_path, monkeypatch, restore_cache):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "memjax" / "jax"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "env"))
    assert enable_compilation_cache() == tmp_path / "env" and (tmp_path / "env").is_dir()
    assert enable_compilation_cache(tmp_path / "arg") == tmp_path / "arg"  # argument first
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "arg")
    for off in ("off", "none", ""):
        monkeypatch.setenv(CACHE_ENV, off)
        assert enable_compilation_cache() is None
    assert enable_compilation_cache("OFF") is None
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="path"):
        enable_compilation_cache(tmp_path / "file")
    with pytest.raises(ValueError, match="min_compile_time_s"):
        enable_compilation_cache(tmp_path / "arg", min_compile_time_s=-1.0)


def test_executable_comes_back_from_disk(tmp_path, restore_cache):
    folder = enable_compilation_cache(tmp_path / "cache", min_compile_time_s=0.0)

    def f(x):  # a program no other test compiles
        return jnp.cumsum(jnp.sin(x) * 3.25) @ jnp.cos(x[::-1])

    x = jnp.linspace(0.0, 1.0, 37)
    expected = jax.jit(f)(x)
    assert any(p.name.startswith("jit_f") for p in folder.iterdir())
    hits = compilation_cache_hits()
    jax.clear_caches()  # forget the in-memory executable: the next call reads the disk
    assert jax.jit(f)(x) == expected
    assert compilation_cache_hits() == hits + 1
