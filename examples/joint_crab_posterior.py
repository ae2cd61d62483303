"""The posterior of the seed joint-Crab fit, sampled with NUTS (blackjax), next to the fit's
exact-Hessian errors.

    GAMMAPY_DATA=../shared/gammapy-data python examples/joint_crab_posterior.py [num_samples]

Flat priors inside the parameter bounds: the posterior widths are then what the likelihood says,
an independent check of the covariance (and of its asymmetry on the correlated Crab parameters).
Needs the sampling extra: pip install "jaxgamma[sampling]".
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
from joint_crab import joint_crab_datasets  # the seed datasets, as in examples/joint_crab.py

import jaxgamma as jg
from jaxgamma.sampling import sample


def main(num_samples: int = 1000) -> None:
    datasets, models = joint_crab_datasets(Path(os.environ["GAMMAPY_DATA"]))
    result = jg.fit(datasets, models)
    t0 = time.perf_counter()
    draws = sample(datasets, result, num_samples=num_samples, num_warmup=500, num_chains=4)
    print(f"NUTS: 4 chains x {num_samples} draws (+500 warm-up) in {time.perf_counter() - t0:.1f} s (compilation included)\n")
    print(draws)
    print("\nposterior std / fit error (exact Hessian):")
    for name, error, std in zip(result.parameter_names, result.errors, draws.std, strict=True):
        print(f"  {name:32s} {std:.4g} / {error:.4g} = {std / error:.3f}")
    lo, hi = np.percentile(draws.samples_of("alpha"), [15.865525393145708, 84.13447460685429])
    best = float(result.models["Crab Nebula"].spectral_model.alpha.value)
    print(f"\nalpha: best fit {best:.4f}, posterior 68 % interval {lo:.4f} .. {hi:.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
