"""lm-eval's transformers model, scoring each shared few-shot context once for all of its answer choices.

A multiple-choice task sends lm-eval one loglikelihood request per choice, all with the same context: ARC's
25-shot prompt is about 800 tokens on the tiny world, and HFLM runs it once per choice (four times; its own
source marks the missing grouping as a TODO). Here each context runs once, without its last token; its key/value
cache is repeated for the choices, and every choice scores only `context[-1:] + continuation[:-1]` over it. The
model sees the same tokens at the same positions as in lm-eval's path, so log-likelihoods agree to float
rounding and greedy flags exactly (tests/evaluate/test_shared_context.py compares the two). Measured on the tiny
world, one CPU thread, H6 for one model at limit 20: 13.3-14.0 s through HFLM, 8.2 s here.

Requests whose context is not shared, or which would need lm-eval's left truncation, take HFLM's own path: the
tiny world's models declare a 256-token context, so its ARC prompts take that path (30 items, one thread: 2.3 s,
against 2.6 s shared over the uncut 800-token prompts).
Hand-written because lm-eval (0.4.x) has no such option; `logits_cache` covers only one-token continuations.
The method overridden, HFLM._loglikelihood_tokens, is private: written against lm-eval 0.4.13 (solar_ray.patches).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
from typing import Any

import torch
import torch.nn.functional as F
from lm_eval.models.huggingface import HFLM, eval_logger

# ((context, continuation) strings, context token ids, continuation token ids), as HFLM receives them.
Request = tuple[tuple[str, str], list[int], list[int]]
MAX_CHOICES_PER_BATCH = 16  # choices scored in one forward over a repeated cache (memory: batch x cache)
# lm-eval warns once per request it cuts from the left (0.4.13's text): ARC's 25-shot prompts on a 256-token model
# made 8,000 such lines in one main job. They are folded into one line per call.
TRUNCATION_WARNING = "Combined length of context"


class _DropTruncationWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(TRUNCATION_WARNING)


@contextlib.contextmanager
def _truncation_warnings_folded():
    quiet = _DropTruncationWarnings()
    eval_logger.addFilter(quiet)
    try:
        yield
    finally:
        eval_logger.removeFilter(quiet)


class SharedContextHFLM(HFLM):
    """HFLM whose loglikelihood runs a context shared by several requests once (causal models)."""

    def _loglikelihood_tokens(self, requests: list[Request], disable_tqdm: bool = False,
                              override_bs: int | None = None) -> list[tuple[float, bool]]:
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, (_, context, _) in enumerate(requests):
            groups.setdefault(tuple(context), []).append(index)
        shared = {context: ids for context, ids in groups.items() if self._can_share(context, ids, requests)}
        results: list[Any] = [None] * len(requests)
        alone = [index for context, ids in groups.items() if context not in shared for index in ids]
        if alone:
            cut = sum(self._cut(requests[i]) for i in alone)
            with _truncation_warnings_folded():
                own = super()._loglikelihood_tokens([requests[i] for i in alone], disable_tqdm, override_bs)
            if cut:
                eval_logger.warning(f"{cut} of {len(requests)} requests cut from the left to the model's "
                                    f"{self.max_length} tokens (lm-eval's per-request warnings folded into this line)")
            for index, result in zip(alone, own, strict=True):
                results[index] = result
        for context, ids in shared.items():
            for start in range(0, len(ids), MAX_CHOICES_PER_BATCH):
                batch = ids[start:start + MAX_CHOICES_PER_BATCH]
                scored = self._score_over_context(list(context), [requests[i][2] for i in batch])
                for index, result in zip(batch, scored, strict=True):
                    results[index] = result
                    if requests[index][0] is not None:
                        self.cache_hook.add_partial("loglikelihood", requests[index][0], result)
        return results

    def _cut(self, request: Request) -> bool:
        """Whether lm-eval cuts this request's context from the left (causal models, past max_length + 1)."""
        _, context, continuation = request
        return self.backend == "causal" and len(context) + len(continuation) > self.max_length + 1

    def _can_share(self, context: tuple[int, ...], ids: list[int], requests: list[Request]) -> bool:
        return (self.backend == "causal" and len(ids) > 1 and len(context) > 1
                and not any(self._cut(requests[i]) for i in ids))

    @torch.no_grad()
    def _score_over_context(self, context: list[int], continuations: list[list[int]]) -> list[tuple[float, bool]]:
        """(sum of log p(continuation | context), continuation is the greedy decode) for each continuation."""
        # transformers 5.2x names the key/value cache `cache`; earlier releases `past_key_values`.
        name = "cache" if "cache" in inspect.signature(self.model.forward).parameters else "past_key_values"
        prefix = torch.tensor([context[:-1]], dtype=torch.long, device=self.device)  # [1, ctx - 1]
        cache = getattr(self.model(prefix, use_cache=True), name)
        cache.batch_repeat_interleave(len(continuations))
        width = max(len(c) for c in continuations)
        # Right-padded; padding only follows a row's real tokens, which the causal mask keeps it from touching.
        tails = torch.zeros((len(continuations), width), dtype=torch.long, device=self.device)  # [n, width]
        for row, continuation in enumerate(continuations):
            tails[row, :len(continuation)] = torch.tensor([context[-1], *continuation[:-1]])
        logits = self.model(tails, **{name: cache}, use_cache=False).logits  # [n, width, vocab]
        logprobs = F.log_softmax(logits, dim=-1, dtype=self.softmax_dtype)
        scored = []
        for row, continuation in enumerate(continuations):
            target = torch.tensor(continuation, dtype=torch.long, device=self.device)  # [cont]
            rows = logprobs[row, :len(continuation)]  # [cont, vocab]
            total = rows.gather(-1, target[:, None]).sum()
            scored.append((float(total), bool((rows.argmax(-1) == target).all())))
        return scored
