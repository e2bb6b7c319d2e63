"""Copy and Repeat Copy (Graves, Wayne, Danihelka 2014, "Neural Turing Machines"), as used by
DNI section 3.1, with the curriculum of the paper.

Layout of one episode (time runs down, B episodes side by side, all with the same N and R)::

    Copy, input channels  [8 bits | delimiter]           target channels [8 bits]
      t = 0 .. N-1         random bits   0                 -            (mask 0)
      t = N                0             1                 -            (mask 0)
      t = N+1 .. 2N        0             0                 bits[t-N-1]  (mask 1)

    Repeat Copy, input    [8 bits | delimiter | R/norm]    target [8 bits | end marker]
      t = 0 .. N-1         random bits   0   0              -                   (mask 0)
      t = N                0             1   R/norm         -                   (mask 0)
      t = N+1 .. N+N*R     0             0   0              bits[(t-N-1) % N], 0 (mask 1)
      t = N+N*R+1          0             0   0              0, 1                (mask 1)

The paper reports lengths as N+3 (Copy) and N*R+3 (Repeat Copy); the dependency span (longest
distance between an input and an output that depends on it) is N+1 and N*R+1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sgrnn.tasks import Segment, register_task


@dataclass
class Episode:
    x: torch.Tensor  # [L, B, input_size] float
    y: torch.Tensor  # [L, B, output_size] float in {0, 1}
    mask: torch.Tensor  # [L, 1, 1] float: 1 on the steps that are scored


def paper_length(N: int, R: int, repeat: bool) -> int:
    """The paper's length convention: N+3 for Copy, N*R+3 for Repeat Copy."""
    return N * R + 3 if repeat else N + 3


def dependency_span(N: int, R: int, repeat: bool) -> int:
    """Longest distance in time steps between an input and an output that depends on it."""
    return N * R + 1 if repeat else N + 1


class CopyTask:
    """Episode generator for Copy / Repeat Copy; everything is built on ``device`` in one go."""

    def __init__(self, bits: int = 8, repeat: bool = False, repeat_norm: float = 10.0):
        self.bits, self.repeat, self.repeat_norm = bits, repeat, repeat_norm
        self.input_size = bits + (2 if repeat else 1)
        self.output_size = bits + (1 if repeat else 0)

    def episode_length(self, N: int, R: int) -> int:
        return N + 1 + (N * R + 1 if self.repeat else N)

    def sample(self, N: int, R: int, batch: int, generator: torch.Generator, device) -> Episode:
        R = R if self.repeat else 1
        L = self.episode_length(N, R)
        seq = torch.randint(0, 2, (N, batch, self.bits), generator=generator, device=device).float()
        x = torch.zeros(L, batch, self.input_size, device=device)
        y = torch.zeros(L, batch, self.output_size, device=device)
        mask = torch.zeros(L, 1, 1, device=device)
        x[:N, :, : self.bits] = seq
        x[N, :, self.bits] = 1.0  # delimiter
        out = slice(N + 1, N + 1 + N * R)
        y[out, :, : self.bits] = seq.repeat(R, 1, 1)
        mask[out] = 1.0
        if self.repeat:
            x[N, :, self.bits + 1] = R / self.repeat_norm
            y[L - 1, :, self.bits] = 1.0  # end marker
            mask[L - 1] = 1.0
        return Episode(x, y, mask)

    @staticmethod
    def loss(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sigmoid cross-entropy summed over scored steps and channels, mean over the batch
        (nats per sequence). Summing (not averaging) over time keeps the loss of an episode
        equal to the sum of its segments' losses, which the synthetic-gradient maths relies on."""
        ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return (ce * mask).sum() / y.shape[1]

    @staticmethod
    def step_losses(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The loss of each step, [L] (0 where not scored)."""
        ce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
        return (ce * mask).sum(dim=(1, 2)) / y.shape[1]

    def distances(self, N: int, R: int) -> torch.Tensor:
        """[L]: for each scored step, how many steps back the input it reproduces was (the end
        marker: back to the repeat count); 0 where not scored."""
        R = R if self.repeat else 1
        d = torch.zeros(self.episode_length(N, R), dtype=torch.long)
        for r in range(R):
            d[N + 1 + r * N : N + 1 + (r + 1) * N] = N + 1 + r * N
        if self.repeat:
            d[-1] = N * R + 1
        return d

    @staticmethod
    def bit_errors(logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Wrong bits summed over scored steps and channels and over the batch (a 0-d tensor)."""
        return (((logits > 0).float() != y).float() * mask).sum()


class Curriculum:
    """Start at N = 1, R = 1. When the running error (mean bits per sequence over the last
    ``window`` episodes at this length) falls below ``threshold``, the length is solved and the
    task grows: Repeat Copy raises R while R < N, otherwise N (keeping R); Copy raises N.
    This order reproduces the paper's Repeat Copy figures (5, 7, 19, 23, 33, 39, 59 = N*R+3)."""

    def __init__(self, repeat: bool, threshold: float = 0.15, window: int = 5, max_N: int = 10_000, N: int = 1, R: int = 1):
        self.repeat, self.threshold, self.window, self.max_N = repeat, threshold, window, max_N
        self.N, self.R = N, R if repeat else 1
        self.solved: tuple[int, int] | None = None  # largest (N, R) solved so far
        self.recent: list[float] = []

    def update(self, bits_per_sequence: float) -> bool:
        """Record one episode's error; return True when the length was solved (and grown)."""
        self.recent = (self.recent + [bits_per_sequence])[-self.window :]
        if len(self.recent) < self.window or sum(self.recent) / self.window >= self.threshold:
            return False
        self.solved = (self.N, self.R)
        if self.repeat and self.R < self.N:
            self.R += 1
        elif self.N < self.max_N:
            self.N += 1
        self.recent = []
        return True

    @property
    def running_error(self) -> float:
        return sum(self.recent) / len(self.recent) if self.recent else float("nan")

    def max_solved(self) -> dict:
        """The largest length solved; all zeros when not even N = 1 was solved."""
        if self.solved is None:
            return {"N": 0, "R": 0, "length": 0, "span": 0}
        N, R = self.solved
        return {
            "N": N,
            "R": R,
            "length": paper_length(N, R, self.repeat),
            "span": dependency_span(N, R, self.repeat),
        }

    def state_dict(self) -> dict:
        return {"N": self.N, "R": self.R, "solved": self.solved, "recent": list(self.recent)}

    def load_state_dict(self, state: dict) -> None:
        self.N, self.R, self.recent = state["N"], state["R"], list(state["recent"])
        self.solved = tuple(state["solved"]) if state["solved"] else None


class CopyStream:
    """Batched episodes at the curriculum's current (N, R), cut into segments of T steps from
    each episode's start (the last segment may be shorter). Every episode starts from a reset
    state and nothing flows back from beyond its end."""

    def __init__(self, cfg, T: int, device: torch.device, generator: torch.Generator):
        self.task = CopyTask(cfg.bits, cfg.repeat, cfg.repeat_norm)
        self.curriculum = Curriculum(cfg.repeat, cfg.threshold, cfg.window, cfg.max_N, cfg.start_N, cfg.start_R)
        self.input_size, self.output_size = self.task.input_size, self.task.output_size
        self.vocab_size = 0
        self.T, self.batch, self.device, self.generator = T, cfg.batch_size, device, generator
        self.episode: Episode | None = None
        self.pos = 0
        self.errors = torch.zeros((), device=device)
        # task.threshold_unit=bit: the curriculum reads the episode's mean loss per bit per output
        # step, in bits (neuralml/bp_lambda's unit) instead of wrong bits per sequence.
        self.per_bit = cfg.get("threshold_unit", "sequence") == "bit"
        self.ce = torch.zeros(2, device=device)  # (loss in nats, scored bits) of the episode so far
        self.episodes = 0
        self.done = False  # the curriculum has no end short of max_N

    def next_segment(self) -> Segment:
        if self.episode is None:
            c = self.curriculum
            self.episode = self.task.sample(c.N, c.R, self.batch, self.generator, self.device)
            self.pos = 0
        ep, L, t = self.episode, self.episode.x.shape[0], self.pos
        seg = slice(t, min(t + self.T, L))
        self.pos += self.T
        return Segment(ep.x[seg], ep.y[seg], ep.mask[seg], first=t == 0, last=t + self.T >= L)

    def loss(self, logits: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.task.loss(logits, y, mask)

    def step_losses(self, logits, y, mask) -> torch.Tensor:
        return self.task.step_losses(logits, y, mask)

    @torch.no_grad()
    def error_by_distance(self, logits, y, mask) -> dict:
        """Bit error rate of the output steps grouped by the distance back to their input."""
        dist = self.task.distances(self.curriculum.N, self.curriculum.R).to(y.device)  # held-out: current length
        wrong = ((logits > 0).float() != y).float().mean(dim=(1, 2))  # [L]
        return {int(d): wrong[dist == d].mean().item() for d in torch.unique(dist[dist > 0]).tolist()}

    def lookahead(self, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The rest of the current episode after the segment just served (at most ``steps``
        steps; 0 = all of it): what the oracle's exact future gradient is computed over."""
        ep, end = self.episode, self.episode.x.shape[0]
        end = min(end, self.pos + steps) if steps else end
        return ep.x[self.pos : end], ep.y[self.pos : end], ep.mask[self.pos : end]

    def heldout(self, batch: int, length: int, generator: torch.Generator):
        """A fresh episode at the current length, from the diagnostics' own generator."""
        c = self.curriculum
        ep = self.task.sample(c.N, c.R, batch, generator, self.device)
        return ep.x, ep.y, ep.mask

    def record(self, logits: torch.Tensor, seg: Segment) -> dict:
        """Accumulate bit errors on the device; at an episode's end, one host sync and the
        curriculum step."""
        self.accumulate(logits, seg)
        if not seg.last:
            return {}
        self.episode = None
        return self.curriculum_step()

    def accumulate(self, logits: torch.Tensor, seg: Segment) -> None:
        self.errors += self.task.bit_errors(logits, seg.y, seg.mask)
        if self.per_bit:
            ce = F.binary_cross_entropy_with_logits(logits, seg.y, reduction="none") * seg.mask
            self.ce += torch.stack([ce.sum(), seg.mask.expand_as(seg.y).sum()])

    def curriculum_step(self) -> dict:
        """One episode's error (per column) to the curriculum; the scalars to log."""
        bits = self.errors.item() / self.batch
        self.errors.zero_()
        self.episodes += 1
        c = self.curriculum
        out = {"train/bits": bits, "curriculum/N": c.N, "curriculum/R": c.R}
        error = bits
        if self.per_bit:
            nats, count = self.ce.tolist()
            self.ce.zero_()
            error = out["train/loss_per_bit"] = nats / max(count, 1.0) / math.log(2)
        if c.update(error):
            out["curriculum/length_solved"] = c.max_solved()["length"]
        return out

    def evaluate(self, core, step: int) -> dict:
        return {}

    def finish(self, core, step: int) -> dict:
        return {}

    def progress(self) -> dict:
        c = self.curriculum
        p = {"N": c.N, "err": f"{c.running_error:.2f}"}
        if self.task.repeat:
            p["R"] = c.R
        return p

    def state_dict(self) -> dict:
        ep = self.episode
        return {"curriculum": self.curriculum.state_dict(), "generator": self.generator.get_state(),
                "episode": None if ep is None else (ep.x, ep.y, ep.mask), "pos": self.pos,
                "errors": self.errors.clone(), "episodes": self.episodes, "ce": self.ce.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.curriculum.load_state_dict(state["curriculum"])
        self.generator.set_state(state["generator"])
        self.episode = None if state["episode"] is None else Episode(*(t.to(self.device) for t in state["episode"]))
        self.pos, self.episodes = state["pos"], state["episodes"]
        self.errors = state["errors"].to(self.device)
        if "ce" in state:  # checkpoints from before task.threshold_unit have none
            self.ce = state["ce"].to(self.device)

    def summary(self) -> dict:
        return {"max_solved": self.curriculum.max_solved(), "episodes": self.episodes,
                "curriculum": {"N": self.curriculum.N, "R": self.curriculum.R}}


class ContinuousCopyStream(CopyStream):
    """``task.protocol=continuous``: every batch column is an endless stream of episodes with a
    phase of its own; the state is never reset after the first segment, truncation boundaries
    fall anywhere in an episode, and no future gradient is zeroed at an episode's end (``last``
    is never set). The curriculum reads the wrong bits of each stretch of one episode length
    (one episode's outputs per column, from two episodes), per column.

    Refills: the stream is served from the concatenation [carried episode; ``refill`` new ones],
    column b from row ``offset[b]`` for (carried length + (refill - 1) x current length) rows,
    so that it ends at the same phase of the last episode, which is carried into the next refill.
    With ``sg=oracle``, ``sg.oracle_lookahead`` > 0 steps are looked ahead, within the refill."""

    refill = 4  # new episodes per refill

    def __init__(self, cfg, T: int, device: torch.device, generator: torch.Generator):
        super().__init__(cfg, T, device, generator)
        c = self.curriculum
        L = self.task.episode_length(c.N, c.R if self.task.repeat else 1)
        self.offset = torch.randint(0, L, (self.batch,), generator=generator, device=device)
        self.carry: Episode | None = None
        self.served: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self.since_record = 0  # steps since the curriculum last read the error
        self.started = False  # only the stream's very first segment starts from a reset state

    def _refill(self) -> None:
        c = self.curriculum
        eps = [self.carry] if self.carry is not None else []
        eps += [self.task.sample(c.N, c.R, self.batch, self.generator, self.device) for _ in range(self.refill + (not eps))]
        x, y = torch.cat([e.x for e in eps]), torch.cat([e.y for e in eps])
        mask = torch.cat([e.mask.expand(-1, self.batch, -1) for e in eps])
        rows = x.shape[0] - eps[-1].x.shape[0]  # from offset[b] to the same phase of the last episode
        idx = torch.arange(rows, device=self.device)[:, None] + self.offset[None, :]  # [rows, B]
        take = lambda t: t.gather(0, idx[:, :, None].expand(-1, -1, t.shape[2]))  # noqa: E731
        self.served, self.carry, self.pos = (take(x), take(y), take(mask)), eps[-1], 0

    def next_segment(self) -> Segment:
        if self.served is None or self.pos >= self.served[0].shape[0]:
            self._refill()
        x, y, mask = self.served
        seg, first = slice(self.pos, min(self.pos + self.T, x.shape[0])), not self.started
        self.pos, self.started = seg.stop, True
        self.since_record += seg.stop - seg.start
        return Segment(x[seg], y[seg], mask[seg], first=first, last=False)

    def lookahead(self, steps: int):
        x, y, mask = self.served
        end = min(x.shape[0], self.pos + steps) if steps else x.shape[0]
        return x[self.pos : end], y[self.pos : end], mask[self.pos : end]

    def record(self, logits: torch.Tensor, seg: Segment) -> dict:
        """Every episode length of steps, the curriculum reads the wrong bits of that stretch."""
        self.accumulate(logits, seg)
        c = self.curriculum
        if self.since_record < self.task.episode_length(c.N, c.R if self.task.repeat else 1):
            return {}
        self.since_record = 0
        return self.curriculum_step()

    def state_dict(self) -> dict:
        carry = None if self.carry is None else (self.carry.x, self.carry.y, self.carry.mask)
        return {**super().state_dict(), "offset": self.offset, "carry": carry, "served": self.served,
                "since_record": self.since_record, "started": self.started}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.offset = state["offset"].to(self.device)
        self.carry = None if state["carry"] is None else Episode(*(t.to(self.device) for t in state["carry"]))
        self.served = None if state["served"] is None else tuple(t.to(self.device) for t in state["served"])
        self.since_record, self.started = state["since_record"], state["started"]



@register_task("copy")
@register_task("repeat-copy")
def build(cfg, T: int, device, generator) -> CopyStream:
    """Copy and Repeat Copy (``task.repeat``), episodic or as endless streams (``task.protocol``)."""
    stream = ContinuousCopyStream if cfg.task.get("protocol", "episodic") == "continuous" else CopyStream
    return stream(cfg.task, T, device, generator)
