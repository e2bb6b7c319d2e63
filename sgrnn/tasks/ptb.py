"""Penn Treebank characters (Mikolov's "simple-examples" split), as in DNI section 3.1:
a continuous stream, truncated BPTT with the state carried across segments, bits per
character (BPC) over every symbol including newlines, early stopping on validation and the
test BPC taken at the best validation point.

Training batches are the standard stream batching: the training text is cut into B columns
that are read in parallel, T steps at a time::

    text  a b c d e f g h i j k l ...        column 0: a b c d | e f g h | ...
                                             column 1: m n o p | q r s t | ...
    x = columns[t : t+T],  y = columns[t+1 : t+T+1],  state carried (never reset)

There is no episode end anywhere in the stream (not at segment, batch or epoch edges), so the
synthetic gradient is always applied at the end of a segment.
"""

from __future__ import annotations

import copy
import hashlib
import math
from pathlib import Path

import torch
import torch.nn.functional as F

from sgrnn.errors import UserError
from sgrnn.tasks import Segment, register_task

SPLITS = ("train", "valid", "test")
FILES = {s: f"ptb.char.{s}.txt" for s in SPLITS}
SHA256 = {
    "train": "e313d91425e06c4f0a8fb6e881dcce0c291f2a0e9f4dda54833069b122f91da9",
    "valid": "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8",
    "test": "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe",
}
ARCHIVE_URL = "http://www.fit.vutbr.cz/~imikolov/rnnlm/simple-examples.tgz"
ARCHIVE_MD5 = "30177ea32e27c525793142b6bf2c8e2d"
HOW_TO_GET = (
    f"get them with `sgrnn fetch-ptb DIR` (downloads {ARCHIVE_URL}, MD5 {ARCHIVE_MD5}, "
    "and checks each file's SHA-256) and pass task.data_dir=DIR or set SGRNN_DATA_DIR=DIR"
)


def check_present(data_dir: str | Path) -> Path:
    """The data folder, resolved, once its three files are there (one line naming the missing ones)."""
    root = Path(data_dir).expanduser().resolve()
    missing = [FILES[s] for s in SPLITS if not (root / FILES[s]).is_file()]
    if missing:
        raise UserError(f"PTB data not found: {', '.join(missing)} missing in {root}; {HOW_TO_GET}")
    return root


def load_ptb(data_dir: str | Path, verify: bool = True) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Return ({split: LongTensor of symbol ids}, vocabulary), after checking the files exist
    and match their SHA-256."""
    root = check_present(data_dir)
    streams = {}
    for s in SPLITS:
        path = root / FILES[s]
        raw = path.read_bytes()
        if verify and hashlib.sha256(raw).hexdigest() != SHA256[s]:
            raise UserError(f"PTB file {path} fails its SHA-256 check (expected {SHA256[s]}); {HOW_TO_GET}")
        # Every symbol is followed by one space, newlines included: the stream is every other byte.
        streams[s] = torch.frombuffer(bytearray(raw[0::2]), dtype=torch.uint8).long()
    codes = torch.unique(streams["train"])
    vocab = [chr(c) for c in codes.tolist()]
    lookup = torch.full((256,), -1, dtype=torch.long)
    lookup[codes] = torch.arange(len(codes))
    data = {s: lookup[t] for s, t in streams.items()}
    for s, d in data.items():
        if (d < 0).any():
            raise UserError(f"PTB {FILES[s]} has symbols that never occur in the training file")
    return data, vocab


def columns(data: torch.Tensor, batch: int) -> torch.Tensor:
    """Cut a 1-D stream into ``batch`` contiguous columns: [len // batch, batch]."""
    n = data.numel() // batch
    return data[: n * batch].view(batch, n).t().contiguous()


def eval_columns(data: torch.Tensor, batch: int, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets for scoring EVERY symbol of a split exactly once: targets are the
    symbols, inputs the previous symbol (``context``, a newline, before the first), both padded
    to a multiple of ``batch`` (padding targets are -100, ignored) and cut into columns."""
    n = data.numel()
    length = math.ceil(n / batch)
    x = torch.full((length * batch,), context, dtype=torch.long)
    y = torch.full((length * batch,), -100, dtype=torch.long)
    x[0] = context
    x[1:n] = data[:-1]
    y[:n] = data
    return x.view(batch, length).t().contiguous(), y.view(batch, length).t().contiguous()


@torch.no_grad()
def bpc(core, data: torch.Tensor, batch: int, context: int, device, chunk: int = 256) -> float:
    """Bits per character of ``core`` over every symbol of ``data`` (state carried along each
    column, which starts from a zero state)."""
    was_training = core.training
    core.eval()
    x, y = eval_columns(data, batch, context)
    x, y = x.to(device), y.to(device)
    state = core.zero_state(batch, device)
    total = torch.zeros((), device=device)
    for t in range(0, x.shape[0], chunk):
        logits, state = core(x[t : t + chunk], state)
        total += F.cross_entropy(logits.flatten(0, 1), y[t : t + chunk].flatten(), ignore_index=-100, reduction="sum")
    core.train(was_training)
    return total.item() / data.numel() / math.log(2)


class PTBStream:
    def __init__(self, cfg, T: int, device: torch.device):
        data, self.vocab = load_ptb(cfg.data_dir)
        self.cfg, self.T, self.device = cfg, T, device
        self.input_size, self.output_size, self.vocab_size = cfg.embedding_size, len(self.vocab), len(self.vocab)
        self.newline = self.vocab.index("\n")
        self.valid, self.test = data["valid"], data["test"]
        self.heldout_text = self.valid  # the instruments' held-out draws: the whole validation text
        if cfg.val_symbols:
            self.valid = self.valid[: cfg.val_symbols]
        self.train = columns(data["train"], cfg.batch_size).to(device)
        if self.train.shape[0] < T + 1:
            raise UserError(f"T={T} is longer than a training column ({self.train.shape[0] - 1} steps)")
        self.pos, self.epoch, self.started = 0, 0, False
        self.best_valid, self.best_step, self.best_state = math.inf, -1, None
        self.bad_checks, self.last_check, self.done = 0, -1, False
        self.test_bpc = math.nan

    def next_segment(self) -> Segment:
        if self.pos + self.T + 1 > self.train.shape[0]:  # epoch edge: wrap, state carried on
            self.pos, self.epoch = 0, self.epoch + 1
        t = self.pos
        self.pos += self.T
        first, self.started = not self.started, True
        return Segment(self.train[t : t + self.T], self.train[t + 1 : t + self.T + 1], None, first, False)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, mask=None) -> torch.Tensor:
        """Cross-entropy in nats per symbol, averaged over the segment's T*B symbols."""
        return F.cross_entropy(logits.flatten(0, 1), y.flatten())

    def step_losses(self, logits, y, mask=None) -> torch.Tensor:
        """Each step's cross-entropy averaged over the columns, [L]."""
        ce = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="none")
        return ce.view(y.shape).mean(dim=1)

    def lookahead(self, steps: int) -> tuple[torch.Tensor, torch.Tensor, None]:
        """The next ``steps`` steps of the stream after the segment just served (fewer at the
        end of the training text): what the oracle's exact future gradient is computed over."""
        if steps <= 0:
            raise UserError("sg=oracle on PTB needs sg.oracle_lookahead > 0 (the stream has no end)")
        end = min(self.pos + steps, self.train.shape[0] - 1)
        return self.train[self.pos : end], self.train[self.pos + 1 : end + 1], None

    def check_heldout(self, batch: int, length: int, what: str) -> None:
        """Fail before any work if ``batch`` columns of ``length`` + 1 validation characters do not fit."""
        if batch and self.heldout_text.numel() // batch < length + 2:
            raise UserError(f"{what}={batch} columns of diag.length={length} steps do not fit the "
                            f"{self.heldout_text.numel():,} validation characters: at most "
                            f"{self.heldout_text.numel() // (length + 2):,} columns at this length")

    def heldout(self, batch: int, length: int, generator: torch.Generator):
        """``length`` steps of ``batch`` columns of the validation text, at a random offset."""
        cols = columns(self.heldout_text, batch)
        t = int(torch.randint(0, cols.shape[0] - length - 1, (1,), generator=generator, device=generator.device))
        cols = cols.to(self.device)
        return cols[t : t + length], cols[t + 1 : t + length + 1], None

    def record(self, logits: torch.Tensor, seg: Segment) -> dict:
        return {}

    def evaluate(self, core, step: int) -> dict:
        """Every val_every updates: validation BPC, best-model bookkeeping, early stopping."""
        if step == 0 or step % self.cfg.val_every:
            return {}
        return self._validate(core, step)

    def _validate(self, core, step: int) -> dict:
        self.last_check = step
        v = bpc(core, self.valid, self.cfg.eval_batch_size, self.newline, self.device)
        if v < self.best_valid:
            self.best_valid, self.best_step, self.bad_checks = v, step, 0
            self.best_state = copy.deepcopy(core.state_dict())
        else:
            self.bad_checks += 1
            self.done = self.bad_checks >= self.cfg.patience
        return {"val/bpc": v, "val/best_bpc": self.best_valid, "data/epoch": self.epoch}

    def finish(self, core, step: int) -> dict:
        """Validate once more unless the last update was just checked, then score the test set
        with the parameters of the best validation point."""
        out = self._validate(core, step) if self.last_check != step else {}
        current = copy.deepcopy(core.state_dict())
        core.load_state_dict(self.best_state)
        self.test_bpc = bpc(core, self.test, self.cfg.eval_batch_size, self.newline, self.device)
        core.load_state_dict(current)
        return {**out, "test/bpc": self.test_bpc}

    STATE = ("pos", "epoch", "started", "best_valid", "best_step", "best_state", "bad_checks", "last_check", "done")

    def state_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.STATE}

    def load_state_dict(self, state: dict) -> None:
        for k in self.STATE:
            setattr(self, k, state[k])

    def progress(self) -> dict:
        return {"epoch": self.epoch, "val": f"{self.best_valid:.3f}"}

    def summary(self) -> dict:
        return {
            "best_valid_bpc": self.best_valid,
            "best_step": self.best_step,
            "test_bpc": self.test_bpc,
            "epochs": self.epoch + self.pos / self.train.shape[0],
            "vocab_size": len(self.vocab),
        }


@register_task("ptb")
def build(cfg, T: int, device, generator=None) -> PTBStream:
    stream = PTBStream(cfg.task, T, device)
    if cfg.diag.every:  # the instruments' held-out draws must fit the validation text
        stream.check_heldout(cfg.diag.batch_size, cfg.diag.length, "diag.batch_size")
        stream.check_heldout(cfg.diag.ceiling_batch, cfg.diag.length, "diag.ceiling_batch")
    return stream
