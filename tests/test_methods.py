"""The methods added with the sgrnn.sg package: lambda-weighted targets, the placebo, and the
parameter-space instruments, in float64 against quantities computed another way."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from sgrnn.config import check, make_config
from sgrnn.errors import UserError
from sgrnn.model import LSTMCore
from sgrnn.sg import Context, make_method, sg_quality
from sgrnn.sg.placebo import derangement
from sgrnn.sg.quality import future_gradients, mean_alignment, param_alignment
from sgrnn.train import setup, update
from test_sg_maths import STATE_ONLY, oracle_future_gradients, setup as episode

SMALL = ["model.hidden_size=12", "task.batch_size=8", "task.start_N=4", "train.log_every=5", "device=cpu", "T=3"]


def method(core, **kw):
    cfg = make_config("sg=on", "sg.target=bootstrap", *STATE_ONLY).sg
    for k, v in kw.items():
        cfg[k] = v
    m = make_method(cfg, Context(core.state_size, core.state_size, torch.device("cpu"), core, None))
    m.model.double()
    return m


def run_targets(m, task, ep, core, segments):
    """Run one episode through predict / backward and the target strategy, no update in between:
    {index of the boundary state: its target}."""
    m.target.loss = task.loss
    state, out = core.zero_state(ep.x.shape[1], "cpu").double(), {}
    starts = []
    for k, seg in enumerate(segments):
        s0 = m.start(state, first=k == 0)
        logits, s_end = core(ep.x[seg], s0)
        b = m.predict(s0, s_end, last=k == len(segments) - 1, seg=SimpleNamespace(x=ep.x[seg], y=ep.y[seg], mask=ep.mask[seg]))
        core.zero_grad()
        m.backward(task.loss(logits, ep.y[seg], ep.mask[seg]), b)
        starts.append(s0.detach())
        for s, target, _ in m.target.targets(b):
            out[next(i for i, st in enumerate(starts) if torch.equal(st, s))] = target
        state = s_end.detach()
    return out


def random_M(m, seed=1):
    torch.manual_seed(seed)
    nn.init.normal_(m.model.net[-1].weight, std=0.3)
    nn.init.normal_(m.model.net[-1].bias, std=0.3)


@pytest.mark.parametrize("K", [2, 3])
def test_lambda_zero_is_the_bootstrapped_target(K):
    task, ep, core, segments = episode(T=3, N=5)  # 4 segments: boundaries at states 1, 2, 3
    boot = method(core, scale=0.5)
    lam = method(core, scale=0.5, target="lambda", lambda_=0.0, window=K)
    random_M(boot)
    lam.model.load_state_dict(boot.model.state_dict())
    a, b = run_targets(boot, task, ep, core, segments), run_targets(lam, task, ep, core, segments)
    assert sorted(a) == sorted(b) == [1, 2, 3]
    for i in a:
        torch.testing.assert_close(a[i], b[i], rtol=1e-10, atol=1e-12)
    assert all(a[i].abs().max() > 0 for i in a)


def test_lambda_one_over_the_whole_episode_is_the_exact_future_gradient():
    task, ep, core, segments = episode(T=3, N=5)
    m = method(core, scale=1.0, target="lambda", lambda_=1.0, window=len(segments))
    random_M(m)  # M's predictions must not matter
    got = run_targets(m, task, ep, core, segments)
    _, futures = oracle_future_gradients(core, task, ep, segments)
    for i, exact in enumerate(futures, start=1):
        torch.testing.assert_close(got[i], exact, rtol=1e-9, atol=1e-11)
    # ... while the bootstrapped target, with this M, is not exact.
    boot = method(core, scale=1.0)
    boot.model.load_state_dict(m.model.state_dict())
    assert (run_targets(boot, task, ep, core, segments)[1] - futures[0]).abs().max() > 1e-3


def test_intermediate_lambda_is_the_mixture_by_hand():
    """lambda = 0.4, window 2, gamma = scale = 0.5, on a 2-layer LSTM: every target written out."""
    lam, gamma = 0.4, 0.5
    task, ep, core, segments = episode(T=3, N=5, layers=2)
    m = method(core, scale=gamma, target="lambda", lambda_=lam, window=2)
    random_M(m)
    got = run_targets(m, task, ep, core, segments)
    B = ep.x.shape[1]
    # The states along the episode, and the segment maps by hand.
    states = [core.zero_state(B, "cpu").double()]
    for seg in segments:
        states.append(core(ep.x[seg], states[-1])[1].detach())
    with torch.no_grad():
        g = {j: m.model(states[j]) for j in range(1, len(segments))}  # g_hat at the end of segment j

    def a(j, v):  # B * d/ds_(j-1) [loss of segment j + <v, s_j> / B]
        s = states[j - 1].clone().requires_grad_()
        logits, end = core(ep.x[segments[j - 1]], s)
        total = task.loss(logits, ep.y[segments[j - 1]], ep.mask[segments[j - 1]])
        if v is not None:
            total = total + (v * end).sum() / B
        return B * torch.autograd.grad(total, s)[0]

    # Boundary state 1 (start of segment 2): window = segments 2, 3; bootstraps from g_hat at 3's end.
    t1 = a(2, gamma * ((1 - lam) * g[2] + lam * a(3, gamma * g[3])))
    # Boundary state 2: window = segments 3, 4, and 4 ends the episode (nothing beyond it).
    t2 = a(3, gamma * ((1 - lam) * g[3] + lam * a(4, None)))
    t3 = a(4, None)  # boundary state 3: its segment is the last
    for i, expected in ((1, t1), (2, t2), (3, t3)):
        torch.testing.assert_close(got[i], expected, rtol=1e-10, atol=1e-12)
    assert (t1 - a(2, gamma * g[2])).abs().max() > 1e-4  # differs from the bootstrapped target


def test_lambda_target_trains_in_the_real_trainer(tmp_path):
    run = setup(make_config("sg=on", "sg.target=lambda", "sg.window=2", *SMALL), tmp_path)
    m0 = [p.detach().clone() for p in run.sg.parameters()]
    for _ in range(6):  # two episodes of 9 steps: a delayed target, then the flush at the end
        update(run)
    assert all(not torch.equal(a, b) for a, b in zip(m0, run.sg.parameters()))
    assert run.sg.target.pending == [] and run.log.sums["sg/target_norm"] > 0


def test_derangement_has_no_fixed_point():
    torch.manual_seed(0)
    for n in range(2, 40):
        p = derangement(n)
        assert sorted(p.tolist()) == list(range(n)) and not (p == torch.arange(n)).any()


def permuted(g_hat, m_in, control):
    torch.manual_seed(5)
    return g_hat[derangement(g_hat.shape[0])]


def batch_mean(g_hat, m_in, control):
    return g_hat.mean(dim=0, keepdim=True).expand_as(g_hat)


def centred(g_hat, m_in, control):
    """Computed another way: DNI's prediction less what batch-mean gives, so the two add up to on."""
    return g_hat - batch_mean(g_hat, m_in, control)


def frozen_map(g_hat, m_in, control):
    """Computed another way: row by row, R's map rescaled to g_hat's norm."""
    rows = [control.R.double().T @ m for m in m_in]
    return torch.stack([r / r.norm() * g.norm() for r, g in zip(rows, g_hat)])


def one_boundary(m, core, task, ep, seg, s_start):
    """One segment from ``s_start`` through method ``m``'s boundary and backward pass: M's target
    there, the core's gradient, the boundary and its end state (a fixed seed before ``predict``)."""
    leaf = m.start(s_start, first=False)
    logits, s_end = core(ep.x[seg], leaf)
    torch.manual_seed(5)
    b = m.predict(leaf, s_end)
    core.zero_grad()
    m.backward(task.loss(logits, ep.y[seg], ep.mask[seg]), b)
    return m.target.targets(b)[0][1], [p.grad.clone() for p in core.parameters()], b, s_end.detach()


@pytest.mark.parametrize("name, expected", [("placebo", permuted), ("batch-mean", batch_mean), ("centred", centred),
                                            ("frozen", frozen_map)])
def test_each_control_trains_M_as_on_and_gives_the_core_what_it_names(name, expected):
    """placebo: another sequence's prediction; batch-mean: the batch's mean prediction; centred:
    the prediction minus that mean; frozen: a fixed random map of M's input at the prediction's
    norm. M's target is sg=on's in each."""
    task, ep, core, segments = episode(T=3, N=5)
    on = method(core, scale=0.3)
    cfg = make_config(f"sg={name}", "sg.target=bootstrap", *STATE_ONLY).sg
    cfg.scale = 0.3
    control = make_method(cfg, Context(core.state_size, core.state_size, torch.device("cpu"), core, task.loss))
    control.model.double()
    random_M(on)
    control.model.load_state_dict(on.model.state_dict())
    B, seg = ep.x.shape[1], segments[1]
    s_start = torch.randn(B, core.state_size, dtype=torch.float64)
    results = {label: one_boundary(m, core, task, ep, seg, s_start) for label, m in (("on", on), (name, control))}
    torch.testing.assert_close(results["on"][0], results[name][0], rtol=1e-10, atol=1e-12)  # same target
    b, s_end = results[name][2], results[name][3]
    given = expected(b.g_hat, s_end, control)
    torch.testing.assert_close(b.given, given, rtol=1e-10, atol=1e-12)
    core.zero_grad()  # the core's gradient: its loss plus scale * <what it is given, s_end>
    logits, s_end = core(ep.x[seg], s_start)
    (task.loss(logits, ep.y[seg], ep.mask[seg]) + 0.3 * (given * s_end).sum() / B).backward()
    for x, y in zip(results[name][1], [p.grad for p in core.parameters()]):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)
    assert not all(torch.allclose(x, y) for x, y in zip(results[name][1], results["on"][1]))


def test_centred_with_a_share_of_the_common_part_lies_on_the_line_from_centred_to_on():
    """sg.common=c gives g_hat - (1 - c) * mean: the core's gradient is linear in what it is given,
    so c=1 is on's gradient and c=0.5 the mean of on's and centred's, computed separately."""
    task, ep, core, segments = episode(T=3, N=5)
    B, seg = ep.x.shape[1], segments[1]
    s_start = torch.randn(B, core.state_size, dtype=torch.float64)
    on = method(core, scale=0.3)
    random_M(on)
    grads, targets = {}, {}
    for label, name, common in (("on", "on", 0.0), ("c0", "centred", 0.0), ("c.5", "centred", 0.5), ("c1", "centred", 1.0)):
        cfg = make_config(f"sg={name}", "sg.target=bootstrap", *STATE_ONLY, f"sg.common={common}").sg
        cfg.scale = 0.3
        m = make_method(cfg, Context(core.state_size, core.state_size, torch.device("cpu"), core, task.loss))
        m.model.double()
        m.model.load_state_dict(on.model.state_dict())
        targets[label], grads[label], _, _ = one_boundary(m, core, task, ep, seg, s_start)
    for label in ("c0", "c.5", "c1"):  # M's target is on's in each
        torch.testing.assert_close(targets[label], targets["on"], rtol=1e-10, atol=1e-12)
    for x, y, c0, h in zip(grads["c1"], grads["on"], grads["c0"], grads["c.5"]):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(h, (y + c0) / 2, rtol=1e-10, atol=1e-12)
    assert not all(torch.allclose(x, y) for x, y in zip(grads["c0"], grads["on"]))
    with pytest.raises(UserError, match="sg.common=0.5 is the share of M's batch-mean part"):
        check(make_config("sg=on", "sg.common=0.5"))


def test_constant_is_dni_with_a_linear_M_whose_weights_are_zero():
    """sg=constant gives every sequence b and regresses b onto on's targets: computed another way,
    sg=on with a linear M whose weight matrix is 0 and whose bias is b gives the same core
    gradient, the same target and the same gradient for b (and none for the constant's state
    input: it has no weights)."""
    task, ep, core, segments = episode(T=3, N=5)
    B, seg = ep.x.shape[1], segments[1]
    s_start = torch.randn(B, core.state_size, dtype=torch.float64)
    on = method(core, scale=0.3)
    random_M(on)
    nn.init.zeros_(on.model.net[-1].weight)
    cfg = make_config("sg=constant", "sg.target=bootstrap").sg
    cfg.scale = 0.3
    const = make_method(cfg, Context(core.state_size, core.state_size, torch.device("cpu"), core, task.loss))
    const.model.double()
    with torch.no_grad():
        const.model.bias.copy_(on.model.net[-1].bias)
    assert [p.shape for p in const.parameters()] == [torch.Size([core.state_size])]
    got = {label: one_boundary(m, core, task, ep, seg, s_start) for label, m in (("on", on), ("constant", const))}
    assert torch.equal(got["constant"][2].given, const.model.bias.expand(B, -1))  # b for every sequence
    torch.testing.assert_close(got["constant"][0], got["on"][0], rtol=1e-10, atol=1e-12)  # the same target
    for x, y in zip(got["constant"][1], got["on"][1]):  # the same core gradient
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)
    for label, m in (("on", on), ("constant", const)):  # b's regression: d/db = mean(b - target)
        m.regress([(s_start, got[label][0], None)])
    torch.testing.assert_close(const.model.bias.grad, on.model.net[-1].bias.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(const.model.bias.grad, (const.model.bias - got["on"][0]).mean(0).detach(),
                               rtol=1e-10, atol=1e-12)


def test_constant_takes_no_input_options():
    for option in ("sg.history=16", "sg.hidden_size=8", "sg.input_norm=rms", "sg.fit=ridge"):
        with pytest.raises(UserError, match="sg=constant's M reads nothing"):
            check(make_config("sg=constant", option))


def test_param_cosine_is_one_for_the_true_gradient_and_the_placebo_has_no_sequence_specific_part():
    task, ep, core, segments = episode(T=3, N=6, B=64, layers=1)
    states, grads = future_gradients(core, task.loss, ep.x, ep.y, ep.mask, core.zero_state(64, "cpu").double(), 3)
    true = grads[1:]

    def align(given, scale=1.0):
        return param_alignment(core, ep.x, states, given, true, slice(None), 3, scale)

    q = align(true)  # the oracle
    assert q["diag/sg_param_cos"] == pytest.approx(1.0, abs=1e-12) and q["diag/sg_param_norm_ratio"] == pytest.approx(1.0)
    assert q["diag/sg_param_cos_seq"] == pytest.approx(1.0, abs=1e-12)
    q = align(true, scale=0.1)
    assert q["diag/sg_param_cos"] == pytest.approx(1.0, abs=1e-12) and q["diag/sg_param_norm_ratio"] == pytest.approx(0.1)
    assert align([-g for g in true])["diag/sg_param_cos"] == pytest.approx(-1.0, abs=1e-12)
    torch.manual_seed(0)
    q = align([g[derangement(64)] for g in true])  # the placebo given the true gradients
    # At initialisation the batch's common gradient dominates the weight update: the placebo
    # matches it; its sequence-specific part does not.
    assert q["diag/sg_param_cos"] > 0.9 and abs(q["diag/sg_param_cos_seq"]) < 0.3
    # The centred SG's figures, computed another way: the whole-update figures of the centred prediction
    noisy = [g + torch.randn_like(g) for g in true]
    q, c = align(noisy, scale=0.3), align([g - g.mean(0, keepdim=True) for g in noisy], scale=0.3)
    assert q["diag/sg_param_cos_centred"] == pytest.approx(c["diag/sg_param_cos"], abs=1e-12)
    assert q["diag/sg_param_norm_ratio_centred"] == pytest.approx(c["diag/sg_param_norm_ratio"], rel=1e-10)


def test_the_common_part_s_cosine_and_norm_ratio():
    torch.manual_seed(0)
    true = [torch.randn(64, 10, dtype=torch.float64) + 3 * torch.randn(1, 10, dtype=torch.float64) for _ in range(3)]
    spread = [torch.randn(64, 10, dtype=torch.float64) for _ in true]
    same_mean = [t + s - s.mean(0) for t, s in zip(true, spread)]  # other sequences' parts, the same batch mean
    q = mean_alignment(same_mean, true)
    assert q == {"diag/sg_mean_cos": pytest.approx(1.0), "diag/sg_mean_norm_ratio": pytest.approx(1.0)}
    q = mean_alignment([-2 * t for t in true], true)
    assert q == {"diag/sg_mean_cos": pytest.approx(-1.0), "diag/sg_mean_norm_ratio": pytest.approx(2.0)}


def test_sg_quality_target_cos_is_one_for_an_exact_target_and_the_ceiling_is_measured(tmp_path):
    T = 3
    run = setup(make_config("sg=on", "sg.target=lambda", "sg.lambda_=1.0", "sg.window=10", "sg.scale=1.0", *SMALL),
                tmp_path)
    torch.manual_seed(0)
    nn.init.normal_(run.sg.model.net[-1].weight, std=0.1)
    g = torch.Generator().manual_seed(3)
    x, y, mask = run.task.heldout(16, 0, g)
    fit = run.task.heldout(256, 0, g)
    q = sg_quality(run.sg, run.core, run.task.loss, x, y, mask, T, fit)
    assert q["diag/sg_target_cos"] == pytest.approx(1.0, abs=1e-5)  # lambda = 1 to the episode's end: exact
    assert -1 <= q["diag/sg_param_cos"] <= 1 and q["diag/sg_param_norm_ratio"] > 0
    assert 0 < q["diag/sg_ceiling_cos"] <= 1
    # sg=on gives M's prediction, so what the core is given has M's common part
    assert (q["diag/sg_given_mean_cos"], q["diag/sg_given_mean_norm_ratio"]) == (q["diag/sg_mean_cos"], q["diag/sg_mean_norm_ratio"])
    boot = setup(make_config("sg=on", "sg.target=bootstrap", "sg.scale=1.0", *SMALL), tmp_path / "boot")
    boot.core.load_state_dict(run.core.state_dict())
    boot.sg.model.load_state_dict(run.sg.model.state_dict())
    qb = sg_quality(boot.sg, boot.core, boot.task.loss, x, y, mask, T, None)
    assert qb["diag/sg_target_cos"] < 0.99 and "diag/sg_ceiling_cos" not in qb
    assert qb["diag/sg_state_cos"] == pytest.approx(q["diag/sg_state_cos"])  # same M, same states


def test_a_run_from_before_the_new_options_resumes_and_a_changed_one_is_refused():
    from omegaconf import OmegaConf

    from sgrnn.checkpoint import config_changes

    new = OmegaConf.to_container(make_config("sg=on", "sg.target=bootstrap"), resolve=True)  # the old default
    old = {**new, "sg": {k: v for k, v in new["sg"].items() if k not in ("target", "lambda_", "window")},
           "diag": {k: v for k, v in new["diag"].items() if k != "ceiling_batch"}}
    assert config_changes(old, new) == []
    lam = OmegaConf.to_container(make_config("sg=on", "sg.target=lambda"), resolve=True)
    assert config_changes(old, lam) == ["sg.target: <absent> -> lambda"]


def test_on_the_continuous_stream_the_lambda_target_is_the_exact_gradient_of_its_window():
    """task.protocol=continuous (no reset, no episode end, boundaries anywhere, refills): with
    lambda 1 over K segments and M at zero, the target of each boundary is the exact gradient of
    the next K segments' losses, by BPTT over the stream the trainer is served, across refills
    and episode ends. (The question: DNI solved nothing there where BPTT solved 4.)"""
    from sgrnn.tasks import make_task

    K, T = 2, 3
    cfg = make_config("task.protocol=continuous", "task.batch_size=4", "task.start_N=2", "sg=on", "sg.history=0",
                      "sg.target=lambda", f"sg.window={K}", "model.hidden_size=6")
    stream = make_task(cfg, T, torch.device("cpu"), torch.Generator().manual_seed(0))
    segs = [stream.next_segment() for _ in range(16)]  # 48 steps: episodes of 5, refills of 4 episodes
    xs, ys, ms = ([getattr(s, k).double() for s in segs] for k in ("x", "y", "mask"))
    core = LSTMCore(xs[0].shape[2], ys[0].shape[2], hidden_size=6, num_layers=1).double()
    m = make_method(cfg.sg, Context(core.state_size, core.state_size, torch.device("cpu"), core, None))
    m.model.double()  # M starts at zero: g_hat = 0, so the bootstrap at the window's end adds nothing
    m.target.loss = stream.loss
    state, starts, got = core.zero_state(4, "cpu").double(), [], {}
    for k, (x, y, mask) in enumerate(zip(xs, ys, ms)):
        s0 = m.start(state, first=k == 0)
        logits, s_end = core(x, s0)
        b = m.predict(s0, s_end, last=False, seg=SimpleNamespace(x=x, y=y, mask=mask, first=k == 0))
        core.zero_grad()
        m.backward(stream.loss(logits, y, mask), b)
        starts.append(s0.detach())
        for s, target, _ in m.target.targets(b):
            got[next(i for i, st in enumerate(starts) if torch.equal(st, s))] = target
        state = s_end.detach()
    assert sorted(got) == list(range(1, len(segs) - K + 1))  # every boundary whose window has run
    assert sum(bool(t.abs().max() > 0) for t in got.values()) > len(got) // 2
    for i, target in got.items():
        window = slice(i, i + K)
        x, y, mask = (torch.cat(t[window]) for t in (xs, ys, ms))
        _, grads = future_gradients(core, stream.loss, x, y, mask, starts[i], T)
        torch.testing.assert_close(target, grads[0], rtol=1e-9, atol=1e-11)
    assert sum(bool(ms[i].any()) for i in range(len(segs))) > len(segs) // 2  # scored outputs in most windows


@pytest.mark.parametrize("target", ["lambda", "bootstrap"])
def test_tracked_gives_the_centred_prediction_plus_the_running_mean_of_the_targets_at_that_boundary(target):
    """sg=tracked, computed another way: the targets of each boundary (sg=on's, run_targets), their
    batch means folded once an episode with weight mean_decay on the past; the core is given
    g_hat minus its batch mean plus that mean (sg=on's prediction where no mean exists yet); the
    first episode of another length is given the old length's means, and starts the means again."""
    cfg = make_config("sg=tracked", f"sg.target={target}", "sg.window=2", "sg.mean_decay=0.75", *STATE_ONLY).sg
    cfg.scale = 0.3
    episodes = [episode(T=3, N=5, seed=s) for s in (0, 1, 2)] + [episode(T=3, N=7, seed=3)]
    core = episodes[0][2]
    tracked = make_method(cfg, Context(core.state_size, core.state_size, torch.device("cpu"), core, episodes[0][0].loss))
    tracked.model.double()
    random_M(tracked)
    on = method(core, scale=0.3, target=target, window=2)
    on.model.load_state_dict(tracked.model.state_dict())
    expected = {}
    for n, (task, ep, _, segments) in enumerate(episodes):
        means = {p: t.mean(0, keepdim=True) for p, t in run_targets(on, task, ep, core, segments).items()}
        state = core.zero_state(ep.x.shape[1], "cpu").double()
        for k, seg in enumerate(segments):
            s0 = tracked.start(state, first=k == 0)
            logits, s_end = core(ep.x[seg], s0)
            last = k == len(segments) - 1
            b = tracked.predict(s0, s_end, last=last,
                                seg=SimpleNamespace(x=ep.x[seg], y=ep.y[seg], mask=ep.mask[seg], first=k == 0))
            if not last:  # the prediction at boundary k + 1
                g = b.g_hat
                common = expected.get(k + 1, g.mean(0, keepdim=True))
                torch.testing.assert_close(b.given, g - g.mean(0, keepdim=True) + common, rtol=1e-10, atol=1e-12)
                assert (k + 1 in expected) == (n > 0 and k + 1 <= 3)  # none in the first episode; N=5's 3 in N=7's first
            core.zero_grad()
            tracked.backward(task.loss(logits, ep.y[seg], ep.mask[seg]), b)
            tracked.learn(b)
            state = s_end.detach()
        if n == 3:  # another length: this episode's means alone
            expected = means
        else:
            expected = {p: m if p not in expected else 0.75 * expected[p] + 0.25 * m for p, m in means.items()}
        assert sorted(tracked.means) == sorted(expected)
        for p in expected:
            torch.testing.assert_close(tracked.means[p], expected[p], rtol=1e-10, atol=1e-12)
    # Resumed from its state, it gives what it would have given.
    again = make_method(cfg, Context(core.state_size, core.state_size, torch.device("cpu"), core, episodes[0][0].loss))
    again.model.double()
    again.load_state_dict(tracked.state_dict())
    g = torch.randn(4, core.state_size, dtype=torch.float64)
    for p in (1, 2, 3):
        torch.testing.assert_close(again.give(g, g, p), tracked.give(g, g, p), rtol=0, atol=0)


def test_tracked_s_given_common_part_is_its_running_mean_in_the_instruments(tmp_path):
    run = setup(make_config("sg=tracked", *SMALL), tmp_path)
    torch.manual_seed(0)
    nn.init.normal_(run.sg.model.net[-1].weight, std=0.1)
    x, y, mask = run.task.heldout(16, 0, torch.Generator().manual_seed(3))
    states, grads = future_gradients(run.core, run.task.loss, x, y, mask, run.core.zero_state(16, "cpu"), 3)
    run.sg.means = {p: g.mean(0, keepdim=True) for p, g in enumerate(grads) if p}  # the true common part
    q = sg_quality(run.sg, run.core, run.task.loss, x, y, mask, 3)
    assert q["diag/sg_given_mean_cos"] == pytest.approx(1.0) and q["diag/sg_given_mean_norm_ratio"] == pytest.approx(1.0)
    assert q["diag/sg_mean_cos"] < 0.99  # M's own
