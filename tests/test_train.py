"""The real trainer (setup/update), on shrunken configs."""

from __future__ import annotations

import torch

from sgrnn.train import setup, update

from sgrnn.config import make_config

SMALL = ["model.hidden_size=12", "task.batch_size=8", "task.start_N=4", "train.log_every=5", "device=cpu", "T=3"]


def test_forcing_M_to_zero_gives_exactly_the_plain_truncated_bptt_trajectory(tmp_path):
    plain = setup(make_config("sg=off", *SMALL), tmp_path / "off")
    dni = setup(make_config("sg=on", *SMALL), tmp_path / "on")
    size = dni.core.state_size  # M reads the state and the input window (sg.history); it predicts the state's gradient
    dni.sg.model.predict = lambda s_end, s_start=None: (s_end.new_zeros(s_end.shape[0], size), None)  # forced to 0
    for _ in range(30):  # several episodes of 9 steps: boundaries inside and at episode ends
        update(plain)
        update(dni)
    for a, b in zip(plain.core.parameters(), dni.core.parameters()):
        assert torch.equal(a, b)
    # Without the forcing, the synthetic gradient changes the trajectory.
    free = setup(make_config("sg=on", *SMALL), tmp_path / "free")
    for _ in range(30):
        update(free)
    assert not all(torch.equal(a, b) for a, b in zip(plain.core.parameters(), free.core.parameters()))


def test_updates_change_every_parameter_of_core_and_M(tmp_path):
    run = setup(make_config("sg=on", *SMALL), tmp_path)
    core0 = [p.detach().clone() for p in run.core.parameters()]
    m0 = [p.detach().clone() for p in run.sg.parameters()]
    for _ in range(3):  # 0-2 in, 3-5 delimiter+output, 6-8 output: two boundaries
        update(run)
    assert all(not torch.equal(a, b) for a, b in zip(core0, run.core.parameters()))
    assert all(not torch.equal(a, b) for a, b in zip(m0, run.sg.parameters()))
    assert run.step == 3 and run.log.samples == 9 * 8


def test_warm_up_longer_than_the_run_is_exactly_plain_truncated_bptt_while_M_learns(tmp_path):
    plain = setup(make_config("sg=off", *SMALL), tmp_path / "off")
    warm = setup(make_config("sg=on", "sg.start_step=1000", *SMALL), tmp_path / "warm")
    m0 = [p.detach().clone() for p in warm.sg.parameters()]
    for _ in range(30):
        update(plain)
        update(warm)
    for a, b in zip(plain.core.parameters(), warm.core.parameters()):
        assert torch.equal(a, b)
    assert all(not torch.equal(a, b) for a, b in zip(m0, warm.sg.parameters()))  # M learned meanwhile
    # From start_step on, the synthetic gradient is injected and the trajectories part.
    on = setup(make_config("sg=on", "sg.start_step=10", *SMALL), tmp_path / "on")
    for _ in range(30):
        update(on)
    assert not all(torch.equal(a, b) for a, b in zip(plain.core.parameters(), on.core.parameters()))


def test_placement_top_leaves_the_lower_layers_out_of_M(tmp_path):
    two = [*SMALL, "model.num_layers=2"]
    two = [*two, "sg.history=0"]  # M reads the state alone here
    run_all = setup(make_config("sg=on", *two), tmp_path / "all")
    run_top = setup(make_config("sg=on", "sg.placement=top", *two), tmp_path / "top")
    assert run_all.sg.model.net[0].in_features == 2 * 2 * 12
    assert run_top.sg.model.net[0].in_features == run_top.sg.model.net[0].out_features == 2 * 12
    torch.nn.init.normal_(run_top.sg.model.net[0].weight)
    s = torch.randn(8, run_top.core.state_size)
    lower_changed = s.clone()
    lower_changed[:, : 2 * 12] += 1.0  # layer 0's (h, c)
    assert torch.equal(run_top.sg.predict(s, s).g_hat, run_top.sg.predict(lower_changed, lower_changed).g_hat)
    top_changed = s.clone()
    top_changed[:, 2 * 12 :] += 1.0
    assert not torch.equal(run_top.sg.predict(s, s).g_hat, run_top.sg.predict(top_changed, top_changed).g_hat)
    for _ in range(6):  # and it trains
        update(run_top)
    assert run_top.step == 6


def test_between_layers_warm_up_is_exact_bptt_and_then_the_depth_sg_takes_over(tmp_path):
    two = [*SMALL, "model.num_layers=2"]
    plain = setup(make_config("sg=off", *two), tmp_path / "off")
    warm = setup(make_config("sg=on", "sg.placement=between-layers", "sg.history=0", "sg.start_step=1000", *two), tmp_path / "warm")
    assert warm.sg.model is None and [m.net[0].in_features for m in warm.sg.models] == [12]
    d0 = [p.detach().clone() for p in warm.sg.parameters()]
    for _ in range(12):
        update(plain)
        update(warm)
    # Before start_step the lower layer gets the true gradient from above: plain truncated BPTT.
    for a, b in zip(plain.core.parameters(), warm.core.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7)
    assert all(not torch.equal(a, b) for a, b in zip(d0, warm.sg.parameters()))  # M_1 learned meanwhile
    assert warm.log.sums["sg/target_norm"] > 0
    # From start_step on, layer 0 is updated with M_l's prediction (zero at first): it changes less.
    dec = setup(make_config("sg=on", "sg.placement=between-layers", "sg.history=0", *two), tmp_path / "dec")
    lower0, upper0 = ([p.detach().clone() for p in dec.core.layers[i].parameters()] for i in (0, 1))
    for _ in range(2):  # segment 0-2 is input only (no loss); 3-5 has the first loss
        update(dec)
    # M_l was 0 at both passes: no gradient for layer 0 yet; the top layer learns from the loss.
    assert all(torch.equal(a, b) for a, b in zip(dec.core.layers[0].parameters(), lower0))
    assert not all(torch.equal(a, b) for a, b in zip(dec.core.layers[1].parameters(), upper0))
    update(dec)  # M_l has learned from the true gradient of update 2: now layer 0 moves too
    assert not all(torch.equal(a, b) for a, b in zip(dec.core.layers[0].parameters(), lower0))
