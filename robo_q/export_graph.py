"""The greedy coarse-to-fine policy of a CQN / CQN-AS agent, laid out for batch-1 inference graphs.

``CQNAgent.policy`` is written for training batches: both dueling streams run through batched
``[S, rows, H]`` matmuls, every level recomputes the observation projection, and the greedy
search builds its conditioning with one-hot concatenations. Exported as is, ONNX Runtime runs
the stream-batched matmuls without pre-packed weights (repacking ~3 MB per stream and call at
the paper size) and spends much of the rest in ~360 small nodes. :class:`GreedyC2FGraph`
computes the same function from the same weights, for few rows at a time:

* every matmul with more than one row is a 2-D ``Gemm`` per stream, whose constant weight the
  runtime packs once at load; each stream's layer norm then takes its own gain and bias;
* the observation projection is computed once per call, and the one-hot step and level terms
  of the conditioning are folded into one constant row per (level, step);
* the GRU runs both streams together (a batched matmul of one row per stream per step), with
  the biases that only add folded into its input projection;
* the advantage head is centred over the bins in its weights (``A - mean_bins(A)`` becomes one
  matmul), and Q of a categorical head is ``sum(softmax * support)``;
* the chosen interval centres are looked up (per level, a table of the centre of every path of
  bins, computed by the codec's own zoom) instead of zooming op by op.

At the paper size (hidden 512) the step is then bound by reading the weights: ~28 MB per level
(the GRU's hidden-state weights three times), ~85 MB per call.

Sums are formed in another order than in training (last-ulp differences), so the greedy bins
match the agent's except at argmax near-ties; ``tests/test_export.py`` checks 1000 observations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robo_q.agents.heads import MSEHead


class GreedyC2FGraph(nn.Module):
    """``CQNAgent.policy`` for export: features [N, F] -> (action [N, K, D], Q of its bins [N, K, D])."""

    def __init__(self, agent) -> None:
        super().__init__()
        critic, streams = agent.critic, agent.critic.streams
        self.levels, self.bins, self.seq_len = critic.levels, critic.bins, critic.seq_len
        self.action_dim, self.outputs, self.gru = critic.action_dim, critic.outputs, streams.gru
        self.streams, self.hidden = s, h = streams.w_feat.shape[0], streams.hidden
        d, k = self.action_dim, self.seq_len
        self.scalar_q = isinstance(agent.head, MSEHead)

        def param(x: Tensor) -> nn.Parameter:
            return nn.Parameter(x.detach().clone().contiguous(), requires_grad=False)

        def per_stream(x: Tensor) -> nn.ParameterList:
            return nn.ParameterList([param(t) for t in x.unbind(0)])

        with torch.no_grad():
            # first layer, all streams side by side: features @ w_feat + b_in once per call, then per
            # level the one-hot rows (step k, level l) and prev_centre @ w_cond[:D]
            self.w_feat = param(streams.w_feat.permute(1, 0, 2).reshape(-1, s * h))  # [F, S*H]
            self.b_feat = param(streams.b_in.permute(1, 0, 2).reshape(1, s * h))
            self.w_prev = param(streams.w_cond[:, :d].permute(1, 0, 2).reshape(d, s * h))  # [D, S*H]
            onehot = streams.w_cond[:, d : d + k][:, None] + streams.w_cond[:, d + k :][:, :, None]  # [S, L, K, H]
            self.onehot = nn.ParameterList(param(t) for t in onehot.permute(1, 2, 0, 3).reshape(-1, 1, k, s * h))
            self.ln0_g, self.ln0_b, self.ln1_g, self.ln1_b = (per_stream(p[:, 0]) for p in streams.ln)  # [H] each
            self.w_mid, self.b_mid = per_stream(streams.w_mid), per_stream(streams.b_mid[:, 0])
            if self.gru:
                b_ih = streams.b_ih.clone()  # r and z add b_hh to the input gates; n multiplies it by r
                b_ih[..., : 2 * h] += streams.b_hh[..., : 2 * h]
                self.w_ih, self.b_ih = per_stream(streams.w_ih), per_stream(b_ih[:, 0])
                self.w_hh = param(streams.w_hh[:, None])  # [S, 1, H, 3H]
                self.b_hn = param(streams.b_hh[:, None, :, 2 * h :])  # [S, 1, 1, H]
            self.w_value = param(critic.value_head.weight.T)  # [H, D*O]
            self.b_value = param(critic.value_head.bias)
            b, o = self.bins, self.outputs
            w_adv = critic.advantage_head.weight.T.double().view(h, d, b, o)
            b_adv = critic.advantage_head.bias.double().view(d, b, o)
            self.w_adv = param((w_adv - w_adv.mean(2, keepdim=True)).view(h, -1).float())  # [H, D*B*O], centred
            self.b_adv = param((b_adv - b_adv.mean(1, keepdim=True)).view(-1).float())
            self.support = None if self.scalar_q else param(agent.head.support)
            # the centre reached by each path of bins, level by level, computed by the codec's own zoom
            # (C2FCodec.greedy) for all B**(l+1) paths: the graph looks centres up instead of zooming
            paths = torch.cartesian_prod(*[torch.arange(self.bins)] * self.levels).view(-1, self.levels)
            low, high = torch.full((len(paths),), -1.0), torch.ones(len(paths))
            centres = []
            for level in range(self.levels):
                low, high = agent.codec.zoom(low, high, paths[:, level])
                centres.append((low + high) / 2)
            stride = self.bins ** (self.levels - 1 - torch.arange(self.levels))  # path index -> code at each level
            self.centres = nn.ParameterList(
                [param(c[:: int(stride[level]), None]) for level, c in enumerate(centres)]
            )  # [B**(l+1), 1] per level, row sum_i idx_i * B**(l-i) for the bins idx_0..idx_l

    def layer(self, x: Tensor, weight: Tensor, bias: Tensor, gain: Tensor, shift: Tensor) -> Tensor:
        """x [R, I] @ weight + bias -> layer norm (gain, shift) -> SiLU."""
        return F.silu(F.layer_norm(torch.addmm(bias, x, weight), (self.hidden,), gain, shift))

    def gru_steps(self, x: list[Tensor], n: int) -> Tensor:
        """Per-stream inputs [N*K, H] -> GRU outputs over the K steps [S, N, K, H] (h0 = 0)."""
        s, h, k = self.streams, self.hidden, self.seq_len
        gates = torch.cat([torch.addmm(self.b_ih[i], x[i], self.w_ih[i]) for i in range(s)]).view(s, n, k, 3 * h)
        rz_in, n_in = gates.split([2 * h, h], -1)
        # what the hidden-state product is added to: the input gates for r and z, b_hn for n
        hidden_bias = torch.cat([rz_in, self.b_hn.expand(s, n, k, h)], -1)
        state = torch.zeros(0)
        outputs = []
        for step, (gi_n, bias) in enumerate(zip(n_in.split(1, 2), hidden_bias.split(1, 2), strict=True)):
            if step == 0:  # h = 0: the hidden-state product is its bias
                reset, update, gh_n = bias.split(h, -1)
                candidate = torch.tanh(gi_n + torch.sigmoid(reset) * gh_n)
                state = candidate - torch.sigmoid(update) * candidate
            else:
                reset, update, gh_n = (torch.matmul(state, self.w_hh) + bias).split(h, -1)
                candidate = torch.tanh(gi_n + torch.sigmoid(reset) * gh_n)
                state = candidate + torch.sigmoid(update) * (state - candidate)
            outputs.append(state)  # [S, N, 1, H]
        return torch.cat(outputs, 2)

    def q(self, value_hidden: Tensor, adv_hidden: Tensor, n: int) -> Tensor:
        """Hidden states [N*K, H] of both streams -> Q of every bin [N, K, D, B]."""
        k, d, b, o = self.seq_len, self.action_dim, self.bins, self.outputs
        value = torch.addmm(self.b_value, value_hidden, self.w_value).view(n, k, d, 1, o)
        logits = value + torch.addmm(self.b_adv, adv_hidden, self.w_adv).view(n, k, d, b, o)
        if self.support is None:
            return logits[..., 0]
        return (logits.softmax(-1) * self.support).sum(-1)

    def forward(self, features: Tensor) -> tuple[Tensor, Tensor]:
        n, s, h, k, d = features.shape[0], self.streams, self.hidden, self.seq_len, self.action_dim
        projected = torch.addmm(self.b_feat, features, self.w_feat)[:, None]  # [N, 1, S*H]
        centre = code = q = torch.zeros(0)
        for level in range(self.levels):
            first = (projected + self.onehot[level]).view(n * k, s * h)
            if level:
                first = torch.addmm(first, centre.view(n * k, d), self.w_prev)
            x = [
                F.silu(F.layer_norm(part, (h,), self.ln0_g[i], self.ln0_b[i]))
                for i, part in enumerate(first.split(h, -1))
            ]
            x = [self.layer(x[i], self.w_mid[i], self.b_mid[i], self.ln1_g[i], self.ln1_b[i]) for i in range(s)]
            if self.gru:
                hidden = self.gru_steps(x, n)
                x = [t.reshape(n * k, h) for t in hidden.split(1)]
            q = self.q(x[0], x[1], n)
            idx = q.argmax(-1)  # [N, K, D]
            code = code * self.bins + idx if level else idx
            centre = F.embedding(code, self.centres[level])  # [N, K, D, 1]
        return centre.view(n, k, d), q.max(-1).values
