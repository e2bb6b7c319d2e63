"""How good is the synthetic gradient? Measured on held-out data against the true future
gradient from full BPTT (``sgrnn.diag`` calls :func:`sg_quality` every ``diag.every`` updates).

- state space: cos(g_hat, g_true) per sequence at each boundary, |g_hat| / |g_true|, |g_true|.
  Dominated by what M cannot know (the bits still to be recalled), so it can read ~0 while the SG
  helps learning;
- parameter space, what acts on learning: the weight gradient the SG gives the core at the
  boundaries, sum_k J_k^T (scale * given_k) with J_k = d s_k / d theta through segment k, against
  the one the true future gradient would give, sum_k J_k^T g_true_k: their cosine and norm ratio,
  and the cosine of their sequence-specific parts (batch mean out), which a placebo cannot match;
  and the cosine and norm ratio of the SG without its common part (``sg=centred``) against the
  whole true update;
- the common part in state space: the cosine of the batch means of g_hat and g_true, and the
  ratio of their norms, per boundary; the same of what the core is given (``sg_given_mean``: with
  ``sg=tracked``, the running means of M's targets);
- target quality: the cosine of M's regression target (bootstrapped or lambda) with g_true;
- the ceiling for a linear M: the cosine reached by a least-squares (ridge) linear map from
  boundary states to true future gradients, fitted on another held-out sample: out of sample
  (``sg_ceiling_cos``, a lower bound that rises with the fit sample: M has 2H x 2H weights, so it
  needs thousands of sequences) and on the fit sample itself (``sg_ceiling_cos_fit``, an upper bound).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from sgrnn.sg.targets import Pending, episode_targets


def future_gradients(core, loss_fn, x, y, mask, state: torch.Tensor, T: int) -> tuple[list, list]:
    """Full BPTT over a whole sequence from ``state``, cut at every T steps: the state at each
    boundary, and the exact per-sequence gradient of all later losses with respect to it
    (what a perfect synthetic-gradient model would predict there). ``loss_fn(logits, y, mask)``."""
    B = x.shape[1]
    s0 = state.detach().requires_grad_()
    s, total, boundaries = s0, 0.0, []
    for t in range(0, x.shape[0], T):
        if t:
            boundaries.append(s)
        seg = slice(t, t + T)
        logits, s = core(x[seg], s)
        total = total + loss_fn(logits, y[seg], None if mask is None else mask[seg])
    grads = torch.autograd.grad(total, [s0, *boundaries], allow_unused=True)
    states = [s0.detach()] + [b.detach() for b in boundaries]
    return states, [B * g if g is not None else torch.zeros_like(st) for g, st in zip(grads, states)]


def m_inputs(method, states: list, x: torch.Tensor, T: int) -> list:
    """M's inputs at an episode's boundaries: the states, plus what else the method's M reads."""
    return method.m_inputs(states, x, T) if hasattr(method, "m_inputs") else states


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over rows of the cosine of a and b."""
    return F.cosine_similarity(a, b, dim=-1, eps=1e-12).mean().item()


@torch.no_grad()
def _cos_and_ratio(pred: torch.Tensor, true: torch.Tensor) -> tuple[float, float, float]:
    true_norm = true.norm(dim=1).mean().item()
    return cosine(pred, true), pred.norm(dim=1).mean().item() / max(true_norm, 1e-12), true_norm


def segments_of(x, y, mask, T: int) -> list[slice]:
    return [slice(t, min(t + T, x.shape[0])) for t in range(0, x.shape[0], T)]


def param_alignment(core, x, states: list, given: list, true: list, cols: slice, T: int, scale: float) -> dict:
    """The weight gradients that the SG and the true future gradient give the core at the
    boundaries, each through its own segment (start detached): their cosine and norm ratio
    |J^T scale given| / |J^T g_true|, and the cosine of their sequence-specific parts (each
    boundary's batch mean taken out of both): a prediction of the batch's common gradient scores
    high on the first (at initialisation the common part dominates) and ~0 on the second."""
    params = [p for p in core.parameters() if p.requires_grad]
    ends = []
    for k, seg in enumerate(segments_of(x, None, None, T)[:-1]):
        _, s_end = core(x[seg], states[k].detach())
        ends.append(s_end[:, cols])
    B = x.shape[1]

    def weight_grad(vs):
        total = sum((v * e).sum() for v, e in zip(vs, ends)) / B
        return torch.cat([g.flatten() for g in torch.autograd.grad(total, params, retain_graph=True, allow_unused=True)
                          if g is not None])

    def centred(vs):
        return [v - v.mean(dim=0, keepdim=True) for v in vs]

    a, b = weight_grad([scale * g for g in given]), weight_grad(true)
    a_seq, b_seq = weight_grad(centred(given)), weight_grad(centred(true))
    return {"diag/sg_param_cos": F.cosine_similarity(a, b, dim=0, eps=1e-20).item(),
            "diag/sg_param_norm_ratio": (a.norm() / b.norm().clamp(min=1e-20)).item(),
            "diag/sg_param_cos_seq": F.cosine_similarity(a_seq, b_seq, dim=0, eps=1e-20).item(),
            # the SG without its common part (what sg=centred gives) against the whole true update
            "diag/sg_param_cos_centred": F.cosine_similarity(a_seq, b, dim=0, eps=1e-20).item(),
            "diag/sg_param_norm_ratio_centred": (scale * a_seq.norm() / b.norm().clamp(min=1e-20)).item()}


def mean_alignment(preds: list, true: list, name: str = "sg_mean") -> dict:
    """The part of the prediction common to the batch against the true one's: per boundary, the
    cosine of the batch means of g_hat and g_true and the ratio of their norms (means over
    boundaries); ``name``: the keys' stem."""
    cos = [F.cosine_similarity(p.mean(0), t.mean(0), dim=0, eps=1e-20).item() for p, t in zip(preds, true)]
    ratio = [(p.mean(0).norm() / t.mean(0).norm().clamp(min=1e-20)).item() for p, t in zip(preds, true)]
    return {f"diag/{name}_cos": sum(cos) / len(cos), f"diag/{name}_norm_ratio": sum(ratio) / len(ratio)}


def linear_ceiling(fit_states: torch.Tensor, fit_grads: torch.Tensor, states: torch.Tensor, grads: torch.Tensor,
                   ridge: float = 0.1) -> float:
    """The cosine an ideal linear M reaches: a ridge least-squares map [s, 1] -> g_true fitted on
    one sample, scored on another (in float64)."""
    def design(s):
        return torch.cat([s.double(), torch.ones(s.shape[0], 1, dtype=torch.float64, device=s.device)], dim=1)
    A = design(fit_states)
    gram = A.T @ A
    gram += ridge * gram.diagonal().mean() * torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    W = torch.linalg.solve(gram, A.T @ fit_grads.double())
    return cosine((design(states) @ W).float(), grads)


def sg_quality(method, core, loss_fn, x, y, mask, T: int, fit: Optional[tuple] = None) -> dict:
    """All SG-quality measures on a held-out batch (module docstring); ``fit``: another held-out
    batch (x, y, mask) to fit the linear ceiling on, or None to skip it."""
    states, grads = future_gradients(core, loss_fn, x, y, mask, core.zero_state(x.shape[1], x.device), T)
    if len(states) < 2:
        return {}
    cols = method.cols
    ins = m_inputs(method, [s[:, cols] for s in states[1:]], x, T)
    with torch.no_grad():
        preds = [method.model(m) for m in ins]
    true = [g[:, cols] for g in grads[1:]]
    cos, ratio, norm = _cos_and_ratio(torch.cat(preds), torch.cat(true))
    out = {"diag/sg_state_cos": cos, "diag/sg_norm_ratio": ratio, "diag/true_grad_norm": norm, **mean_alignment(preds, true)}
    given = [method.give(p, m, position=k + 1) for k, (p, m) in enumerate(zip(preds, ins))]
    out.update(mean_alignment(given, true, "sg_given_mean"))  # what the core is given of it (sg=tracked: its means)
    out.update(param_alignment(core, x, states, given, true, cols, T, method.scale))
    # M's regression targets on this episode, from its own predictions at the segments' ends.
    segs = segments_of(x, y, mask, T)
    pend = [Pending(states[k], x[seg], y[seg], None if mask is None else mask[seg], preds[k] if k < len(preds) else None)
            for k, seg in list(enumerate(segs))[1:]]
    lam, K = (float(method.cfg.lambda_), int(method.cfg.window)) if method.cfg.target == "lambda" else (0.0, 1)
    targets = episode_targets(core, loss_fn, pend, lam, method.gamma, K, cols)
    out["diag/sg_target_cos"] = cosine(torch.cat(targets), torch.cat(true))
    if fit is not None:
        f_states, f_grads = future_gradients(core, loss_fn, *fit, core.zero_state(fit[0].shape[1], x.device), T)
        if len(f_states) > 1:
            fs, fg = torch.cat(f_states[1:])[:, cols], torch.cat(f_grads[1:])[:, cols]
            out["diag/sg_ceiling_cos"] = linear_ceiling(fs, fg, torch.cat(states[1:])[:, cols], torch.cat(true))
            out["diag/sg_ceiling_cos_fit"] = linear_ceiling(fs, fg, fs, fg)
    return out
