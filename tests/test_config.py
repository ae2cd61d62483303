"""Process-wide settings: float64 and the persistent compilation cache."""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp

from jaxgamma._config import compilation_cache_dir


def test_float64_by_default():
    assert jnp.asarray(1.0).dtype == jnp.float64


def _run(env_value, tmp_path):
    env = dict(os.environ)
    env.pop("JAXGAMMA_COMPILATION_CACHE", None)
    if env_value is not None:
        env["JAXGAMMA_COMPILATION_CACHE"] = env_value
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    code = "import jax, jaxgamma; print(jax.config.jax_compilation_cache_dir)"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()


def test_compilation_cache_setting(tmp_path):
    assert _run(None, tmp_path) == str(tmp_path / "xdg" / "jaxgamma" / "jax")
    assert _run("off", tmp_path) == "None"
    assert _run(str(tmp_path / "mine"), tmp_path) == str(tmp_path / "mine")
    assert (tmp_path / "mine").is_dir()


def test_cache_dir_function(monkeypatch, tmp_path):
    monkeypatch.setenv("JAXGAMMA_COMPILATION_CACHE", "OFF")
    assert compilation_cache_dir() is None
    monkeypatch.setenv("JAXGAMMA_COMPILATION_CACHE", str(tmp_path))
    assert compilation_cache_dir() == tmp_path
    assert isinstance(jax.config.jax_enable_x64, bool)
