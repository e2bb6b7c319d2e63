"""``sgrnn bench``: throughput of sgrnn's trainer against the bare fused-LSTM step, side by side
in one process.

    sgrnn bench                       # T = 2 3 5 8, Copy and PTB shapes, CPU
    sgrnn bench --device cuda         # the same on a GPU

For each shape and T, three steps are timed in rotation, ``--repeats`` times:

  (a) bare: fused torch.nn.LSTM + linear readout, forward + backward + fused Adam on fixed tensors;
  (b) sgrnn's trainer update (``sgrnn.train.update``) with sg=off: data generation, loss,
      clipping, curriculum bookkeeping and logging included;
  (c) the same with sg=on.

Each measurement runs ``--warmup`` updates, then times ``--steps`` updates. The table gives the
median timestep-samples per second (T x batch per update) and the ratios b/a and c/b, and
"c/b bound": the best c/b that the synthetic-gradient model's own arithmetic allows, were every
other cost zero and M's matrix products as fast per multiply-add as the LSTM's (``sg_bound``).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from sgrnn.errors import UserError

SHAPES = {
    # name: (task overrides, hidden, batch, LSTM input width)
    "copy": (["task=copy", "task.start_N=64"], 256, 256, 9),
    "ptb": (["task=ptb"], 512, 128, 128),
}


def sg_bound(T: int, hidden: int, inputs: int) -> float:
    """1 / (1 + M's multiply-adds / the LSTM's) per update. The LSTM's forward, backward
    (input and weight gradients) are 3 x T x B x 4H(I+H); a linear M over (h, c), n = 2H, makes
    3 products of B x n by n x n (prediction at s_end, M(s_start), weight gradient): 3 x B x n^2.
    B cancels: the ratio is n^2 / (T 4H (I+H)), about 1/T on Copy's shape, 0.8/T on PTB's."""
    n = 2 * hidden
    return 1 / (1 + n * n / (T * 4 * hidden * (inputs + hidden)))


def bare_step(shape: str, T: int, hidden: int, batch: int, device):
    """The ceiling: what a fused LSTM step costs with nothing around it."""
    if shape == "ptb":
        embed = nn.Embedding(50, 128).to(device)
        x = torch.randint(0, 50, (T, batch), device=device)
        y = torch.randint(0, 50, (T, batch), device=device)
        inp, out = 128, 50
    else:
        embed = None
        x = torch.randint(0, 2, (T, batch, 9), device=device).float()
        y = torch.randint(0, 2, (T, batch, 8), device=device).float()
        inp, out = 9, 8
    lstm, readout = nn.LSTM(inp, hidden).to(device), nn.Linear(hidden, out).to(device)
    params = list(lstm.parameters()) + list(readout.parameters()) + (list(embed.parameters()) if embed else [])
    opt = torch.optim.Adam(params, lr=1e-3, fused=True)  # the fastest Adam PyTorch has, as sgrnn uses

    def step():
        h, _ = lstm(embed(x) if embed else x)
        logits = readout(h)
        if shape == "ptb":
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        else:
            loss = F.binary_cross_entropy_with_logits(logits, y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def trainer_step(shape: str, T: int, sg: str, hidden: int, batch: int, device, run_dir: Path, ptb_dir: str,
                 more: tuple = ()):
    from sgrnn.config import make_config
    from sgrnn.train import setup, update

    overrides = SHAPES[shape][0]
    extra = [f"task.data_dir={ptb_dir}", "task.val_every=1000000000"] if shape == "ptb" else []
    cfg = make_config(*overrides, *extra, f"sg={sg}", f"T={T}", f"model.hidden_size={hidden}",
                   f"task.batch_size={batch}", f"device={device.type}", "train.progress=false", *more)
    run = setup(cfg, run_dir)
    return lambda: update(run)


def timed(step, warmup: int, steps: int, device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="sgrnn bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--T", type=int, nargs="+", default=[2, 3, 5, 8], help="truncation lengths (default 2 3 5 8)")
    p.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES), help="network and batch shapes")
    p.add_argument("--repeats", type=int, default=5, help="measurements per step, median taken (default 5)")
    p.add_argument("--steps", type=int, default=40, help="updates timed per measurement (default 40)")
    p.add_argument("--warmup", type=int, default=10, help="updates before each measurement (default 10)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    p.add_argument("--ptb-dir", default=os.environ.get("SGRNN_DATA_DIR", "data/ptb"),
                   help="PTB data for the ptb shape (default $SGRNN_DATA_DIR or data/ptb)")
    p.add_argument("--bf16", action="store_true", help="also (d): sg=on with sg.dtype=bfloat16, and d/b")
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=OVERRIDE[,OVERRIDE...]",
                   help="another column: sg=on with these overrides, and its ratio to (c); e.g. "
                        "--variant lambda2=sg.target=lambda,sg.window=2")
    args = p.parse_args(argv)
    if min(args.T + [args.repeats, args.steps]) < 1 or args.warmup < 0 or args.threads < 0:
        raise UserError("--T, --repeats and --steps must be positive, --warmup and --threads not negative")
    variants = {}
    for v in args.variant:
        label, _, overrides = v.partition("=")
        if not overrides:
            p.error(f"--variant {v!r}: expected LABEL=OVERRIDE[,OVERRIDE...]")
        variants[label] = tuple(overrides.split(","))
    try:
        device = torch.device(args.device)
    except RuntimeError as e:
        raise UserError(f"--device {args.device}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {args.device}: no CUDA device here")
    if "ptb" in args.shapes:
        from sgrnn.tasks.ptb import check_present

        check_present(args.ptb_dir)
    threads = args.threads or os.cpu_count() or 1
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{threads} threads, device {device}" + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
    print(f"# median of {args.repeats} x {args.steps} updates after {args.warmup} warm-up; timestep-samples/s")
    d = " (d) sg=on bf16 M | d/b |" if args.bf16 else ""
    d += "".join(f" {label} | {label}/c |" for label in variants)
    print("| shape | T | (a) bare LSTM | (b) sg=off | (c) sg=on | b/a | c/b | c/b bound |" + d)
    print("|---|---|---|---|---|---|---|---|" + "---|---|" * (args.bf16 + len(variants)))
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes:
            _, hidden, batch, inputs = SHAPES[shape]
            for T in args.T:
                steps = {
                    "a": bare_step(shape, T, hidden, batch, device),
                    "b": trainer_step(shape, T, "off", hidden, batch, device, Path(tmp) / f"{shape}{T}off", args.ptb_dir),
                    "c": trainer_step(shape, T, "on", hidden, batch, device, Path(tmp) / f"{shape}{T}on", args.ptb_dir),
                }
                if args.bf16:
                    steps["d"] = trainer_step(shape, T, "on", hidden, batch, device, Path(tmp) / f"{shape}{T}bf",
                                              args.ptb_dir, ("sg.dtype=bfloat16",))
                for label, overrides in variants.items():
                    steps[label] = trainer_step(shape, T, "on", hidden, batch, device, Path(tmp) / f"{shape}{T}{label}",
                                                args.ptb_dir, overrides)
                torch.set_num_threads(threads)  # setup() sets it from the config; make it explicit here
                rates = {k: [] for k in steps}
                for r in range(args.repeats):
                    order = list(steps)[r % len(steps) :] + list(steps)[: r % len(steps)]  # rotate to spread drift
                    for k in order:
                        rates[k].append(T * batch * args.steps / timed(steps[k], args.warmup, args.steps, device))
                m = {k: statistics.median(v) for k, v in rates.items()}
                print(f"| {shape} H={hidden} B={batch} | {T} | {m['a']:,.0f} | {m['b']:,.0f} | {m['c']:,.0f} "
                      f"| {m['b'] / m['a']:.2f} | {m['c'] / m['b']:.2f} | {sg_bound(T, hidden, inputs):.2f} |"
                      + (f" {m['d']:,.0f} | {m['d'] / m['b']:.2f} |" if args.bf16 else "")
                      + "".join(f" {m[label]:,.0f} | {m[label] / m['c']:.2f} |" for label in variants), flush=True)
