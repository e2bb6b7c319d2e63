"""Typed configuration: one dataclass per config group, registered in Hydra's ConfigStore.

The groups are the axes of variation of the paper's RNN experiments (section 3.1):
``task`` (copy | repeat-copy | ptb), ``sg`` (off | on), plus the nested ``model``, ``optim``
and ``train`` nodes and the top-level truncation length ``T``. ``conf/config.yaml`` picks the
defaults and the run-folder layout; every field here can be overridden from the command line.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from sgrnn.errors import UserError


# ---------------------------------------------------------------------------- value checks
# A field's check is in its metadata, next to its default: ``field(default=8, metadata=POSITIVE)``.
# ``check(cfg)`` applies every one, before any work (also to each value of a sweep: sgrnn.cli).


def _rule(test: Callable[[Any], bool], words: str) -> dict:
    return {"check": (test, words)}


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


POSITIVE = _rule(lambda v: _finite(v) and v > 0, "must be positive")
NON_NEGATIVE = _rule(lambda v: _finite(v) and v >= 0, "must be >= 0")
UNIT = _rule(lambda v: _finite(v) and 0 <= v <= 1, "must be in [0, 1]")
FRACTION = _rule(lambda v: _finite(v) and 0 <= v < 1, "must be in [0, 1)")
SEED = _rule(lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**62,
             "must be an integer in [0, 2^62)")  # torch seeds are 64-bit; the instruments use seed + 7919


class Choice(str, Enum):
    """A string option with a fixed set of values: Hydra rejects any other, listing them."""

    __str__ = str.__str__
    __format__ = str.__format__


def choice(name: str, *values: str) -> type:
    return Choice(name, [(v, v) for v in values])


Placement = choice("Placement", "all", "top", "between-layers")
DType = choice("DType", "float32", "bfloat16")
Target = choice("Target", "bootstrap", "lambda")
Resume = choice("Resume", "auto", "force", "restart")
Device = choice("Device", "auto", "cpu", "cuda")
ThresholdUnit = choice("ThresholdUnit", "sequence", "bit")
Protocol = choice("Protocol", "episodic", "continuous")
InputNorm = choice("InputNorm", "none", "rms")
Fit = choice("Fit", "adam", "ridge")
StepEvery = choice("StepEvery", "segment", "episode")


@dataclass
class CopyTaskConfig:
    name: str = "copy"  # task name: copy | repeat-copy (NTM tasks, Graves et al. 2014)
    repeat: bool = False  # Repeat Copy: output the N vectors R times, then an end marker
    bits: int = field(default=8, metadata=POSITIVE)  # width of each random binary vector (NTM: 8)
    batch_size: int = field(default=64, metadata=POSITIVE)  # episodes per batch (all share N and R); 64 > 256 in curriculum progress per second on 2 cores (docs/study/first-measurements.md)
    threshold: float = field(default=0.15, metadata=POSITIVE)  # curriculum: running error below which a length is solved (paper: 0.15 bits), in threshold_unit
    threshold_unit: ThresholdUnit = ThresholdUnit["sequence"]  # sequence: wrong bits per sequence (sgrnn) | bit: mean loss per bit per output step, in bits (neuralml/bp_lambda; about N*bits times looser)
    window: int = field(default=5, metadata=POSITIVE)  # curriculum: episodes averaged into the running error
    repeat_norm: float = field(default=10.0, metadata=POSITIVE)  # Repeat Copy: R is fed as R / repeat_norm on its own channel
    max_N: int = field(default=10_000, metadata=POSITIVE)  # curriculum stops growing N past this
    start_N: int = field(default=1, metadata=POSITIVE)  # curriculum starts at this N (paper: 1)
    start_R: int = field(default=1, metadata=POSITIVE)  # ... and this R (paper: 1; Copy ignores R)
    protocol: Protocol = Protocol["episodic"]  # episodic: reset every episode, truncation from its start, no SG past its end (neuralml/bp_lambda) | continuous: endless per-column streams, never reset, boundaries anywhere (docs/study/defaults.md)

    def check(self) -> None:
        if self.start_N > self.max_N:
            raise UserError(f"task.start_N must be <= task.max_N, got {self.start_N} > {self.max_N}")
        if self.threshold_unit == "bit" and self.threshold >= 1:
            raise UserError(f"task.threshold must be below 1 bit with task.threshold_unit=bit, got {self.threshold}")


@dataclass
class PTBTaskConfig:
    name: str = "ptb"  # Penn Treebank characters (Mikolov's split), a continuous stream
    data_dir: str = "${oc.env:SGRNN_DATA_DIR,data/ptb}"  # folder with ptb.char.{train,valid,test}.txt
    batch_size: int = field(default=128, metadata=POSITIVE)  # B columns of the stream, state carried across segments
    embedding_size: int = field(default=128, metadata=POSITIVE)  # character embedding width
    val_every: int = field(default=2000, metadata=POSITIVE)  # updates between validations (and early-stopping checks)
    val_symbols: int = field(default=0, metadata=NON_NEGATIVE)  # symbols of the validation set scored at each check (0 = all 393,042)
    patience: int = field(default=5, metadata=POSITIVE)  # early stopping: validations without improvement before stopping
    eval_batch_size: int = field(default=256, metadata=POSITIVE)  # columns used when scoring validation and test


# The methods with an M at the truncation boundaries: DNI, DNI + Aux and the controls that train
# the same M (the core is given something else: another sequence's prediction, the batch mean, the
# prediction minus the batch mean, a fixed random map of M's input), and tracked (M's prediction
# minus its batch mean, plus a running mean of M's targets at that boundary).
M_METHODS = ("on", "aux", "placebo", "batch-mean", "centred", "frozen", "tracked", "constant")


@dataclass
class SGConfig:
    name: str = "off"  # off: truncated BPTT | on: DNI | aux: DNI + Aux | oracle: the exact future gradient | controls, M trained as on: placebo (another sequence's g_hat), batch-mean (the batch's mean g_hat), centred (g_hat minus that mean), frozen (a fixed random map of M's input, at g_hat's norm) | tracked: g_hat minus its batch mean plus a running mean of M's targets at that boundary (sgrnn/sg/tracked.py) | constant: DNI with an M that reads nothing, one learned vector (sgrnn/sg/constant.py)
    hidden_size: int = field(default=0, metadata=NON_NEGATIVE)  # synthetic-gradient model M: 0 = linear (paper default); >0 = one hidden ReLU layer
    scale: float = field(default=1.0, metadata=NON_NEGATIVE)  # factor on the injected synthetic gradient g_hat (paper silent; on/aux/placebo: 1, SG_OPTIONS)
    scale_in_target: bool = True  # bootstrapped target uses the scaled g_hat (a discounted gradient); False costs one more backward
    lr: float = field(default=1e-3, metadata=POSITIVE)  # Adam learning rate of M (own parameter group); 1e-3 beat 1e-4 and 1e-5 on Copy T=3 (docs/study/first-measurements.md)
    clip: float = field(default=1.0, metadata=NON_NEGATIVE)  # gradient-norm clip of M's parameters, separate from the core's
    loss_weight: float = field(default=1.0, metadata=POSITIVE)  # weight of M's L2 regression loss (paper: 1)
    placement: Placement = Placement["all"]  # all: M reads/predicts (h, c) of every layer (paper) | top: the top layer's only
    start_step: int = field(default=0, metadata=NON_NEGATIVE)  # warm-up: plain truncated BPTT for this many updates while M already learns
    aux_weight: float = field(default=1.0, metadata=NON_NEGATIVE)  # sg=aux: weight of the core's auxiliary loss (predicting M(s_end) at the segment's first step); 0.1 for sg=aux (SG_OPTIONS)
    input_norm: InputNorm = InputNorm["none"]  # M's input: none | rms: each layer's h and c divided by its root mean square (sgrnn.sg.models); on/aux/placebo: rms (SG_OPTIONS)
    dtype: DType = DType["float32"]  # M's compute dtype: float32 | bfloat16 (faster products on AVX512-BF16 CPUs and GPUs, but it slowed learning on Copy T=3: docs/benchmark.md)
    oracle_lookahead: int = field(default=0, metadata=NON_NEGATIVE)  # sg=oracle: steps of future BPTT per boundary (0 = to the episode's end; PTB needs > 0)
    target: Target = Target["bootstrap"]  # M's regression target: bootstrap (paper) | lambda (the paper's supplement; sgrnn.sg.targets); on/aux/placebo: lambda (SG_OPTIONS)
    lambda_: float = field(default=1.0, metadata=UNIT)  # sg.target=lambda: weight of the longer return, in [0, 1] (0 = bootstrap; 1 = exact through the window, then bootstrap)
    window: int = field(default=2, metadata=POSITIVE)  # sg.target=lambda: K, segments the target looks ahead before it bootstraps (K - 1 re-run per update)
    fit: Fit = Fit["adam"]  # how M learns: adam (steps on its L2 loss, sg.lr) | ridge (a linear M's closed-form ridge fit of its targets, exponentially forgotten: sgrnn.sg.models.RidgeM)
    ridge_decay: float = field(default=0.995, metadata=UNIT)  # sg.fit=ridge: weight of the past per update (0.995: a memory of ~200 updates)
    ridge: float = field(default=0.1, metadata=NON_NEGATIVE)  # sg.fit=ridge: L2 penalty, times the mean diagonal of the inputs' second moments
    ridge_every: int = field(default=10, metadata=POSITIVE)  # sg.fit=ridge: updates between solves (a (2H+1)^2 system each)
    common: float = field(default=0.0, metadata=UNIT)  # sg=centred: the share of M's batch-mean part still given to the core (0: none; 1: all of it, sg=on's update)
    mean_decay: float = field(default=0.9, metadata=FRACTION)  # sg=tracked: weight of the past in each boundary's running mean of M's targets, once an episode (0.9: ~10 episodes)
    history: int = field(default=0, metadata=NON_NEGATIVE)  # M also reads the last K input steps (0 = the state only; sgrnn.sg.history); on/aux/placebo: 16 (SG_OPTIONS)

    def check(self) -> None:
        if self.fit == "ridge" and (self.hidden_size or self.placement == "between-layers" or self.dtype != "float32"):
            raise UserError("sg.fit=ridge fits a linear float32 M at the truncation boundaries: it needs "
                            "sg.hidden_size=0, sg.dtype=float32 and sg.placement=all or top")
        if self.history and self.placement == "between-layers":
            raise UserError(f"sg.history={self.history} is what M reads at the truncation boundaries, and "
                            "sg.placement=between-layers has no M there: set sg.history=0 (sg=on's default is 16)")
        if self.common and self.name != "centred":
            raise UserError(f"sg.common={self.common} is the share of M's batch-mean part that sg=centred gives the "
                            f"core; sg={self.name} has no such share: use sg=centred, or sg.common=0")
        if self.name == "constant" and (self.history or self.hidden_size or self.fit == "ridge"
                                        or self.input_norm != "none" or self.placement == "between-layers"):
            raise UserError("sg=constant's M reads nothing (one learned vector): it takes no sg.history, "
                            "sg.hidden_size, sg.fit=ridge, sg.input_norm or sg.placement=between-layers")
        if self.history and self.name in ("off", "oracle"):
            raise UserError(f"sg.history={self.history} is what M reads at the truncation boundaries: it needs an M "
                            f"there (sg={', '.join(M_METHODS)})")


@dataclass
class DiagConfig:
    every: int = field(default=1000, metadata=NON_NEGATIVE)  # updates between diagnostics on held-out data (0 = never)
    batch_size: int = field(default=32, metadata=POSITIVE)  # held-out sequences (Copy) or columns (PTB) per diagnostic
    length: int = field(default=64, metadata=POSITIVE)  # PTB: held-out steps per diagnostic (Copy: one episode at the current length)
    probe_k: int = field(default=24, metadata=POSITIVE)  # dependency probe: lags k = 1..probe_k of |d loss_t / d x_(t-k)|
    ceiling_batch: int = field(default=0, metadata=NON_NEGATIVE)  # held-out sequences to fit the ideal linear M on (diag/sg_ceiling_cos); 0 = skip: it needs thousands (docs/table1.md)


@dataclass
class ModelConfig:
    hidden_size: int = field(default=256, metadata=POSITIVE)  # LSTM units per layer
    num_layers: int = field(default=1, metadata=POSITIVE)  # stacked LSTM layers; the state s is (h, c) of every layer


@dataclass
class OptimConfig:
    lr: float = field(default=3e-3, metadata=POSITIVE)  # Adam learning rate of the core (LSTM + readout); 3e-3 with batch 64 (docs/study/first-measurements.md)
    clip: float = field(default=1.0, metadata=NON_NEGATIVE)  # gradient-norm clip of the core's parameters (0 = off)
    # segment: the core steps after every segment of T steps (truncated BPTT, DNI) | episode: its
    # gradient is summed over an episode's segments and it steps once, at the episode's end (memory
    # and compute still one segment at a time; with sg=oracle this is full BPTT's update). M steps
    # every segment either way; train.max_steps and checkpoint_every count segments. Episodic Copy tasks only.
    step_every: StepEvery = StepEvery["segment"]


@dataclass
class TrainConfig:
    max_steps: int = field(default=1_000_000, metadata=POSITIVE)  # parameter updates (one per segment of T steps); whichever of steps/minutes comes first
    max_minutes: float = field(default=5.0, metadata=POSITIVE)  # wall-clock budget of the run in minutes
    max_samples: int = field(default=0, metadata=NON_NEGATIVE)  # budget in timestep-samples (T * batch per update; 0 = none): machine-independent
    # A curriculum run may stop before its budget once its length has gone flat: from flat_after
    # timestep-samples on, when the largest length solved has not grown over the last stop_flat of
    # the samples so far (1/3: flat for the last third). 0 = run to the budget.
    stop_flat: float = field(default=0.0, metadata=FRACTION)
    flat_after: int = field(default=0, metadata=NON_NEGATIVE)  # timestep-samples before stop_flat may end a run
    log_every: int = field(default=100, metadata=POSITIVE)  # updates between TensorBoard writes (a host sync each)
    threads: int = field(default=0, metadata=NON_NEGATIVE)  # torch intra-op threads (0 = all cores)
    progress: Optional[bool] = None  # tqdm bar: None = only when stderr is a terminal
    timing: bool = True  # time forward / backward / SG work per update (summary.json "cost"; syncs on a GPU)
    checkpoint_every: int = field(default=2000, metadata=POSITIVE)  # updates between checkpoints (also written at the end and on SIGINT/SIGTERM)
    resume: Resume = Resume["auto"]  # auto: skip a finished run, resume an unfinished one | force: even if the config differs | restart


@dataclass
class Config:
    task: Any = MISSING  # task group: copy | repeat-copy | ptb
    sg: SGConfig = MISSING  # sg group: off | on | aux | oracle
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    diag: DiagConfig = field(default_factory=DiagConfig)
    T: int = field(default=3, metadata=POSITIVE)  # truncation length: time steps per segment, one update per segment
    seed: int = field(default=0, metadata=SEED)  # seeds torch (data and initialisation)
    device: Device = Device["auto"]  # auto | cpu | cuda

    def check(self) -> None:
        if self.train.stop_flat and "threshold" not in self.task:  # only a curriculum has a length to grow
            raise UserError(f"train.stop_flat needs a curriculum task (copy, repeat-copy), not task={self.task.name}: "
                            "a language model stops early on validation (task.patience)")
        if self.train.stop_flat and self.train.max_samples and self.train.flat_after > self.train.max_samples:
            raise UserError(f"train.flat_after={self.train.flat_after} is past train.max_samples={self.train.max_samples}: "
                            "the run would never stop flat")
        if self.optim.step_every == "episode" and self.task.get("protocol", "continuous") != "episodic":
            raise UserError(f"optim.step_every=episode steps the core at each episode's end: task={self.task.name}"
                            f"{' with task.protocol=continuous' if 'protocol' in self.task else ''} has no episodes "
                            "(copy and repeat-copy with task.protocol=episodic do)")
        if self.sg.placement == "between-layers" and (self.sg.name != "on" or self.model.num_layers < 2):
            raise UserError("sg.placement=between-layers needs sg=on and model.num_layers >= 2")
        need, have = memory_estimate(self), physical_memory()
        if have and need > have and self.device != "cuda":  # (a GPU's memory is checked by CUDA itself)
            raise UserError(f"model.hidden_size={self.model.hidden_size} with {self.model.num_layers} layer(s) needs "
                            f"about {need / 2**30:.3g} GiB (weights, gradients, Adam's state and M), more than this "
                            f"machine's {have / 2**30:.3g} GiB: nothing was allocated")


def memory_estimate(cfg) -> float:
    """Bytes the run's parameters take with their gradients and Adam's two moments (float32),
    M's included: a lower bound on what the run allocates, to refuse sizes that cannot fit."""
    H, L = cfg.model.hidden_size, cfg.model.num_layers
    x = cfg.task.get("embedding_size", 0) or (cfg.task.get("bits", 8) + 2)
    core = sum(4 * H * ((x if layer == 0 else H) + H + 2) for layer in range(L)) + H * max(x, 50)
    state = 2 * H * (L if cfg.sg.get("placement", "all") != "top" else 1)
    has_m = cfg.sg.name not in ("off", "oracle")  # every other method has an M (a lower bound if not)
    m = (state * state + state if not cfg.sg.get("hidden_size") else 2 * state * cfg.sg.hidden_size) if has_m else 0
    return 4.0 * 4 * (core + m)


def physical_memory() -> int:
    """This machine's RAM in bytes (0 if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check(cfg) -> None:
    """Reject a config value that cannot work (NaN, inf, a zero width, a value out of range,
    an inconsistent pair) with one readable line, before any work."""
    for group, options in (("task", TASKS), ("sg", SG_OPTIONS)):
        name = cfg[group].name
        if name not in options:
            raise UserError(f"{group}.name={name} names no {group} of this config (valid: {', '.join(options)}); "
                            f"choose one with {group}=NAME")
    task = type(TASKS[cfg.task.name])  # the task's own schema and checks (its entry in TASKS)
    nodes = [("", Config, cfg), ("task.", task, cfg.task), ("sg.", SGConfig, cfg.sg), ("model.", ModelConfig, cfg.model),
             ("optim.", OptimConfig, cfg.optim), ("train.", TrainConfig, cfg.train), ("diag.", DiagConfig, cfg.diag)]
    for prefix, schema, node in nodes:
        for f in fields(schema):
            if "check" not in f.metadata:
                continue
            test, words = f.metadata["check"]
            value = node.get(f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise UserError(f"{prefix}{f.name} must be finite, got {value}")
            if not test(value):
                raise UserError(f"{prefix}{f.name} {words}, got {value}")
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**62:
                raise UserError(f"{prefix}{f.name} is out of range, got {value}")
        if hasattr(schema, "check"):
            schema.check(node)  # the node's cross-field checks (a DictConfig reads like the dataclass)


# The task group's options: a task is a stream (its module in sgrnn/tasks registers its builder
# with @register_task) plus its entry here, a typed config dataclass whose ``check`` holds its
# cross-field checks.
TASKS = {
    "copy": CopyTaskConfig(),
    "repeat-copy": CopyTaskConfig(name="repeat-copy", repeat=True),
    "ptb": PTBTaskConfig(),
}
# Where M's prediction is injected (M_METHODS), four defaults differ from SGConfig's:
# - sg.history 16, sg.scale 1 and sg.input_norm rms (the plateau study, docs/study/plateau/README.md,
#   Copy T=3, 20 minutes a run, seeds 200-204, one thread, two runs side by side; commit 87ba1eb):
#   median length solved 11 [10-12] with all three, against 8 [8-8] with scale 1 and rms alone and
#   8 [7-8] with the previous defaults (scale 0.1, no window, no rms; 3 seeds); BPTT 5 in each of
#   the five seeds, the oracle 10 (seed 200). At Table 1's budget (3.5M timestep-samples, seeds
#   0-2) they take DNI on Copy from 6-7 to 9 at every T from 2 to 5, on Repeat Copy from 7-19 to
#   12-19 (docs/table1.md). M reads the boundary state and the last 16 input steps: the future
#   gradient at the stall is about inputs the core has seen but not stored.
# - sg.target=lambda with lambda_ 1 over window 2 (M's target exact through two segments, then
#   bootstrapped; docs/study/defaults.md, Copy T=3, 5 seeds, 5 minutes): median length 6 [6-7]
#   against 6 [5-6] with the one-step bootstrap, BPTT 5 [5-5].
# The oracle injects the exact gradient, at 1.
# sg=aux also takes sg.aux_weight 0.1 (docs/study/defaults.md, Copy T=3, 3.5M timestep-samples,
# seeds 0-2, with the scale 0.1 of then): weight 1 solved 5 [5-5], BPTT's length (the aux loss's
# gradient made the true future gradient 10x larger and turned the parameter-space cosine
# negative, -0.11); 0.1 solved 7 [7-8].
# The controls (sgrnn/sg/placebo.py, batch_mean.py, centred.py, frozen.py) train the same M as on, with its defaults.
SG_OPTIONS = {name: SGConfig(name=name, scale=1.0, input_norm=InputNorm["rms"], history=16, target=Target["lambda"],
                             aux_weight=0.1 if name == "aux" else 1.0)
              if name in M_METHODS else SGConfig(name=name)
              for name in ("off", *M_METHODS, "oracle")}
# sg=constant's M reads nothing: the same scale and target as on, no input window, no input norm.
SG_OPTIONS["constant"] = SGConfig(name="constant", scale=1.0, target=Target["lambda"])


def flatten(node: dict, prefix: str = "") -> dict:
    """A nested config (a plain dict) as {dotted key: leaf value}."""
    out = {}
    for k, v in node.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def schema_default(key: str) -> Any:
    """The dataclass default of a dotted config key (``sg.target``), or ``MISSING`` if none."""
    node, _, name = key.partition(".")
    tasks = list(dict.fromkeys(type(t) for t in TASKS.values()))
    classes = {"sg": [SGConfig], "model": [ModelConfig], "optim": [OptimConfig], "train": [TrainConfig],
               "diag": [DiagConfig], "task": tasks}.get(node, [])
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
