"""How predictable is the future gradient where a Copy run stopped, and how much of it its M predicts.

On held-out episodes at the length the run was learning, at each truncation boundary: the cosine
with the true future gradient (full BPTT) of (a) the run's own M, (b) a ridge least-squares
linear map fitted on --fit other held-out sequences (the ceiling of a linear M at this core, out
of sample), (c) the same fit made onto M's own regression targets (the run's sg.target, lambda
and window, built with its M) instead of the true gradients: what M's target lets a linear M
reach; M's norm ratio; and, when M also reads the input window (sg.history), (d) the ridge ceiling
from M's own inputs. The part common to the batch: the cosine of the batch mean of M's
predictions with the batch mean of the true gradients (and the ratio of their norms), and the same
cosine for the batch mean of M's targets on the fit sample. With --mlp W, also a two-hidden-layer ReLU MLP of width W fitted by
Adam (lr 1e-3, batch 256, 30 epochs, torch seed 0) on the same pairs (all boundaries pooled, M's
RMS input norm): its test cosine every 5 epochs.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from sgrnn.config import M_METHODS
from sgrnn.errors import UserError
from sgrnn.sg.models import rms_blocks
from sgrnn.sg.quality import cosine, future_gradients, linear_ceiling, m_inputs, segments_of
from sgrnn.sg.targets import Pending, episode_targets
from sgrnn.train import reopened


def measurable(s: dict) -> bool:
    """Of a folder of runs: Copy and Repeat Copy runs whose method has an M."""
    return "max_solved" in s and s.get("sg") in M_METHODS


def measure(run_dir: Path, fit: int, test: int, mlp: int = 0) -> list[str]:
    with reopened(run_dir) as run:
        core, task, T = run.core, run.task, run.cfg.T
        if not hasattr(task, "curriculum") or not hasattr(run.sg, "model"):
            raise UserError(f"{run_dir}: a {run.cfg.task.name} run with sg={run.cfg.sg.name}: Copy or Repeat Copy "
                            f"runs with an M (sg={', '.join(M_METHODS)}) only")
        gen = torch.Generator().manual_seed(123)

        def sample(n):
            x, y, mask = task.heldout(n, 0, gen)
            states, grads = future_gradients(core, task.loss, x, y, mask, core.zero_state(n, "cpu"), T)
            return states[1:], grads[1:], (x, y, mask)

        fs, fg, fx = sample(fit)
        if not fs:
            raise UserError(f"{run_dir}: its episodes (N={task.curriculum.N}) fit in one segment of T={T} steps: "
                            "no truncation boundary to measure")
        ts, tg, tx = sample(test)
        cols = run.sg.cols
        # M's own targets (the run's sg.target, lambda and window, with its M) on the fit sample
        x, y, mask = fx
        segs = segments_of(x, y, mask, T)
        with torch.no_grad():
            inputs = m_inputs(run.sg, [st[:, cols] for st in fs], x, T)  # the states (and inputs, sg.history)
            preds = [run.sg.model(m) for m in inputs]
            test_inputs = m_inputs(run.sg, [st[:, cols] for st in ts], tx[0], T)
            test_preds = [run.sg.model(m) for m in test_inputs]
        wider = getattr(run.sg, "history", None) is not None  # M reads more than the state (sg.history)
        pend = [Pending(fs[k - 1], x[seg], y[seg], mask[seg], preds[k] if k < len(preds) else None, inputs[k - 1])
                for k, seg in list(enumerate(segs))[1:]]
        lam, K = (float(run.cfg.sg.lambda_), int(run.cfg.sg.window)) if run.cfg.sg.target == "lambda" else (0.0, 1)
        ft = episode_targets(core, task.loss, pend, lam, run.sg.gamma, K, cols)
        out = [f"{run_dir}: N={task.curriculum.N}, update {run.step}", "",
               "| boundary | true \\|g\\| | ridge-linear cos (ceiling) | ridge fit of M's targets: cos | M cos | "
               "M norm / true | batch mean of M: cos | its norm / true's | batch mean of M's targets: cos |"
               + " ceiling from M's inputs (state and sg.history) |" * wider,
               "|---|---|---|---|---|---|---|---|---|" + "---|" * wider]
        for k in range(len(ts)):
            p, g = test_preds[k], tg[k][:, cols]
            ceiling = linear_ceiling(fs[k][:, cols], fg[k][:, cols], ts[k][:, cols], g)
            own = linear_ceiling(fs[k][:, cols], ft[k], ts[k][:, cols], g)  # what M's target lets a linear M reach
            row = (f"| {k + 1} | {g.norm(dim=1).mean():.2f} | {ceiling:.3f} | {own:.3f} | {cosine(p, g):.3f} | "
                   f"{(p.norm(dim=1).mean() / g.norm(dim=1).mean()):.3f} | {cosine(p.mean(0), g.mean(0)):.3f} | "
                   f"{(p.mean(0).norm() / g.mean(0).norm()):.3f} | {cosine(ft[k].mean(0), fg[k][:, cols].mean(0)):.3f} |")
            if wider:
                row += f" {linear_ceiling(inputs[k], fg[k][:, cols], test_inputs[k], g):.3f} |"
            out.append(row)
        pooled = linear_ceiling(torch.cat(fs)[:, cols], torch.cat(fg)[:, cols], torch.cat(ts)[:, cols],
                                torch.cat(tg)[:, cols])
        out += ["", f"One linear map for every boundary (as M is): ceiling cos {pooled:.3f}", ""]
        if mlp:
            out += mlp_fit(torch.cat(fs)[:, cols], torch.cat(fg)[:, cols], torch.cat(ts)[:, cols],
                           torch.cat(tg)[:, cols], mlp, run.cfg.model.hidden_size) + [""]
        return out


def mlp_fit(fs, fg, ts, tg, width: int, H: int) -> list[str]:
    """An MLP's out-of-sample cosine with the true future gradient (module docstring)."""
    torch.manual_seed(0)
    norm = lambda s: rms_blocks(s, H)  # noqa: E731
    X, Y = norm(fs), fg / fg.norm(dim=1).mean()
    m = nn.Sequential(nn.Linear(X.shape[1], width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                      nn.Linear(width, Y.shape[1]))
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    out = [f"MLP {width}x2 fitted on {len(X)} pairs:"]
    for epoch in range(30):
        perm = torch.randperm(len(X))
        for i in range(0, len(X), 256):
            idx = perm[i : i + 256]
            loss = (m(X[idx]) - Y[idx]).pow(2).sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % 5 == 4:
            with torch.no_grad():
                out.append(f"  epoch {epoch + 1}: train cos {cosine(m(X[:3000]), Y[:3000]):.3f}, "
                           f"test cos {cosine(m(norm(ts)), tg):.3f}")
    return out


def add_arguments(p) -> None:
    p.add_argument("--fit", type=int, default=6000, help="held-out sequences the linear maps are fitted on (default 6000)")
    p.add_argument("--test", type=int, default=1000, help="held-out sequences they are scored on (default 1000)")
    p.add_argument("--mlp", type=int, default=0, metavar="W", help="also fit a 2-layer MLP of width W (default 0: no)")


def run(folders: list[Path], ns) -> None:
    for folder in folders:
        print("\n".join(measure(folder, ns.fit, ns.test, ns.mlp)), flush=True)
