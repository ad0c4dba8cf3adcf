"""
λ-GRPO's learned length preference, lampo.py's --loss-agg length-pref.

λ-GRPO (Wang et al. 2025, "λ-GRPO: Unifying the GRPO Frameworks with Learnable Token Preferences",
arXiv 2510.06870) learns how much a long response counts, where GRPO's per-response mean and DAPO's
per-token mean fix it. Response i's tokens get the token-mean weight 1 / sum_j |y_j| times

    f_i = G * softmax_i(h_i ** e),   h_i = 1 + c * z_i

z_i is |y_i| standardised within its group, c is --length-pref-strength, and the exponent e is a
parameter that the policy's AdamW trains through the loss, at --length-pref-lr. e = 0 gives f = 1,
the token mean; e > 0 favours long responses, e < 0 short ones. (The paper calls e lambda; lampo.py
keeps that name for LamPO's pair weight.) lampo.py saves e in its checkpoints and logs it.
"""

import torch


class LengthPreference(torch.nn.Module):
    """The learned exponent e; called on a step's response lengths, [B, G], it returns f, [B, G]."""

    def __init__(self, strength: float):
        super().__init__()
        self.strength = strength
        self.exponent = torch.nn.Parameter(torch.zeros(()))

    def forward(self, lengths: torch.Tensor) -> torch.Tensor:
        z = (lengths - lengths.mean(-1, keepdim=True)) / (lengths.std(-1, keepdim=True) + 1e-6)
        h = (1 + self.strength * z).clamp(min=1e-3)                      # h ** e needs h > 0
        return lengths.shape[-1] * torch.softmax(h ** self.exponent, -1)
