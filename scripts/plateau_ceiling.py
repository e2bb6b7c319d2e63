"""How predictable is the future gradient where a Copy run stopped, and how much of it does its M
predict? For a finished run (read-only, from its checkpoint): held-out episodes at the length it
was learning; at each truncation boundary, the cosine with the true future gradient (full BPTT)
of (a) the run's own M, (b) a ridge least-squares linear map fitted on FIT other held-out
sequences (the ceiling of a linear M at this core, out of sample), (c) the same fit made onto
M's own regression targets (the run's sg.target, lambda and window, built with its M) instead
of the true gradients: what M's target lets a linear M reach; and M's norm ratio. With
--mlp, also a two-hidden-layer ReLU MLP of that width fitted by Adam (lr 1e-3, batch 256, 30
epochs, torch seed 0) on the same pairs (all boundaries pooled, M's RMS input norm): its test
cosine every 5 epochs.

    python scripts/plateau_ceiling.py RUN_DIR [RUN_DIR ...] [--fit 6000] [--test 1000] [--mlp 1024]
"""

from __future__ import annotations

import argparse
import sys

import torch
from torch import nn

from sgrnn.errors import UserError
from sgrnn.sg.models import rms_blocks
from sgrnn.sg.quality import cosine, future_gradients, linear_ceiling, segments_of
from sgrnn.sg.targets import Pending, episode_targets
from sgrnn.train import reopened


def measure(run_dir: str, fit: int, test: int, mlp: int = 0) -> list[str]:
    with reopened(run_dir) as run:
        core, task, T = run.core, run.task, run.cfg.T
        if not hasattr(task, "curriculum"):
            raise UserError(f"{run_dir} is not a Copy or Repeat Copy run")
        gen = torch.Generator().manual_seed(123)

        def sample(n):
            x, y, mask = task.heldout(n, 0, gen)
            states, grads = future_gradients(core, task.loss, x, y, mask, core.zero_state(n, "cpu"), T)
            return states[1:], grads[1:], (x, y, mask)

        fs, fg, fx = sample(fit)
        ts, tg, _ = sample(test)
        cols = run.sg.cols
        # M's own targets (the run's sg.target, lambda and window, with its M) on the fit sample
        x, y, mask = fx
        segs = segments_of(x, y, mask, T)
        with torch.no_grad():
            preds = [run.sg.model(st[:, cols]) for st in fs]
        pend = [Pending(fs[k - 1], x[seg], y[seg], mask[seg], preds[k] if k < len(preds) else None)
                for k, seg in list(enumerate(segs))[1:]]
        lam, K = (float(run.cfg.sg.lambda_), int(run.cfg.sg.window)) if run.cfg.sg.target == "lambda" else (0.0, 1)
        ft = episode_targets(core, task.loss, pend, lam, run.sg.gamma, K, cols)
        out = [f"{run_dir}: N={task.curriculum.N}, update {run.step}", "",
               "| boundary | true \\|g\\| | ridge-linear cos (ceiling) | ridge fit of M's targets: cos | M cos | "
               "M norm / true |", "|---|---|---|---|---|---|"]
        for k in range(len(ts)):
            with torch.no_grad():
                p = run.sg.model(ts[k][:, cols])
            ceiling = linear_ceiling(fs[k][:, cols], fg[k][:, cols], ts[k][:, cols], tg[k][:, cols])
            g = tg[k][:, cols]
            own = linear_ceiling(fs[k][:, cols], ft[k], ts[k][:, cols], g)  # what M's target lets a linear M reach
            out.append(f"| {k + 1} | {g.norm(dim=1).mean():.2f} | {ceiling:.3f} | {own:.3f} | {cosine(p, g):.3f} | "
                       f"{(p.norm(dim=1).mean() / g.norm(dim=1).mean()):.3f} |")
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+")
    parser.add_argument("--fit", type=int, default=6000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--mlp", type=int, default=0, help="also fit an MLP of this width (0: no)")
    ns = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        for r in ns.runs:
            print("\n".join(measure(r, ns.fit, ns.test, ns.mlp)))
    except UserError as e:
        print(f"plateau_ceiling.py: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
