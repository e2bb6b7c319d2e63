"""Instruments on held-out data, every ``diag.every`` updates: what does the synthetic gradient
buy, and how far back does the network look?

- SG quality (``sgrnn.sg.quality``): against the true future gradient g_true from full BPTT over
  the held-out sequence, at the truncation boundaries: the state-space cosine, the parameter-space
  cosine and norm ratio of the weight gradients they give, the target's cosine, and the ceiling
  a least-squares linear M reaches;
- dependency profile: |d loss_t / d x_(t-k)| averaged over the scored steps t, k = 1..K (K well
  beyond T), x being the input vectors (PTB: the character embeddings);
- Copy / Repeat Copy: the bit error rate by the distance between an input and its output.
"""

from __future__ import annotations

import torch

from sgrnn.sg import sg_quality


def dependency_profile(core, x: torch.Tensor, step_losses, K: int) -> list[float]:
    """mean over scored steps t of the batch-mean norm of d loss_t / d x_(t-k), for k = 1..K.
    ``step_losses(logits) -> [L]`` per-step losses, 0 where a step is not scored."""
    inputs = core.embed(x) if getattr(core, "embed", None) is not None and not x.is_floating_point() else x
    inputs = inputs.detach().requires_grad_()
    logits, _ = core(inputs, core.zero_state(x.shape[1], x.device))
    losses = step_losses(logits)
    total, count = torch.zeros(K + 1, device=x.device), torch.zeros(K + 1, device=x.device)
    scored = [t for t in range(1, x.shape[0]) if losses[t].requires_grad and losses[t].detach() != 0]
    for t in scored:
        (g,) = torch.autograd.grad(losses[t], inputs, retain_graph=True)
        size = g.norm(dim=2).mean(dim=1)  # [L]: how much loss_t moves with each input step
        ks = torch.arange(1, min(K, t) + 1, device=x.device)
        total[ks] += size[t - ks]
        count[ks] += 1
    return (total[1:] / count[1:].clamp(min=1)).tolist()


def diagnostics(run, generator: torch.Generator) -> dict:
    """All instruments at once; returns TensorBoard scalars and records curves in the run log."""
    cfg, task, core = run.cfg.diag, run.task, run.core
    x, y, mask = task.heldout(cfg.batch_size, cfg.length, generator)
    out = {}
    if getattr(run.sg, "model", None) is not None:  # methods with an M
        fit = task.heldout(cfg.ceiling_batch, cfg.length, generator) if cfg.ceiling_batch else None
        out.update(sg_quality(run.sg, core, task.loss, x, y, mask, run.cfg.T, fit))
    profile = dependency_profile(core, x, lambda logits: task.step_losses(logits, y, mask), cfg.probe_k)
    for k in sorted({1, run.cfg.T, run.cfg.T + 1, 2 * run.cfg.T, cfg.probe_k} & set(range(1, cfg.probe_k + 1))):
        out[f"probe/grad_lag_{k}"] = profile[k - 1]
    if "diag/sg_state_cos" in out:
        run.log.diag["sg_quality"].append({"step": run.step, **{k[5:]: v for k, v in out.items() if k.startswith("diag/")}})
    run.log.diag["dependency_profile"] = {"step": run.step, "k": list(range(1, cfg.probe_k + 1)), "grad": profile}
    run.log.diag["dependency_profiles"].append({"step": run.step, "grad": profile})
    if hasattr(task, "error_by_distance"):
        with torch.no_grad():
            logits, _ = core(x, core.zero_state(x.shape[1], x.device))
        errors = task.error_by_distance(logits, y, mask)
        run.log.diag["error_by_distance"] = {"step": run.step, **errors}
        for d, rate in errors.items():
            out[f"probe/bit_error_at_distance_{d}"] = rate
    return out
