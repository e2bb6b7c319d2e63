"""Penn Treebank characters: counts, vocabulary, BPC bookkeeping, and clear data errors."""

from __future__ import annotations

import math
import shutil

import pytest
import torch
from torch import nn

from sgrnn.errors import UserError
from sgrnn.model import LSTMCore
from sgrnn.tasks.ptb import FILES, PTBStream, bpc, eval_columns, load_ptb

from sgrnn.config import make_config


def test_symbol_counts_and_vocabulary(ptb_dir):
    data, vocab = load_ptb(ptb_dir)
    assert {s: d.numel() for s, d in data.items()} == {"train": 5_017_482, "valid": 393_042, "test": 442_423}
    assert len(vocab) == 50 and "\n" in vocab and "_" in vocab and " " not in vocab


def test_uniform_predictor_scores_log2_of_the_vocabulary(ptb_dir):
    data, vocab = load_ptb(ptb_dir)
    core = LSTMCore(8, len(vocab), hidden_size=8, vocab_size=len(vocab)).double()
    nn.init.zeros_(core.readout.weight)
    nn.init.zeros_(core.readout.bias)  # logits all 0: a uniform distribution over 50 symbols
    got = bpc(core, data["valid"], batch=512, context=vocab.index("\n"), device="cpu")
    assert got == pytest.approx(math.log2(50), abs=1e-6)


def test_every_symbol_is_scored_once_after_its_predecessor():
    data = torch.arange(1, 1001)
    x, y = eval_columns(data, batch=7, context=0)
    assert x.shape == y.shape and x.shape[1] == 7
    scored = y.t().flatten()
    assert torch.equal(scored[scored != -100], data)  # each symbol once, in order
    prev = x.t().flatten()[scored != -100]
    assert prev[0] == 0 and torch.equal(prev[1:], data[:-1])


def test_training_stream_targets_are_the_next_symbols(ptb_dir):
    cfg = make_config("task=ptb", f"task.data_dir={ptb_dir}", "task.batch_size=4")
    stream = PTBStream(cfg.task, 5, torch.device("cpu"))
    a, b = stream.next_segment(), stream.next_segment()
    assert a.first and not b.first and not a.last and not b.last  # a stream: no episode ends
    assert torch.equal(a.y[:-1], a.x[1:]) and torch.equal(a.y[-1], b.x[0])
    col = stream.train[:, 1]
    assert torch.equal(a.x[:, 1], col[:5])


def test_missing_data_says_where_and_how(tmp_path):
    with pytest.raises(UserError) as e:
        load_ptb(tmp_path / "nowhere")
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and "sgrnn fetch-ptb" in msg and "simple-examples.tgz" in msg
    assert "\n" not in msg


def test_corrupt_file_fails_its_checksum(ptb_dir, tmp_path):
    for name in FILES.values():
        shutil.copy(ptb_dir / name, tmp_path / name)
    path = tmp_path / FILES["valid"]
    raw = bytearray(path.read_bytes())
    raw[0] = ord("x")
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="SHA-256"):
        load_ptb(tmp_path)


def test_held_out_draws_that_cannot_fit_fail_before_any_work(ptb_dir):
    from sgrnn.tasks import make_task

    gen = torch.Generator().manual_seed(0)
    ok = make_config("task=ptb", f"task.data_dir={ptb_dir}", "task.val_symbols=100000", "diag.ceiling_batch=2048")
    stream = make_task(ok, 8, torch.device("cpu"), gen)  # the whole validation text holds 2048 x 65
    x, y, _ = stream.heldout(2048, 64, gen)
    assert x.shape == y.shape == (64, 2048) and torch.equal(x[1:], y[:-1])
    bad = make_config("task=ptb", f"task.data_dir={ptb_dir}", "diag.ceiling_batch=8000")
    with pytest.raises(UserError, match=r"diag.ceiling_batch=8000 columns of diag.length=64 steps do not fit") as e:
        make_task(bad, 8, torch.device("cpu"), gen)
    assert "\n" not in str(e.value) and "at most 5,955 columns" in str(e.value)
