from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from sgrnn.cli import conf_dir  # noqa: F401  (registers the configs and the run-dir resolver)

ROOT = Path(__file__).resolve().parents[1]
PTB_DIR = ROOT.parent / "shared" / "data" / "ptb"


def make_cfg(*overrides: str):
    """The real config, composed as `sgrnn train` would, with test overrides."""
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


@pytest.fixture
def ptb_dir() -> Path:
    if not (PTB_DIR / "ptb.char.train.txt").is_file():
        pytest.skip(f"PTB data not found at {PTB_DIR}")
    return PTB_DIR
