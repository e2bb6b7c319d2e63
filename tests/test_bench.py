"""`sgrnn bench`: the throughput table runs end to end, and its arithmetic bound is right."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sgrnn.bench import sg_bound


def test_sg_bound_counts_M_against_the_LSTM():
    # The bounds the README quotes for the bench's shapes, T = 2, 3, 5, 8.
    assert [round(sg_bound(T, 256, 9), 2) for T in (2, 3, 5, 8)] == [0.67, 0.76, 0.84, 0.89]
    assert [round(sg_bound(T, 512, 128), 2) for T in (2, 3, 5, 8)] == [0.71, 0.79, 0.86, 0.91]
    # Copy's shape, T=2, by hand: M's n^2 = 512^2 against T x 4H(I+H) = 2 x 1024 x 265.
    assert sg_bound(2, 256, 9) == pytest.approx(1 / (1 + 512**2 / (2 * 1024 * 265)))


def test_bench_prints_a_row_per_shape_and_T(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sgrnn.cli", "bench", "--shapes", "copy", "--T", "2",
                        "--repeats", "1", "--steps", "2", "--warmup", "1", "--threads", "1"],
                       capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if line.startswith("| copy")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[1] == "2" and all(float(c.replace(",", "")) > 0 for c in cells[2:5])
    assert float(cells[7]) == pytest.approx(sg_bound(2, 256, 9), abs=0.005)
    assert not any(tmp_path.iterdir())  # its runs live in a temporary folder
