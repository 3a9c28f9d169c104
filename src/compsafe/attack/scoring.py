"""Refusal margins of many candidate suffixes at once, and their gradient through a one-hot suffix.

Why not ``refusal_margins``: a search step scores tens of suffixes of one request, which differ only in a
few tokens after a long shared prefix (system prompt, request). ``MarginScorer`` runs that prefix once per
request and model, then feeds each candidate's ``suffix + tail`` once and its openings from a copy of that
cache, so a step costs the new tokens only. The numbers are the same log-probabilities ``refusal_margins``
computes (``tests/attack`` re-scores found suffixes through it).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import DynamicCache

from compsafe.attack.layout import AttackPrompt
from compsafe.models.prefix_cache import cache_keyword


@dataclass(frozen=True)
class Margins:
    """Per candidate: the refusal margin (nats, refusal minus compliance) and which openings are the maxima."""

    margin: torch.Tensor  # [B]
    refusal_best: torch.Tensor  # [B] index into the refusal openings
    compliance_best: torch.Tensor  # [B] index into the compliance openings


def margins_from_scores(scores: torch.Tensor, n_refusal: int) -> Margins:
    """``refusal_margins``' reduction: best refusal opening minus best compliance opening."""
    refusal, r_best = scores[:, :n_refusal].max(dim=1)
    compliance, c_best = scores[:, n_refusal:].max(dim=1)
    return Margins(refusal - compliance, r_best, c_best)


class MarginScorer:
    """One model's margins for suffixes of one request (the prefix's KV cache computed once)."""

    def __init__(self, model: Any, prompt: AttackPrompt, chunk: int = 8) -> None:
        self.model = model
        self.prompt = prompt
        self.chunk = max(1, chunk)
        self.device = next(model.parameters()).device
        self.keyword = cache_keyword(model)
        self.keeps_last = "logits_to_keep" in inspect.signature(model.forward).parameters
        with torch.no_grad():
            self.prefix_cache = DynamicCache(config=model.config)
            ids = torch.tensor([prompt.prefix], device=self.device)
            self.model(input_ids=ids, use_cache=True, **{self.keyword: self.prefix_cache})

    def _cache(self, rows: int) -> DynamicCache:
        cache = copy.deepcopy(self.prefix_cache)
        cache.batch_repeat_interleave(rows)
        return cache

    def _openings(self, rows: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs [rows*J, L], targets [rows*J, L], mask [rows*J, L]) for every opening's tokens after its first,
        right-padded (a causal model's real tokens never see the padding after them)."""
        openings = self.prompt.openings
        width = max(len(o) for o in openings) - 1
        inputs = torch.zeros((len(openings), max(width, 1)), dtype=torch.long)
        targets = torch.zeros_like(inputs)
        mask = torch.zeros_like(inputs, dtype=torch.bool)
        for j, opening in enumerate(openings):
            n = len(opening) - 1
            if n:
                inputs[j, :n] = torch.tensor(opening[:-1])
                targets[j, :n] = torch.tensor(opening[1:])
                mask[j, :n] = True
        repeat = (rows, 1)
        return inputs.repeat(repeat), targets.repeat(repeat), mask.repeat(repeat)

    @torch.no_grad()
    def scores(self, suffixes: torch.Tensor) -> torch.Tensor:
        """Sum log P(opening | prefix + suffix + tail) for each suffix row [B, S] and opening: [B, J]."""
        return torch.cat([self._scores(suffixes[i : i + self.chunk]) for i in range(0, len(suffixes), self.chunk)])

    def _scores(self, suffixes: torch.Tensor) -> torch.Tensor:
        rows, n_open = len(suffixes), len(self.prompt.openings)
        tail = torch.tensor(self.prompt.tail, dtype=torch.long).expand(rows, -1)
        ids = torch.cat([suffixes.cpu(), tail], dim=1).to(self.device)
        cache = self._cache(rows)
        extra = {"logits_to_keep": 1} if self.keeps_last else {}
        logits = self.model(input_ids=ids, use_cache=True, **{self.keyword: cache}, **extra).logits[:, -1].float()
        first = torch.log_softmax(logits, dim=-1)  # [B, V]: every opening's first token
        first_ids = torch.tensor([o[0] for o in self.prompt.openings], device=self.device)
        total = first[:, first_ids]  # [B, J]
        inputs, targets, mask = self._openings(rows)
        if mask.any():
            cache.batch_repeat_interleave(n_open)
            out = self.model(input_ids=inputs.to(self.device), use_cache=True, **{self.keyword: cache}).logits
            logp = torch.log_softmax(out.float(), dim=-1).gather(-1, targets.to(self.device)[..., None])[..., 0]
            total = total + (logp * mask.to(self.device)).sum(-1).view(rows, n_open)
        return total.cpu()

    def margins(self, suffixes: torch.Tensor) -> Margins:
        return margins_from_scores(self.scores(suffixes), self.prompt.n_refusal)

    def gradient(self, suffix: Sequence[int], refusal: int, compliance: int) -> tuple[float, torch.Tensor]:
        """(margin, d margin / d one-hot suffix [S, V]) at ``suffix``, through the maximising openings only
        (the gradient of a max is its argmax's): GCG's linearised token-swap scores."""
        embedding = self.model.get_input_embeddings().weight
        one_hot = torch.zeros((len(suffix), embedding.shape[0]), dtype=embedding.dtype, device=self.device)
        one_hot[torch.arange(len(suffix)), torch.tensor(list(suffix))] = 1.0
        one_hot.requires_grad_(True)
        chosen = [self.prompt.openings[refusal], self.prompt.openings[self.prompt.n_refusal + compliance]]
        fixed = [list(self.prompt.tail) + list(o[:-1]) for o in chosen]
        width = max(map(len, fixed))
        ids = torch.tensor([f + [0] * (width - len(f)) for f in fixed], device=self.device)
        with torch.no_grad():
            fixed_embeds = embedding[ids]
        embeds = torch.cat([(one_hot @ embedding).expand(2, -1, -1), fixed_embeds], dim=1)
        logits = self.model(inputs_embeds=embeds, use_cache=True, **{self.keyword: self._cache(2)}).logits
        logp = torch.log_softmax(logits.float(), dim=-1)
        start = len(suffix) + len(self.prompt.tail) - 1  # the position that predicts an opening's first token
        score = []
        for row, opening in enumerate(chosen):
            positions = torch.arange(start, start + len(opening), device=self.device)
            score.append(logp[row, positions, torch.tensor(opening, device=self.device)].sum())
        margin = score[0] - score[1]
        (grad,) = torch.autograd.grad(margin, one_hot)
        return float(margin.detach()), grad.float().cpu()
