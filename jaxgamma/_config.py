"""Process-wide JAX settings applied when jaxgamma is imported.

jaxgamma computes in float64 by default: a Cash sum over millions of bins, and the Hessian used for
the covariance, need it. Importing jaxgamma enables ``jax_enable_x64``. Set the environment variable
``JAXGAMMA_ENABLE_X64=0`` before the import to leave JAX's setting alone (float32 results).
"""

from __future__ import annotations

import os

import jax


def configure() -> None:
    if os.environ.get("JAXGAMMA_ENABLE_X64", "1").lower() not in ("0", "false", "off", "no"):
        jax.config.update("jax_enable_x64", True)
