"""Instruments (issue 4): DNI + Aux, the oracle, SG quality, the dependency probe, error by
distance and cost accounting. Warm-up and placement are in test_train.py."""

from __future__ import annotations

import torch
from torch import nn

from sgrnn.config import make_config
from sgrnn.diag import dependency_profile
from sgrnn.sg import sg_quality
from sgrnn.train import setup, train, update

SMALL = ["model.hidden_size=12", "task.batch_size=8", "task.start_N=4", "train.log_every=5", "device=cpu", "T=3"]


def test_aux_loss_is_nonzero_and_changes_the_core(tmp_path):
    runs = {}
    for w in (1.0, 0.0):
        run = setup(make_config("sg=aux", f"sg.aux_weight={w}", *SMALL), tmp_path / str(w))
        torch.manual_seed(0)
        nn.init.normal_(run.sg.model.net[-1].weight, std=0.1)  # M != 0, so there is a target to predict
        runs[w] = run
    seen = []
    for _ in range(3):  # one episode of 9 steps: boundaries after steps 3 and 6
        for w, run in runs.items():
            update(run)
        seen.append(float(runs[1.0].log.sums.get("sg/aux_loss", torch.tensor(0.0))))
    assert max(seen) > 0
    lstm_w1 = runs[1.0].core.layers[0].weight_hh_l0
    lstm_w0 = runs[0.0].core.layers[0].weight_hh_l0
    assert not torch.equal(lstm_w1, lstm_w0)  # the auxiliary loss reached the LSTM's own weights
    assert runs[1.0].core.aux.in_features == 12 and runs[1.0].core.aux.out_features == 24


def test_oracle_injection_over_an_episode_equals_full_bptt(tmp_path):
    run = setup(make_config("sg=oracle", *SMALL), tmp_path)  # N=4: 9 steps, segments 3, 3, 3
    core, task, sg = run.core, run.task, run.sg
    core.zero_grad()
    state, xs, ys, ms = None, [], [], []
    while True:
        seg = task.next_segment()
        state = core.zero_state(8, "cpu") if seg.first else state
        s0 = sg.start(state, seg.first)
        logits, s_end = core(seg.x, s0)
        sg.backward(task.loss(logits, seg.y, seg.mask), sg.predict(s0, s_end, last=seg.last))
        state = s_end.detach()
        xs, ys, ms = xs + [seg.x], ys + [seg.y], ms + [seg.mask]
        if seg.last:
            break
    oracle = [p.grad.clone() for p in core.parameters()]
    core.zero_grad()
    logits, _ = core(torch.cat(xs), core.zero_state(8, "cpu"))
    task.loss(logits, torch.cat(ys), torch.cat(ms)).backward()
    for a, b in zip(oracle, [p.grad for p in core.parameters()]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_the_oracle_stepping_once_an_episode_makes_exactly_full_bptts_update(tmp_path):
    """optim.step_every=episode: the core's gradients summed over an episode's segments, each given
    the exact future gradient, are full BPTT's gradient (float64); the core does not move before the
    episode's end, and its one Adam step is full BPTT's."""
    torch.set_default_dtype(torch.float64)
    try:
        small = [o for o in SMALL if o != "T=3"] + ["optim.clip=0"]
        runs = {"oracle": setup(make_config("sg=oracle", "optim.step_every=episode", "T=3", *small), tmp_path / "o"),
                "full": setup(make_config("sg=off", "T=64", *small), tmp_path / "f")}  # N=4: 9 steps, one segment
        seen = {}
        for name, run in runs.items():
            real = run.opt.step

            def recorded(name=name, run=run, real=real):
                if run.core.layers[0].weight_hh_l0.grad is not None:
                    seen[name] = [p.grad.clone() for p in run.core.parameters()]
                return real()

            run.opt.step = recorded
        start = [p.detach().clone() for p in runs["oracle"].core.parameters()]
        assert start[0].dtype == torch.float64
        for _ in range(2):  # the episode's segments 1 and 2 of 3
            update(runs["oracle"])
            assert "oracle" not in seen
            assert all(torch.equal(a, p) for a, p in zip(start, runs["oracle"].core.parameters()))
        update(runs["oracle"])
        update(runs["full"])
        assert runs["oracle"].step == 3 and runs["full"].step == 1
        for a, b in zip(seen["oracle"], seen["full"]):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
        for a, b in zip(runs["oracle"].core.parameters(), runs["full"].core.parameters()):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    finally:
        torch.set_default_dtype(torch.float32)


class Shift(nn.Module):
    """A 'core' whose output at t depends only on the input at t - lag."""

    embed = None

    def __init__(self, lag: int):
        super().__init__()
        self.lag, self.readout = lag, nn.Linear(3, 2)

    def zero_state(self, batch, device):
        return torch.zeros(batch, 1, device=device)

    def forward(self, x, state):
        shifted = torch.cat([torch.zeros_like(x[: self.lag]), x[: -self.lag]])
        return self.readout(shifted), state


def test_dependency_probe_peaks_at_the_lag_a_model_depends_on():
    torch.manual_seed(0)
    x, y = torch.randn(20, 4, 3), torch.rand(20, 4, 2)
    for lag in (1, 3):
        model = Shift(lag)
        step = lambda logits: nn.functional.mse_loss(logits, y, reduction="none").sum(dim=(1, 2))  # noqa: E731
        profile = dependency_profile(model, x, step, K=6)
        assert len(profile) == 6 and max(range(6), key=profile.__getitem__) == lag - 1
        assert profile[lag - 1] > 0 and all(p == 0 for k, p in enumerate(profile) if k != lag - 1)


def test_sg_quality_against_the_true_future_gradient(tmp_path):
    run = setup(make_config("sg=on", *SMALL), tmp_path)
    x, y, mask = run.task.heldout(8, 0, torch.Generator().manual_seed(1))
    zero = sg_quality(run.sg, run.core, run.task.loss, x, y, mask, 3)  # M starts at 0
    assert zero["diag/sg_norm_ratio"] == 0 and zero["diag/sg_state_cos"] == 0 and zero["diag/true_grad_norm"] > 0
    nn.init.normal_(run.sg.model.net[-1].weight)
    some = sg_quality(run.sg, run.core, run.task.loss, x, y, mask, 3)
    assert some["diag/sg_norm_ratio"] > 0 and -1 <= some["diag/sg_state_cos"] <= 1
    assert some["diag/true_grad_norm"] == zero["diag/true_grad_norm"]


def test_error_by_distance_repeat_copy(tmp_path):
    run = setup(make_config("task=repeat-copy", "task.start_R=2", *SMALL), tmp_path)  # N=4, R=2
    x, y, mask = run.task.heldout(8, 0, torch.Generator().manual_seed(1))
    perfect = run.task.error_by_distance(torch.where(y > 0, 5.0, -5.0), y, mask)
    assert perfect == {5: 0.0, 9: 0.0}  # copies 5 and 9 steps back; the end marker 4*2+1 = 9 back
    wrong = run.task.error_by_distance(torch.where(y > 0, -5.0, 5.0), y, mask)
    assert wrong == {5: 1.0, 9: 1.0}


def test_summary_has_cost_accounting_and_the_instruments(tmp_path):
    out = {}
    for sg in ("off", "on"):
        out[sg] = train(make_config(f"sg={sg}", *SMALL, "train.max_steps=60", "diag.every=20"), tmp_path / sg)
    for sg, s in out.items():
        cost = s["cost"]
        assert {"data_ms", "forward_ms", "sg_ms", "backward_ms", "other_ms", "update_ms", "samples_per_s"} <= cost.keys()
        assert abs(sum(v for k, v in cost.items() if k.endswith("_ms") and k != "update_ms") - cost["update_ms"]) < 1e-2
        assert len(s["dependency_profile"]["grad"]) == 24 and len(s["dependency_profiles"]) == 3
        assert s["error_by_distance"]["step"] == 60
    assert out["on"]["cost"]["sg_ms"] > out["off"]["cost"]["sg_ms"]
    assert [q["step"] for q in out["on"]["sg_quality"]] == [20, 40, 60] and out["off"]["sg_quality"] == []


def test_oracle_and_between_layers_runs_checkpoint_and_resume(tmp_path):
    for name, opts in {"oracle": ["sg=oracle"],
                       "depth": ["sg=on", "sg.placement=between-layers", "sg.history=0", "model.num_layers=2"]}.items():
        cfg = [*opts, *SMALL, "train.checkpoint_every=10", "diag.every=0"]
        first = train(make_config(*cfg, "train.max_steps=20"), tmp_path / name)
        (tmp_path / name / "summary.json").unlink()  # as if it had been killed after its last checkpoint
        again = train(make_config(*cfg, "train.max_steps=30"), tmp_path / name)  # resumes at 20
        assert (first["steps"], again["steps"]) == (20, 30) and again["status"] == "complete"
    run = setup(make_config(*cfg), tmp_path / "depth")
    assert run.step == 30 and len(run.sg.models) == 1  # M_1 came back from the checkpoint


def test_bfloat16_M_predicts_as_float32_M_does_to_bfloat16_precision_and_trains(tmp_path):
    full = setup(make_config("sg=on", "sg.history=0", *SMALL), tmp_path / "f32")
    low = setup(make_config("sg=on", "sg.history=0", "sg.dtype=bfloat16", *SMALL), tmp_path / "bf16")
    torch.manual_seed(0)
    nn.init.normal_(low.sg.model.net[-1].weight, std=0.3)
    full.sg.model.load_state_dict(low.sg.model.state_dict())
    s = torch.randn(8, full.core.state_size)
    a, b = full.sg.predict(s, s).g_hat, low.sg.predict(s, s).g_hat
    assert b.dtype == torch.float32 and not torch.equal(a, b)  # really computed in bfloat16
    assert (a - b).abs().max() < 0.02 * a.abs().max()  # bfloat16 has 8 bits of mantissa
    for _ in range(6):
        update(low)
    assert all(p.dtype == torch.float32 for p in low.sg.parameters()) and low.log.sums["sg/loss"] > 0
