"""The one place that talks to a transformers model. Probes only see these primitives.

Three primitives, as in lm-evaluation-harness: ``generate`` (batched greedy or sampled continuations),
``loglikelihood`` (log P(continuation | context)) and ``next_token_logprobs``; plus ``text_logits`` for
perplexity-style scoring of long texts in windows. Requests are sorted by length before batching (less
padding, fewer wasted FLOPs) and results are returned in the caller's order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from compsafe.models.drafting import DraftRole, draft_greedy, eos_set, plain_greedy_reason, until_eos
from compsafe.models.loading import ModelHandle
from compsafe.models.lookup import AnswerPool
from compsafe.models.prefix_cache import PrefixCache, cache_keyword, shared_prefix_length

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings; part of every generation probe's store key so a change invalidates old records."""

    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoglikResult:
    logprob: float  # sum of log-probabilities of the continuation tokens
    n_tokens: int
    is_greedy: bool  # every continuation token is the argmax (lm-eval's "exact match" signal)


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA OOM, or the CPU allocator failing: both mean "try a smaller batch"."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[list[int]]:
    """Indices grouped into batches of similar length, longest first (an OOM shows up on the first batch)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def prefix_token_id(tokenizer: Any) -> int:
    """The token a context-free text is scored after, as lm-evaluation-harness picks it: BOS, else EOS."""
    token = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    if token is None:
        raise ValueError("the tokenizer has neither a BOS nor an EOS token to score text after")
    return int(token)


def rolling_windows(tokens: list[int], prefix: int, max_len: int) -> Iterator[tuple[list[int], list[int]]]:
    """(input ids, predicted ids) covering every token once: lm-eval's ``get_rolling_token_windows`` with
    ``context_len=1`` followed by ``make_disjoint_window``; score the last ``len(predicted)`` logits."""
    if not tokens:
        return
    first = min(max_len, len(tokens))
    yield [prefix, *tokens[: first - 1]], tokens[:first]
    predicted = first
    while predicted < len(tokens):
        n = min(len(tokens) - predicted, max_len)
        end = predicted + n
        yield tokens[max(end - max_len - 1, 0) : end - 1], tokens[end - n : end]
        predicted += n


class HFBackend:
    """Batched inference over a ``ModelHandle`` (left padding for generation, right padding for scoring)."""

    def __init__(
        self,
        handle: ModelHandle,
        batch_size: int = 16,
        *,
        static_cache: bool | None = None,
        drafting: DraftRole | None = None,
    ) -> None:
        self.handle = handle
        self.model = handle.model
        self.tokenizer = handle.tokenizer
        self.batch_size = max(1, batch_size)
        self.device = handle.device
        # On a GPU, eager decoding is launch-bound (~1% of the bandwidth roofline); a static KV cache lets
        # transformers compile the decode step. Prompt widths are bucketed so few shapes get compiled.
        self.static_cache = handle.device.type == "cuda" if static_cache is None else static_cache
        self.oom_backoffs = 0
        # a study's draft book (models.drafting): the base records its greedy tokens, a variant verifies them
        self.drafting = drafting
        # the chat template's shared prefix, run once per model (None: every prompt runs whole)
        self.prefix_cache: PrefixCache | None = PrefixCache(self.model, self.device)
        # every answer this model gave in a greedy batch, and the drafts it saw: n-gram guesses for later rows
        # (models/lookup.py); answers recur across a probe's chunks and across probes (refusal phrasings)
        self.answer_pool = AnswerPool()
        # greedy batches run compsafe's own decode loop (models.drafting.draft_greedy), where a finished row
        # leaves the batch; ``generate`` keeps computing finished rows until the longest ends. False: plain
        # ``generate`` for greedy batches too (benchmarks compare the two)
        self.greedy_loop = True

    def _batched(self, lengths: Sequence[int], run_batch: Callable[[list[int]], None]) -> None:
        """Call ``run_batch`` on length-sorted batches, halving the batch size on out-of-memory.

        The longest batch comes first, so a size that survives it survives the rest; the reduced size is
        kept for later calls on this backend. After each batch the heap's free pages go back to the OS
        (``memory.trim_freed_memory``): the next batch, or stage, starts from what the run holds.
        """
        from compsafe.memory import trim_freed_memory

        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        start = 0
        while start < len(order):
            batch = order[start : start + self.batch_size]
            try:
                run_batch(batch)
            except Exception as exc:
                if not is_out_of_memory(exc) or len(batch) == 1:
                    raise
                self.batch_size = max(1, len(batch) // 2)
                self.oom_backoffs += 1
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            trim_freed_memory()
            start += len(batch)

    # ----- prompt formatting -------------------------------------------------------------------------------
    def format_chat(self, user_message: str, system: str | None = None) -> str:
        """Wrap a user message in the model's chat template (raw text when the tokenizer has none)."""
        if not self.handle.has_chat_template:
            return user_message
        messages = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": user_message}
        ]
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _encode(self, text: str, chat_formatted: bool) -> list[int]:
        # A chat template already contains the special tokens the model expects.
        return self.tokenizer(text, add_special_tokens=not chat_formatted)["input_ids"]

    def _check_lengths(self, encoded: Sequence[list[int]], prompts: Sequence[str], reserve: int = 0) -> None:
        """A prompt that does not fit the model's context (with ``reserve`` tokens to generate) is a data
        error, raised before any batch runs (``COMPSAFE_MAX_SEQ_LEN`` overrides the context)."""
        from compsafe.errors import DataFileError
        from compsafe.limits import max_sequence_length

        limit = max_sequence_length(self.handle.max_length) - reserve
        for ids, prompt in zip(encoded, prompts, strict=True):
            if len(ids) > limit:
                raise DataFileError(
                    f"a prompt has {len(ids)} tokens, more than the {limit} that fit the model's context "
                    f"({self.handle.max_length}, less {reserve} to generate; COMPSAFE_MAX_SEQ_LEN overrides it): "
                    f"{prompt[:40]!r}... shorten it or remove the item"
                )

    def _left_padded(self, sequences: list[list[int]], bucket: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(s) for s in sequences)
        width = -(-width // bucket) * bucket
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(sequences), width), pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for row, seq in enumerate(sequences):
            ids[row, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq) :] = 1
        return ids.to(self.device), mask.to(self.device)

    # ----- primitives --------------------------------------------------------------------------------------
    @torch.inference_mode()
    def generate(
        self,
        prompts: Sequence[str],
        config: GenerationConfig,
        *,
        chat: bool = True,
        progress: ProgressCallback | None = None,
    ) -> list[str]:
        """Continuations of ``prompts`` (user messages when ``chat``), decoded without special tokens."""
        texts = [self.format_chat(p) if chat else p for p in prompts]
        encoded = [self._encode(t, chat_formatted=chat) for t in texts]
        self._check_lengths(encoded, prompts, reserve=config.max_new_tokens)
        outputs: list[str] = [""] * len(prompts)
        eos = self.model.generation_config.eos_token_id or self.tokenizer.eos_token_id
        kwargs: dict[str, Any] = {
            "max_new_tokens": config.max_new_tokens,
            "do_sample": config.do_sample,
            "pad_token_id": self.tokenizer.pad_token_id,
            "eos_token_id": eos,
        }
        if config.do_sample:
            kwargs.update(temperature=config.temperature, top_p=config.top_p)
        else:  # greedy: silence sampling defaults some generation_configs carry
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.static_cache:
            kwargs["cache_implementation"] = "static"
        drafting = self._drafting_for(config)
        shared = shared_prefix_length(encoded)  # what every prompt of this call starts with (the chat template's)

        if self._greedy_loop_for(config):
            return self._greedy(drafting, encoded, config, eos, shared, progress)

        def run_batch(batch: list[int]) -> None:
            rows = [encoded[i] for i in batch]
            prefix = None if self.static_cache else self.prefix_cache  # a static cache has fixed shapes
            prefixed = prefix.generate_inputs(rows, shared, kwargs["pad_token_id"] or 0) if prefix else None
            if prefixed is not None:  # the shared chat prefix comes from its cache, run once for this model
                ids, mask, cache = prefixed
                kwargs[cache_keyword(self.model)] = cache
            else:
                ids, mask = self._left_padded(rows, bucket=64 if self.static_cache else 1)
            if config.do_sample:
                torch.manual_seed(config.seed)
            # generation stops as soon as every sequence in the batch has produced EOS
            generated = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
            kwargs.pop(cache_keyword(self.model), None)
            new_tokens = generated[:, ids.shape[1] :]
            for row, index in enumerate(batch):
                outputs[index] = self.tokenizer.decode(new_tokens[row], skip_special_tokens=True).strip()
            if drafting is not None:  # the base keeps its tokens as drafts; a variant without drafts counts them
                for row, index in enumerate(batch):
                    tokens = until_eos(new_tokens[row].tolist(), eos_set(eos))
                    if drafting.record:
                        drafting.book.record(encoded[index], config, tokens)
                    else:
                        drafting.counts.generated += len(tokens)
            if progress:
                progress(len(batch))

        self._batched([len(e) for e in encoded], run_batch)
        return outputs

    def _drafting_for(self, config: GenerationConfig) -> DraftRole | None:
        """The draft role for this call: greedy decoding only, with a book, on a model drafts can reproduce."""
        role = self.drafting
        if role is None or config.do_sample or not role.book.enabled or plain_greedy_reason(self.model) is not None:
            return None
        return role

    def _greedy_loop_for(self, config: GenerationConfig) -> bool:
        """Whether this call's batches run compsafe's greedy loop: greedy, a dynamic cache (the GPU's static
        cache has fixed shapes), and a model whose ``generate`` the loop reproduces."""
        return (
            self.greedy_loop
            and not config.do_sample
            and not self.static_cache
            and plain_greedy_reason(self.model) is None
        )

    def _greedy(
        self, role: DraftRole | None, encoded: list[list[int]], config: GenerationConfig, eos: Any, shared: int,
        progress: ProgressCallback | None,
    ) -> list[str]:  # fmt: skip
        """Greedy answers through ``draft_greedy``, longest prompts first, in batches whose stragglers join the
        next batch: a variant verifies the base's drafts where the study's book has them; the base (and a
        variant without drafts) decodes token by token, finished rows leaving the batch. The base records its
        tokens as drafts. Out of memory: the batch size is halved and the call starts over (kept for later)."""
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        prompts = [encoded[i] for i in order]
        drafts = [role.book.get(p, config) for p in prompts] if role is not None and not role.record else None
        reported = 0

        def finished(n: int) -> None:  # a restarted call re-finishes rows: report only new ones
            nonlocal reported, done
            done += n
            if progress is not None and done > reported:
                progress(done - reported)
                reported = done

        while True:
            done = 0
            try:
                tokens, counts = draft_greedy(
                    self.model, prompts, drafts or [None] * len(prompts), max_new_tokens=config.max_new_tokens,
                    eos_ids=eos_set(eos), pad_id=self.tokenizer.pad_token_id or 0, device=self.device,
                    prefix_cache=self.prefix_cache, prefix_length=shared, batch_size=self.batch_size,
                    on_finished=finished, history=role.counts if role is not None and drafts else None,
                    lookups=self.drafting is None or self.drafting.book.enabled,  # --no-draft: no guesses at all
                    pool=self.answer_pool,
                )  # fmt: skip
                break
            except Exception as exc:
                if not is_out_of_memory(exc) or self.batch_size == 1:
                    raise
                self.batch_size = max(1, min(self.batch_size, len(prompts)) // 2)
                self.oom_backoffs += 1
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
        if role is not None:  # the base's counts too: its passes, and the tokens its lookups confirmed
            role.counts.add(counts)
            if role.record:
                for prompt, row in zip(prompts, tokens, strict=True):
                    role.book.record(prompt, config, row)
        outputs = [""] * len(encoded)
        for position, index in enumerate(order):
            outputs[index] = self.tokenizer.decode(tokens[position], skip_special_tokens=True).strip()
        return outputs

    @torch.inference_mode()
    def next_token_logprobs(
        self, prompts: Sequence[str], *, chat: bool = True, templated: bool = False
    ) -> torch.Tensor:
        """Log-probabilities [len(prompts), vocab] of the first response token: a cheap behavioural signal.

        ``chat``: wrap each prompt as a user message. ``templated``: the prompts already went through a chat
        template (a guard model's own, with its special tokens), so they are encoded as they are.
        A user's prompt (``chat``) longer than the context is refused; a judge's classifier prompt (plain or
        templated text compsafe builds around a response) is not a user input and is not refused.
        """
        texts = [self.format_chat(p) if chat and not templated else p for p in prompts]
        encoded = [self._encode(t, chat_formatted=chat or templated) for t in texts]
        if chat and not templated:
            self._check_lengths(encoded, prompts)
        result: list[torch.Tensor | None] = [None]

        def run_batch(batch: list[int]) -> None:
            ids, mask = self._left_padded([encoded[i] for i in batch])
            # positions count from each row's first real token (as generate does): left padding must not shift
            # absolute position embeddings (GPT-2 style)
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1, :].float()
            logprobs = torch.log_softmax(logits, dim=-1).cpu()
            if result[0] is None:
                result[0] = torch.empty((len(prompts), logprobs.shape[-1]), dtype=torch.float32)
            result[0][batch] = logprobs

        self._batched([len(e) for e in encoded], run_batch)
        assert result[0] is not None, "next_token_logprobs needs at least one prompt"
        return result[0]

    def _encode_pair(self, context: str, continuation: str, special_tokens: bool = True) -> tuple[list[int], list[int]]:
        """lm-eval's split: trailing spaces move to the continuation; tokenize whole, cut at the context length."""
        spaces = len(context) - len(context.rstrip())
        if spaces:
            continuation = context[-spaces:] + continuation
            context = context[:-spaces]
        whole = self.tokenizer(context + continuation, add_special_tokens=special_tokens)["input_ids"]
        context_ids = self.tokenizer(context, add_special_tokens=special_tokens)["input_ids"]
        return context_ids, whole[len(context_ids) :]

    @torch.inference_mode()
    def loglikelihood(
        self,
        requests: Sequence[tuple[str, str]],
        *,
        chat_formatted: bool = False,
        progress: ProgressCallback | None = None,
    ) -> list[LoglikResult]:
        """log P(continuation | context) for each (context, continuation) pair, in the caller's order.

        ``chat_formatted``: contexts already carry the chat template's special tokens (no BOS is added).
        Pairs that share a context (one question, several answers) run the context once (``models.scoring``).
        As in lm-evaluation-harness, an empty context is scored after the BOS (else EOS) token, a pair longer
        than the model's window loses tokens from the left, and a continuation longer than the window is refused.
        """
        from compsafe.models.scoring import group_by_context, score_groups

        max_len = self.handle.max_length
        sequences, n_cont = [], []
        for context, continuation in requests:
            context_ids, cont_ids = self._encode_pair(context, continuation, special_tokens=not chat_formatted)
            if not cont_ids:
                raise ValueError("loglikelihood needs a non-empty continuation")
            if len(cont_ids) > max_len:
                raise ValueError(f"a continuation of {len(cont_ids)} tokens does not fit the model's {max_len}")
            context_ids = context_ids or [prefix_token_id(self.tokenizer)]
            sequences.append((context_ids + cont_ids)[-(max_len + 1) :])
            n_cont.append(len(cont_ids))
        groups = group_by_context(sequences, n_cont)
        scored: dict[int, tuple[float, int, bool]] = {}
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

        def run_groups(batch: list[int]) -> None:
            chosen = [groups[i] for i in batch]
            scored.update(
                score_groups(self.model, chosen, pad=pad, device=self.device, row_chunk=max(self.batch_size, 64))
            )
            if progress:
                progress(sum(len(g.requests) for g in chosen))

        self._batched([len(g.context) + max(map(len, g.continuations)) for g in groups], run_groups)
        return [LoglikResult(*scored[i]) for i in range(len(sequences))]

    @torch.inference_mode()
    def shared_context_loglikelihood(
        self, context: str, continuations: Sequence[str], *, chat_formatted: bool = False
    ) -> list[LoglikResult]:
        """log P(continuation | context) for many short continuations of ONE context, the context run once.

        Kept for the probes that name it: ``loglikelihood`` itself now runs each distinct context once (its KV
        cache shared by the continuations), so this is the same call on the pairs.
        """
        return self.loglikelihood([(context, c) for c in continuations], chat_formatted=chat_formatted)

    @torch.inference_mode()
    def text_logits(self, text: str, *, prefix: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(targets [T], float32 logits [T, vocab]) for every predicted token of ``text``, in disjoint slices.

        Default: the text as the tokenizer encodes it (with its special tokens), in windows of the model's context
        length; every token after the first is predicted once (the first too when the tokenizer adds a BOS).
        ``prefix``: lm-evaluation-harness's ``loglikelihood_rolling`` -- the text without special tokens, every
        token predicted, the first after the prefix token (BOS, else EOS), windows as ``get_rolling_token_windows``
        with ``context_len=1`` (the last, shorter window keeps a full window of context).

        Each window's logits come in slices of at most ``TEXT_LOGITS_ROWS`` positions, converted to float32 one
        slice at a time: callers' log-softmax and top-k temporaries are then ``[TEXT_LOGITS_ROWS, vocab]``, not a
        whole window's (with SmolLM2's 49152-token vocabulary: 6 MB each, not 49 MB for a 250-token passage; the
        probe held about four such temporaries at once, and 32 rows keep the slices' overhead negligible).
        """
        window = min(self.handle.max_length, 4096)
        if prefix:
            tokens = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            for inputs, targets in rolling_windows(tokens, prefix_token_id(self.tokenizer), window):
                logits = self.model(input_ids=torch.tensor([inputs], device=self.device)).logits[0]
                yield from float_slices(targets, logits[-len(targets) :])
            return
        ids = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        for start in range(0, max(len(ids) - 1, 0), window):
            chunk = ids[start : start + window + 1]
            if len(chunk) < 2:
                break
            inputs = torch.tensor([chunk[:-1]], device=self.device)
            yield from float_slices(chunk[1:], self.model(input_ids=inputs).logits[0])


TEXT_LOGITS_ROWS = 32


def float_slices(targets: list[int], logits: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(targets, float32 CPU logits) in consecutive slices of ``TEXT_LOGITS_ROWS`` positions (rows are independent:
    a row's log-softmax or top-k is the same computed alone or with the others)."""
    for start in range(0, len(targets), TEXT_LOGITS_ROWS):
        stop = start + TEXT_LOGITS_ROWS
        yield torch.tensor(targets[start:stop]), logits[start:stop].float().cpu()
