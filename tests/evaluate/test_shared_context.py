"""Scoring a shared context once gives lm-eval's own log-likelihoods, with far fewer tokens through the model."""

from __future__ import annotations

import logging

import pytest
from lm_eval.models.huggingface import HFLM

from solar_ray.patches.lm_eval_context import SharedContextHFLM

FEW_SHOT = "".join(f"Question: what colour is the fox number {i}?\nAnswer: red\n\n" for i in range(12))


@pytest.fixture(scope="module")
def lm(eval_model):
    return SharedContextHFLM(pretrained=str(eval_model), device="cpu", batch_size=4)


def requests(lm, pairs):
    return [((context, continuation), *lm._encode_pair(context, continuation)) for context, continuation in pairs]


def count_tokens(lm, monkeypatch):
    seen = []
    forward = lm.model.forward

    def counting(input_ids=None, **kwargs):
        seen.append(input_ids.numel())
        return forward(input_ids=input_ids, **kwargs)

    monkeypatch.setattr(lm.model, "forward", counting)
    return seen


def test_same_loglikelihoods_and_greedy_flags_as_lm_eval(lm, monkeypatch):
    question = FEW_SHOT + "Question: what colour is the owl number 40?\nAnswer:"
    pairs = [(question, f" {colour}") for colour in ("red", "blue", "green", "purple", "black and white")]
    pairs += [("The cat walks to the lake. then it", " drinks red water."),  # a context of its own
              (FEW_SHOT + "Question: what colour is the bee?\nAnswer:", " red"),
              (FEW_SHOT + "Question: what colour is the bee?\nAnswer:", " yellow")]
    batch = requests(lm, pairs)
    ours = lm._loglikelihood_tokens(batch)
    theirs = HFLM._loglikelihood_tokens(lm, batch)
    assert len(ours) == len(theirs) == len(pairs)
    for (ll, greedy), (ll_ref, greedy_ref) in zip(ours, theirs, strict=True):
        assert ll == pytest.approx(ll_ref, abs=1e-4, rel=1e-5)
        assert greedy == greedy_ref
    assert len({round(ll, 3) for ll, _ in ours[:5]}) > 1  # the choices really differ


def test_each_shared_context_goes_through_the_model_once(lm, monkeypatch):
    question = FEW_SHOT + "Question: what colour is the hen number 7?\nAnswer:"
    # Several tokens each: lm-eval runs one-token continuations of one context once already (logits_cache).
    batch = requests(lm, [(question, f" {c} fox") for c in ("red", "blue", "green", "white")])
    assert all(len(continuation) > 1 for _, _, continuation in batch)
    seen = count_tokens(lm, monkeypatch)
    lm._loglikelihood_tokens(batch)
    ours = sum(seen)
    seen.clear()
    HFLM._loglikelihood_tokens(lm, batch)
    context = len(batch[0][1])
    assert sum(seen) >= 4 * context  # lm-eval: the context once per choice
    assert context <= ours < 1.2 * context  # here: once, plus a few continuation tokens


def test_contexts_lm_eval_would_truncate_take_its_own_path(lm, monkeypatch):
    long_context = FEW_SHOT * 40  # past the tiny model's 2,048 positions
    batch = requests(lm, [(long_context, " red"), (long_context, " blue")])
    assert len(batch[0][1]) > lm.max_length
    monkeypatch.setattr(SharedContextHFLM, "_score_over_context",
                        lambda *a: pytest.fail("a truncated context must not be shared"))
    ours = lm._loglikelihood_tokens(batch)
    theirs = HFLM._loglikelihood_tokens(lm, batch)
    assert [round(ll, 4) for ll, _ in ours] == [round(ll, 4) for ll, _ in theirs]


def test_lm_evals_truncation_warnings_fold_into_one_line(lm, caplog):
    """lm-eval warns once per request it cuts; a call that cuts several logs one line (and lm-eval's text is what
    the fold matches: a change of it lets the per-request lines through and fails here)."""
    long_context = FEW_SHOT * 40
    batch = requests(lm, [(long_context, " red"), (long_context, " blue"), (long_context + " yes", " green")])
    with caplog.at_level(logging.WARNING, logger="lm_eval.models.huggingface"):
        lm._loglikelihood_tokens(batch)
    messages = [record.getMessage() for record in caplog.records]
    assert not [m for m in messages if "Truncating" in m]
    assert [m for m in messages if "cut from the left" in m] == [
        f"3 of 3 requests cut from the left to the model's {lm.max_length} tokens (lm-eval's per-request warnings "
        "folded into this line)"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lm_eval.models.huggingface"):
        HFLM._loglikelihood_tokens(lm, batch)
    assert sum("Truncating" in record.getMessage() for record in caplog.records) == 3  # lm-eval's own path
