"""The built-in demo: simulated data with known truth, fitted jointly."""

from __future__ import annotations

import numpy as np

from jaxgamma.cli import main
from jaxgamma.demo import SOURCE, TRUTH


def test_demo_recovers_the_truth(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Fitted parameters next to the truth" in out
    assert (tmp_path / "demo_spectrum.png").stat().st_size > 10_000

    from jaxgamma.demo import _start_models, make_demo_datasets
    from jaxgamma.fit import fit

    result = fit(make_demo_datasets(0), _start_models())
    assert result.success
    table = result.parameters_table()
    for row in table:
        if row["frozen"]:
            continue
        pull = (row["value"] - TRUTH[row["name"]]) / row["error"]
        assert abs(pull) < 4, (row["name"], pull)
    # the three instruments constrain one shared source
    assert set(result.covariance_of(SOURCE).names) >= {f"{SOURCE}.spectral.alpha", f"{SOURCE}.spatial.lon_0"}
    assert np.isfinite(result.total_stat)
