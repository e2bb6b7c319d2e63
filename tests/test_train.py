"""The real trainer (setup/update), on shrunken configs."""

from __future__ import annotations

import torch

from sgrnn.train import setup, update

from sgrnn.config import make_config

SMALL = ["model.hidden_size=12", "task.batch_size=8", "task.start_N=4", "train.log_every=5", "device=cpu", "T=3"]


def test_forcing_M_to_zero_gives_exactly_the_plain_truncated_bptt_trajectory(tmp_path):
    plain = setup(make_config("sg=off", *SMALL), tmp_path / "off")
    dni = setup(make_config("sg=on", *SMALL), tmp_path / "on")
    dni.sg.predict = lambda s_end, last: None if last else torch.zeros_like(s_end)  # M's output forced to 0
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
