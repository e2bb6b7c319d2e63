"""The ``sgrnn`` command. ``sgrnn train`` is a Hydra app (overrides, -m, --cfg, --help all work);
``sgrnn fetch-ptb`` downloads and checks the Penn Treebank data."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from sgrnn.config import conf_dir, register_configs
from sgrnn.errors import UserError

USAGE = """usage: sgrnn COMMAND [ARGS]

commands:
  train       train one run, or a sweep with -m (a Hydra app: sgrnn train --help)
  fetch-ptb   download Penn Treebank characters and check them: sgrnn fetch-ptb [DIR]
"""


register_configs()


@hydra.main(version_base="1.3", config_path=conf_dir(), config_name="config")
def train_app(cfg: DictConfig) -> None:
    from sgrnn.train import train

    run_dir = HydraConfig.get().runtime.output_dir
    try:
        summary = train(cfg, run_dir)
    except UserError as e:
        logging.getLogger("sgrnn").error("%s", e)
        print(f"sgrnn: error: {e}", file=sys.stderr)
        sys.exit(2)
    line = {k: summary[k] for k in ("max_solved", "best_valid_bpc", "test_bpc") if k in summary}
    print(f"{cfg.task.name} sg={cfg.sg.name} T={cfg.T} seed={cfg.seed}: {line} "
          f"in {summary['steps']} updates, {summary['wall_s']:.0f} s -> {run_dir}/summary.json")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE, end="")
        sys.exit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command == "train":
        sys.argv = [f"{Path(sys.argv[0]).name} train", *rest]
        train_app()
    elif command == "fetch-ptb":
        from sgrnn.fetch import fetch_ptb

        try:
            fetch_ptb(rest[0] if rest else "data/ptb")
        except UserError as e:
            print(f"sgrnn: error: {e}", file=sys.stderr)
            sys.exit(2)
    else:
        print(f"sgrnn: error: unknown command {command!r}\n{USAGE}", file=sys.stderr, end="")
        sys.exit(2)


if __name__ == "__main__":
    main()
