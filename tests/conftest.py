from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PTB_DIR = ROOT.parent / "shared" / "data" / "ptb"


@pytest.fixture
def ptb_dir() -> Path:
    if not (PTB_DIR / "ptb.char.train.txt").is_file():
        pytest.skip(f"PTB data not found at {PTB_DIR}")
    return PTB_DIR
