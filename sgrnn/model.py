"""The recurrent core: a stack of fused LSTM layers with a linear readout.

The recurrent state s is handled as ONE flat tensor ``[B, num_layers * 2 * H]`` holding (h, c)
of every layer, because that is what the synthetic-gradient model of DNI (section 3.1) reads
and predicts a gradient for. ``forward`` takes the start state and returns the end state of a
segment, both flat, so a segment's start state can be a leaf whose ``.grad`` is the gradient
flowing back across the truncation boundary.
"""

from __future__ import annotations

import torch
from torch import nn


class LSTMCore(nn.Module):
    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int,
        num_layers: int = 1,
        vocab_size: int = 0,
        aux_size: int = 0,
    ):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        # vocab_size > 0: the input is symbol ids, embedded to input_size (PTB); else real vectors.
        self.embed = nn.Embedding(vocab_size, input_size) if vocab_size else None
        sizes = [input_size] + [hidden_size] * num_layers
        self.layers = nn.ModuleList(nn.LSTM(sizes[i], hidden_size) for i in range(num_layers))
        self.readout = nn.Linear(hidden_size, output_size)
        # DNI + Aux: a head on the top layer that predicts a future synthetic gradient (sgrnn.sg).
        self.aux = nn.Linear(hidden_size, aux_size) if aux_size else None

    @property
    def state_size(self) -> int:
        return self.num_layers * 2 * self.hidden_size

    def zero_state(self, batch: int, device) -> torch.Tensor:
        return torch.zeros(batch, self.state_size, device=device, dtype=self.readout.weight.dtype)

    def forward(self, x: torch.Tensor, state: torch.Tensor, hidden: bool = False, decouple: bool = False):
        """x: [T, B, input] (or [T, B] symbol ids, or already embedded floats); state:
        [B, state_size]. Returns logits [T, B, out] and the end state [B, state_size]; with
        ``hidden`` also the top layer's outputs [T, B, H] and the depth links: with ``decouple``
        each layer above the first reads a detached copy (a leaf) of the output of the layer
        below, and the links are the (output, leaf) pairs, for synthetic gradients in depth."""
        h = self.embed(x) if self.embed is not None and not x.is_floating_point() else x
        hc = state.view(state.shape[0], self.num_layers, 2, self.hidden_size)
        ends, links = [], []
        for i, lstm in enumerate(self.layers):
            if decouple and i > 0:
                below, h = h, h.detach().requires_grad_()
                links.append((below, h))
            h0 = hc[:, i, 0].unsqueeze(0).contiguous()
            c0 = hc[:, i, 1].unsqueeze(0).contiguous()
            h, (hn, cn) = lstm(h, (h0, c0))
            ends += [hn[0], cn[0]]
        end = torch.stack(ends, dim=1).view(state.shape[0], self.state_size)
        return (self.readout(h), end, h, links) if hidden else (self.readout(h), end)
