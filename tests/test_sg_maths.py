"""The synthetic-gradient maths (../shared/PAPER.md, "Checks that no public implementation
has"), on a 2-layer LSTM in float64 so equalities are tight."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sgrnn.model import LSTMCore
from sgrnn.sg import Boundary, Context, make_m, make_method
from sgrnn.tasks.copy import CopyTask

from sgrnn.config import make_config

# These identities are about M reading the boundary state alone, as the paper's M does, with the
# scale of the tests' first version: the 16-step input window of the defaults has its own test
# below (test_history_window_...), against the same quantities.
STATE_ONLY = ["sg.history=0", "sg.input_norm=none", "sg.scale=0.1"]


def setup(T=3, N=5, B=4, layers=2, seed=0):
    torch.manual_seed(seed)
    task = CopyTask()
    ep = task.sample(N, 1, B, torch.Generator().manual_seed(seed), "cpu")
    ep.x, ep.y, ep.mask = ep.x.double(), ep.y.double(), ep.mask.double()
    core = LSTMCore(task.input_size, task.output_size, hidden_size=6, num_layers=layers).double()
    segments = [slice(t, min(t + T, ep.x.shape[0])) for t in range(0, ep.x.shape[0], T)]
    return task, ep, core, segments


def sg_cfg(**kw):
    cfg = make_config("sg=on", "sg.target=bootstrap", *STATE_ONLY).sg
    for k, v in kw.items():
        cfg[k] = v
    return cfg


def DNI(cfg, state_size, device="cpu"):
    """The method ``cfg`` names (None: plain truncated BPTT), as the trainer builds it."""
    return make_method(cfg, Context(state_size, state_size, torch.device(device)))


def predict(dni, s_end, last=False):
    """M's prediction at s_end (None at an episode's end), as the core would be given it."""
    return dni.predict(s_end.detach(), s_end, last=last).g_hat


def boundary(dni, s_start, s_end, g):
    """The Boundary of a segment whose end is given ``g`` (None: nothing)."""
    return Boundary(s_start, s_end, g_hat=g, given=None if g is None else dni.give(g, s_end)) if g is not None \
        else Boundary(s_start, s_end)


def grads(core):
    return [p.grad.clone() for p in core.parameters()]


def truncated_grads(core, task, ep, segments, dni, predict_k):
    """Accumulate the core's gradients over all segments of one episode, no update between."""
    core.zero_grad()
    state = core.zero_state(ep.x.shape[1], "cpu").double()
    for k, seg in enumerate(segments):
        s0 = dni.start(state, first=k == 0)
        logits, s_end = core(ep.x[seg], s0)
        loss = task.loss(logits, ep.y[seg], ep.mask[seg])
        last = k == len(segments) - 1
        dni.backward(loss, boundary(dni, s0, s_end, None if last else predict_k(k, s_end)))
        state = s_end.detach()
    return grads(core)


def test_sg_model_starts_at_exactly_zero():
    for hidden in (0, 16):
        m = make_m(12, hidden)
        assert torch.count_nonzero(m.net[-1].weight) == 0 and torch.count_nonzero(m.net[-1].bias) == 0
        assert torch.count_nonzero(m(torch.randn(5, 12))) == 0


def test_zero_synthetic_gradient_equals_plain_truncated_bptt():
    task, ep, core, segments = setup()
    plain = truncated_grads(core, task, ep, segments, DNI(None, core.state_size, "cpu"), lambda k, s: None)
    dni = DNI(sg_cfg(), core.state_size, "cpu")
    dni.model.double()
    with_zero = truncated_grads(core, task, ep, segments, dni, lambda k, s: predict(dni, s))
    assert all(torch.equal(a, b) for a, b in zip(plain, with_zero))
    # ... and a nonzero prediction does change them (the comparison can fail).
    nn.init.normal_(dni.model.net[-1].weight)
    changed = truncated_grads(core, task, ep, segments, dni, lambda k, s: predict(dni, s))
    assert not all(torch.allclose(a, b) for a, b in zip(plain, changed))


def oracle_future_gradients(core, task, ep, segments):
    """Full BPTT over the whole episode: parameter gradients, and the exact gradient of all
    later losses with respect to each boundary state (per sequence, i.e. times B)."""
    core.zero_grad()
    state = core.zero_state(ep.x.shape[1], "cpu").double()
    total, boundaries = 0.0, []
    for seg in segments:
        logits, state = core(ep.x[seg], state)
        total = total + task.loss(logits, ep.y[seg], ep.mask[seg])
        boundaries.append(state)
    futures = torch.autograd.grad(total, boundaries[:-1], retain_graph=True)
    total.backward()
    return grads(core), [g * ep.x.shape[1] for g in futures]


def test_oracle_future_gradient_makes_truncated_bptt_equal_full_bptt():
    task, ep, core, segments = setup(T=3, N=5, layers=2)  # 11 steps: segments of 3, 3, 3, 2
    # Reference: one backward pass through the whole unsegmented episode.
    core.zero_grad()
    logits, _ = core(ep.x, core.zero_state(ep.x.shape[1], "cpu").double())
    task.loss(logits, ep.y, ep.mask).backward()
    full = grads(core)
    _, futures = oracle_future_gradients(core, task, ep, segments)
    dni = DNI(sg_cfg(scale=1.0), core.state_size, "cpu")
    oracle = truncated_grads(core, task, ep, segments, dni, lambda k, s: futures[k])
    for a, b in zip(full, oracle):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    plain = truncated_grads(core, task, ep, segments, DNI(None, core.state_size, "cpu"), lambda k, s: None)
    assert max((a - b).abs().max().item() for a, b in zip(full, plain)) > 1e-6  # truncation matters here


@pytest.mark.parametrize("scale, in_target", [(1.0, True), (0.1, True), (0.1, False)])
def test_bootstrapped_target_is_the_gradient_reaching_the_start_state(scale, in_target):
    task, ep, core, segments = setup()
    dni = DNI(sg_cfg(scale=scale, scale_in_target=in_target), core.state_size, "cpu")
    dni.model.double()
    nn.init.normal_(dni.model.net[-1].weight, std=0.3)
    B, seg = ep.x.shape[1], segments[2]
    s_start = torch.randn(B, core.state_size, dtype=torch.float64)

    def segment(s):
        logits, s_end = core(ep.x[seg], s)
        return task.loss(logits, ep.y[seg], ep.mask[seg]), s_end

    # Independent reference: d(segment loss)/ds + the vector-Jacobian product J^T g_hat.
    s = s_start.clone().requires_grad_()
    loss, s_end = segment(s)
    g_hat = predict(dni, s_end)
    (dloss,) = torch.autograd.grad(loss, s, retain_graph=True)
    (jtg,) = torch.autograd.grad(s_end, s, grad_outputs=g_hat / B)
    expected = B * (dloss + (scale if in_target else 1.0) * jtg)

    leaf = dni.start(s_start, first=False)
    loss, s_end = segment(leaf)
    core.zero_grad()
    b = dni.predict(leaf, s_end)
    dni.backward(loss, b)
    torch.testing.assert_close(dni.target.targets(b)[0][1], expected, rtol=1e-10, atol=1e-12)
    # The core's update always uses the scaled prediction.
    param_grads = grads(core)
    core.zero_grad()
    ref_loss, ref_end = segment(s_start)
    (ref_loss + scale * (g_hat * ref_end).sum() / B).backward()
    for a, b in zip(param_grads, grads(core)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_sg_regression_trains_only_M_onto_the_target():
    task, ep, core, segments = setup()
    dni = DNI(sg_cfg(loss_weight=1.0), core.state_size, "cpu")
    dni.model.double()
    B = ep.x.shape[1]
    leaf = dni.start(torch.randn(B, core.state_size, dtype=torch.float64), first=False)
    logits, s_end = core(ep.x[segments[2]], leaf)
    core.zero_grad()
    b = boundary(dni, leaf, s_end, None)
    dni.backward(task.loss(logits, ep.y[segments[2]], ep.mask[segments[2]]), b)
    before = grads(core)
    stats = dni.learn(b)
    assert all(torch.equal(a, b) for a, b in zip(before, grads(core)))  # nothing leaks into the core
    target = B * leaf.grad
    # M starts at zero, so its loss is 0.5 * mean_b |target_b|^2 and the bias gradient is -mean_b target_b.
    torch.testing.assert_close(stats["sg/loss"], 0.5 * target.pow(2).sum(1).mean())
    torch.testing.assert_close(dni.model.net[-1].bias.grad, -target.mean(0))
    assert stats["sg/loss"] > 0


def test_no_target_at_an_episode_start_and_no_prediction_at_its_end():
    dni = DNI(sg_cfg(), 8, "cpu")
    s = torch.randn(3, 8)
    assert not dni.start(s, first=True).requires_grad
    assert dni.start(s, first=False).requires_grad
    assert predict(dni, s, last=True) is None
    assert predict(dni, s, last=False) is not None
    assert predict(DNI(None, 8, "cpu"), s, last=False) is None


@pytest.mark.parametrize("last", [False, True])
def test_linear_M_closed_form_regression_equals_autograd(last):
    """learn()'s hand-written gradient for a linear M (with M(s_start) from predict()'s shared
    matrix product, or computed afresh after an episode's last segment) is autograd's."""
    task, ep, core, segments = setup()
    dni = DNI(sg_cfg(loss_weight=0.7), core.state_size, "cpu")
    dni.model.double()
    nn.init.normal_(dni.model.net[-1].weight, std=0.3)
    nn.init.normal_(dni.model.net[-1].bias, std=0.3)
    B, seg = ep.x.shape[1], segments[2]
    leaf = dni.start(torch.randn(B, core.state_size, dtype=torch.float64), first=False)
    logits, s_end = core(ep.x[seg], leaf)
    b = dni.predict(leaf, s_end, last=last)
    g_hat = b.g_hat
    if last:
        assert g_hat is None
    else:
        torch.testing.assert_close(g_hat, dni.model(s_end.detach()), rtol=1e-12, atol=1e-12)
    dni.backward(task.loss(logits, ep.y[seg], ep.mask[seg]), b)
    stats = dni.learn(b)
    by_hand = [p.grad.clone() for p in dni.model.parameters()]
    dni.model.zero_grad()
    target = B * leaf.grad
    expected = 0.5 * 0.7 * (dni.model(leaf.detach()) - target).pow(2).sum(1).mean()
    expected.backward()
    torch.testing.assert_close(stats["sg/loss"], expected.detach(), rtol=1e-12, atol=1e-12)
    for a, b in zip(by_hand, dni.model.parameters()):
        torch.testing.assert_close(a, b.grad, rtol=1e-12, atol=1e-12)
    assert all(g.abs().max() > 0 for g in by_hand)


def test_rms_input_norm_keeps_the_closed_form_regression_and_ignores_each_blocks_scale():
    """sg.input_norm=rms: M reads each H-block of the state over its RMS. The linear M's
    hand-written regression gradient is still autograd's, and M(s) is unchanged when one
    block (one layer's c, say) is scaled."""
    from sgrnn.sg.models import LinearM, MLPM

    torch.manual_seed(0)
    H, B = 4, 6
    for m in (LinearM(4 * H, block=H).double(), MLPM(4 * H, 8, block=H).double()):
        nn.init.normal_(m.net[-1].weight, std=0.3)
        s, target = torch.randn(B, 4 * H, dtype=torch.float64), torch.randn(B, 4 * H, dtype=torch.float64)
        scaled = s.clone()
        scaled[:, H : 2 * H] *= 37.0
        torch.testing.assert_close(m(scaled), m(s), rtol=1e-5, atol=1e-5)  # up to the eps under the root
        m.block = 0  # without the norm the same M does see the scale
        assert (m(scaled) - m(s)).abs().max() > 1.0
        m.block = H
        m.zero_grad()
        m.regress(s, target, 0.7)
        by_hand = [p.grad.clone() for p in m.parameters()]
        m.zero_grad()
        (0.5 * 0.7 * (m(s) - target).pow(2).sum(1).mean()).backward()
        for a, p in zip(by_hand, m.parameters()):
            torch.testing.assert_close(a, p.grad, rtol=1e-12, atol=1e-12)


def test_ridge_M_is_the_weighted_ridge_least_squares_fit_of_its_targets():
    """sg.fit=ridge: after n regressions, M's weights are the ridge solution over every (state,
    target) pair seen, pair j of update i weighted decay^(n-1-i) / B, computed here another way
    (one stacked weighted least-squares problem, float64), with and without the RMS input norm."""
    from sgrnn.sg.models import RidgeM, rms_blocks

    torch.manual_seed(0)
    size, B, n, decay, ridge = 6, 5, 7, 0.9, 0.05
    for block in (0, 3):
        m = RidgeM(size, block=block, decay=decay, ridge=ridge, every=n)
        states = [torch.randn(B, size) * 3 for _ in range(n)]
        targets = [torch.randn(B, size) for _ in range(n)]
        for s, t in zip(states, targets):
            m.regress(s, t, 1.0)
        x = torch.cat([rms_blocks(s, block) if block else s for s in states]).double()
        x = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
        y = torch.cat(targets).double()
        w = torch.cat([torch.full((B,), decay ** (n - 1 - i) / B, dtype=torch.float64) for i in range(n)])
        xtx = x.t() @ (w[:, None] * x)
        penalty = ridge * xtx.diagonal().mean() + 1e-12
        sol = torch.linalg.solve(xtx + penalty * torch.eye(size + 1, dtype=torch.float64), x.t() @ (w[:, None] * y))
        lin = m.net[0]
        torch.testing.assert_close(lin.weight.double(), sol[:-1].t(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(lin.bias.double(), sol[-1], rtol=1e-5, atol=1e-6)
        assert not any(p.requires_grad for p in m.parameters())  # Adam never steps it


def test_ridge_M_trains_through_the_trainer_and_starts_as_plain_truncated_bptt(tmp_path):
    from sgrnn.config import make_config
    from sgrnn.train import setup, update

    small = ["model.hidden_size=12", "task.batch_size=8", "task.start_N=4", "device=cpu", "T=3"]
    run = setup(make_config("sg=on", "sg.fit=ridge", "sg.ridge_every=3", *small), tmp_path / "ridge")
    plain = setup(make_config("sg=off", *small), tmp_path / "off")
    for _ in range(2):  # M is still zero until its first solve: DNI is plain truncated BPTT
        update(run)
        update(plain)
    assert all(torch.equal(a, b) for a, b in zip(run.core.parameters(), plain.core.parameters()))
    for _ in range(10):
        update(run)
    assert run.sg.model.net[0].weight.abs().sum() > 0 and int(run.sg.model.fits) > 3


@pytest.mark.parametrize("target", ["bootstrap", "lambda"])
def test_history_M_reads_the_last_K_inputs_and_its_closed_form_regression_is_autograds(target):
    """sg.history=K: at every boundary M reads [state, the episode's last K inputs (zeros before
    its start)]; the trainer's window equals the instruments' (m_inputs, from the whole
    episode), the regression pairs carry it, and the linear M's hand-written gradient on those
    inputs is autograd's (float64)."""
    from sgrnn.tasks import Segment

    task, ep, core, segments = setup(T=2, N=4, layers=1)
    K, B, F = 5, ep.x.shape[1], task.input_size
    cfg = sg_cfg(history=K, target=target, input_norm="rms", scale=1.0, window=2, loss_weight=0.7)
    dni = make_method(cfg, Context(core.state_size, core.state_size, torch.device("cpu"), core, task.loss,
                                   input_size=F))
    dni.model.double()
    nn.init.normal_(dni.model.net[-1].weight, std=0.3)
    assert dni.model.net[0].weight.shape == (core.state_size, core.state_size + K * F)
    state, seen, ends = core.zero_state(B, "cpu").double(), [], []
    for k, seg in enumerate(segments):
        first, last = k == 0, k == len(segments) - 1
        s0 = dni.start(state, first)
        logits, s_end = core(ep.x[seg], s0)
        b = dni.predict(s0, s_end, last=last, seg=Segment(ep.x[seg], ep.y[seg], ep.mask[seg], first, last))
        t = seg.stop
        window = torch.cat([torch.zeros(B, max(0, K - t) * F, dtype=torch.float64),
                            ep.x[max(0, t - K):t].permute(1, 0, 2).reshape(B, -1)], dim=1)
        torch.testing.assert_close(dni.history.window, window, rtol=0, atol=0)
        if not first:
            torch.testing.assert_close(b.m_start, torch.cat([s0.detach(), seen[-1]], dim=1), rtol=0, atol=0)
        if not last:
            torch.testing.assert_close(b.g_hat, dni.model(torch.cat([s_end.detach(), window], dim=1)))
            ends.append(torch.cat([s_end.detach(), window], dim=1))
        seen.append(window)
        dni.backward(task.loss(logits, ep.y[seg], ep.mask[seg]), b)
        dni.model.zero_grad()
        pairs = dni.target.targets(b)
        for m_in, _, _ in pairs:  # every pair's input is a boundary's [state, window]
            assert any(torch.equal(m_in, e) for e in ends)
        if pairs:
            m_in, tgt = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
            dni.model.regress(m_in, tgt, 0.7)
            by_hand = [p.grad.clone() for p in dni.model.parameters()]
            dni.model.zero_grad()
            (0.5 * 0.7 * (dni.model(m_in) - tgt).pow(2).sum(1).mean()).backward()
            for a, p in zip(by_hand, dni.model.parameters()):
                torch.testing.assert_close(a, p.grad, rtol=1e-12, atol=1e-12)
        state = s_end.detach()
    # the instruments rebuild the same inputs from the whole episode
    states = [e[:, :core.state_size] for e in ends]
    for a, b in zip(dni.m_inputs(states, ep.x, 2), ends):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
