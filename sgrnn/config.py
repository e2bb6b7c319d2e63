"""Typed configuration: one dataclass per config group, registered in Hydra's ConfigStore.

The groups are the axes of variation of the paper's RNN experiments (section 3.1):
``task`` (copy | repeat-copy | ptb), ``sg`` (off | on), plus the nested ``model``, ``optim``
and ``train`` nodes and the top-level truncation length ``T``. ``conf/config.yaml`` picks the
defaults and the run-folder layout; every field here can be overridden from the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


@dataclass
class CopyTaskConfig:
    name: str = "copy"  # task name: copy | repeat-copy (NTM tasks, Graves et al. 2014)
    repeat: bool = False  # Repeat Copy: output the N vectors R times, then an end marker
    bits: int = 8  # width of each random binary vector (NTM: 8)
    batch_size: int = 64  # episodes per batch (all share N and R); 64 > 256 in curriculum progress per second on 2 cores (README)
    threshold: float = 0.15  # curriculum: running error (bits/sequence) below which a length is solved (paper)
    window: int = 5  # curriculum: episodes averaged into the running error
    repeat_norm: float = 10.0  # Repeat Copy: R is fed as R / repeat_norm on its own channel
    max_N: int = 10_000  # curriculum stops growing N past this
    start_N: int = 1  # curriculum starts at this N (paper: 1)
    start_R: int = 1  # ... and this R (paper: 1; Copy ignores R)


@dataclass
class PTBTaskConfig:
    name: str = "ptb"  # Penn Treebank characters (Mikolov's split), a continuous stream
    data_dir: str = "${oc.env:SGRNN_DATA_DIR,data/ptb}"  # folder with ptb.char.{train,valid,test}.txt
    batch_size: int = 128  # B columns of the stream, state carried across segments
    embedding_size: int = 128  # character embedding width
    val_every: int = 2000  # updates between validations (and early-stopping checks)
    val_symbols: int = 0  # symbols of the validation set scored at each check (0 = all 393,042)
    patience: int = 5  # early stopping: validations without improvement before stopping
    eval_batch_size: int = 256  # columns used when scoring validation and test


@dataclass
class SGConfig:
    name: str = "off"  # off: truncated BPTT | on: DNI | aux: DNI + Aux | placebo: DNI given another sequence's g_hat (control) | oracle: the exact future gradient
    hidden_size: int = 0  # synthetic-gradient model M: 0 = linear (paper default); >0 = one hidden ReLU layer
    scale: float = 1.0  # factor on the injected synthetic gradient g_hat (paper silent; 0.1 for on/aux/placebo: SG_OPTIONS)
    scale_in_target: bool = True  # bootstrapped target uses the scaled g_hat (a discounted gradient); False costs one more backward
    lr: float = 1e-3  # Adam learning rate of M (own parameter group); 1e-3 beat 1e-4 and 1e-5 on Copy T=3 (README)
    clip: float = 1.0  # gradient-norm clip of M's parameters, separate from the core's
    loss_weight: float = 1.0  # weight of M's L2 regression loss (paper: 1)
    placement: str = "all"  # all: M reads/predicts (h, c) of every layer (paper) | top: the top layer's only
    start_step: int = 0  # warm-up: plain truncated BPTT for this many updates while M already learns
    aux_weight: float = 1.0  # sg=aux: weight of the core's auxiliary loss (predicting M(s_end) at the segment's first step)
    dtype: str = "float32"  # M's compute dtype: float32 | bfloat16 (faster products on AVX512-BF16 CPUs and GPUs, but it slowed learning on Copy T=3: README)
    oracle_lookahead: int = 0  # sg=oracle: steps of future BPTT per boundary (0 = to the episode's end; PTB needs > 0)
    target: str = "bootstrap"  # M's regression target: bootstrap (paper) | lambda (the paper's supplement; sgrnn.sg.targets)
    lambda_: float = 1.0  # sg.target=lambda: weight of the longer return, in [0, 1] (0 = bootstrap; 1 = exact through the window, then bootstrap)
    window: int = 2  # sg.target=lambda: K, segments the target looks ahead before it bootstraps (K - 1 re-run per update)


@dataclass
class DiagConfig:
    every: int = 1000  # updates between diagnostics on held-out data (0 = never)
    batch_size: int = 32  # held-out sequences (Copy) or columns (PTB) per diagnostic
    length: int = 64  # PTB: held-out steps per diagnostic (Copy: one episode at the current length)
    probe_k: int = 24  # dependency probe: lags k = 1..probe_k of |d loss_t / d x_(t-k)|
    ceiling_batch: int = 0  # held-out sequences to fit the ideal linear M on (diag/sg_ceiling_cos); 0 = skip: it needs thousands (README)


@dataclass
class ModelConfig:
    hidden_size: int = 256  # LSTM units per layer
    num_layers: int = 1  # stacked LSTM layers; the state s is (h, c) of every layer


@dataclass
class OptimConfig:
    lr: float = 3e-3  # Adam learning rate of the core (LSTM + readout); 3e-3 with batch 64 (README)
    clip: float = 1.0  # gradient-norm clip of the core's parameters (0 = off)


@dataclass
class TrainConfig:
    max_steps: int = 1_000_000  # parameter updates (one per segment of T steps); whichever of steps/minutes comes first
    max_minutes: float = 5.0  # wall-clock budget of the run in minutes
    max_samples: int = 0  # budget in timestep-samples (T * batch per update; 0 = none): machine-independent
    log_every: int = 100  # updates between TensorBoard writes (a host sync each)
    threads: int = 0  # torch intra-op threads (0 = all cores)
    progress: Optional[bool] = None  # tqdm bar: None = only when stderr is a terminal
    timing: bool = True  # time forward / backward / SG work per update (summary.json "cost"; syncs on a GPU)
    checkpoint_every: int = 2000  # updates between checkpoints (also written at the end and on SIGINT/SIGTERM)
    resume: str = "auto"  # auto: skip a finished run, resume an unfinished one | force: even if the config differs | restart


@dataclass
class Config:
    task: Any = MISSING  # task group: copy | repeat-copy | ptb
    sg: SGConfig = MISSING  # sg group: off | on | aux | oracle
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    diag: DiagConfig = field(default_factory=DiagConfig)
    T: int = 3  # truncation length: time steps per segment, one update per segment
    seed: int = 0  # seeds torch (data and initialisation)
    device: str = "auto"  # auto | cpu | cuda


TASKS = {
    "copy": CopyTaskConfig(),
    "repeat-copy": CopyTaskConfig(name="repeat-copy", repeat=True),
    "ptb": PTBTaskConfig(),
}
# sg.scale: 0.1 where M's prediction is injected (on, aux, placebo): on Copy it beat 1.0 (the
# study in the README, "Making the synthetic gradient pay"); the oracle injects the exact gradient at 1.
SG_OPTIONS = {name: SGConfig(name=name, scale=0.1 if name in ("on", "aux", "placebo") else 1.0)
              for name in ("off", "on", "aux", "placebo", "oracle")}


def schema_default(key: str) -> Any:
    """The dataclass default of a dotted config key (``sg.target``), or ``MISSING`` if none."""
    node, _, name = key.partition(".")
    classes = {"sg": [SGConfig], "model": [ModelConfig], "optim": [OptimConfig], "train": [TrainConfig],
               "diag": [DiagConfig], "task": [CopyTaskConfig, PTBTaskConfig]}.get(node, [])
    for cls in classes:
        value = getattr(cls(), name, MISSING)
        if value is not MISSING:
            return value
    return MISSING


def conf_dir() -> str:
    """conf/ at the repository root (editable install), else a copy shipped in the package."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return str(candidate)
    raise RuntimeError(f"sgrnn's conf/ folder was not found next to {here}")


def make_config(*overrides: str) -> DictConfig:
    """The config `sgrnn train OVERRIDES...` would run with (for tests, scripts, notebooks)."""
    register_configs()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def register_configs() -> None:
    """Put the schema and every group option in Hydra's ConfigStore, and the run-folder
    resolver in OmegaConf (idempotent)."""
    OmegaConf.register_new_resolver("sgrnn.suffix", lambda s: f",{s}" if s else "", replace=True)
    # Integer division, at least 1, for budgets that scale with T (e.g. updates per validation).
    OmegaConf.register_new_resolver("sgrnn.div", lambda a, b: max(1, int(a) // int(b)), replace=True)
    cs = ConfigStore.instance()
    cs.store(name="sgrnn_schema", node=Config)
    for name, node in TASKS.items():
        cs.store(group="task", name=name, node=node)
    for name, node in SG_OPTIONS.items():
        cs.store(group="sg", name=name, node=node)
