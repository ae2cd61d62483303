"""Process-wide JAX settings applied when jaxgamma is imported.

- **float64.** jaxgamma computes in float64 by default: a Cash sum over millions of bins, and the
  Hessian used for the covariance, need it. Importing jaxgamma enables ``jax_enable_x64``; set
  ``JAXGAMMA_ENABLE_X64=0`` before the import to leave JAX's setting alone (float32 results).
- **Persistent compilation cache.** Compiled programs (the joint likelihood, the fit) are stored
  on disk so that a new process fitting the same structure starts fast. The folder is
  ``$JAXGAMMA_COMPILATION_CACHE`` if that names a folder, else ``$XDG_CACHE_HOME/jaxgamma/jax``
  (``~/.cache/jaxgamma/jax``). ``JAXGAMMA_COMPILATION_CACHE=off`` turns it off. A cache folder
  already configured in JAX (``jax_compilation_cache_dir``) is left as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

_OFF = ("0", "false", "off", "no")


def compilation_cache_dir() -> Path | None:
    """The persistent compilation cache folder jaxgamma uses, or None when it is off."""
    setting = os.environ.get("JAXGAMMA_COMPILATION_CACHE", "").strip()
    if setting.lower() in _OFF:
        return None
    if setting and setting.lower() not in ("1", "true", "on", "yes"):
        return Path(setting).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "jaxgamma" / "jax"


def configure() -> None:
    if os.environ.get("JAXGAMMA_ENABLE_X64", "1").lower() not in _OFF:
        jax.config.update("jax_enable_x64", True)
    folder = compilation_cache_dir()
    if folder is not None and not getattr(jax.config, "jax_compilation_cache_dir", None):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return  # a read-only home: run without the cache
        jax.config.update("jax_compilation_cache_dir", str(folder))
        # cache every program that took noticeable time to compile, whatever its size
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
