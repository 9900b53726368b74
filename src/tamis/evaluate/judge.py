"""LLM-as-judge in the G-Eval manner: one rubric per criterion; the judge reasons, then scores.

When the judge's token log-probabilities are available, the score is the probability-weighted
mean over the score tokens ("1".."5") at the position of the score, which separates answers a
plain integer would tie (G-Eval, Liu et al. 2023); otherwise the plain score is parsed from the
text. Every score says which method gave it.

Two judges with one interface: `LocalJudge` (a Hugging Face causal LM in this process) and
`HTTPJudge` (any OpenAI-compatible endpoint: base URL, model, key from an environment variable).
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any

from tamis.errors import TamisError

SCORES = ("1", "2", "3", "4", "5")

CRITERIA: dict[str, str] = {
    "correctness": (
        "Is the response factually and logically correct, and does it reach the right answer? "
        "1: wrong or unsupported; 3: partly correct, with errors; 5: fully correct."
    ),
    "helpfulness": (
        "Does the response address what the user asked, completely and usefully? "
        "1: ignores or refuses the request; 3: partly addresses it; 5: fully and usefully."
    ),
    "fluency": (
        "Is the response well-formed, clear and readable? "
        "1: broken or incoherent text; 3: understandable with problems; 5: clear and fluent."
    ),
}

_SCORE_LINE = re.compile(r"score\s*[:=]\s*\**\s*([1-5])", re.IGNORECASE)


def judge_messages(
    criterion: str, rubric: str, question: str, answer: str, reference: str | None
) -> list[dict[str, str]]:
    ref = f"\nReference answer:\n{reference}\n" if reference else ""
    return [
        {
            "role": "system",
            "content": "You are a careful, strict evaluator of assistant responses.",
        },
        {
            "role": "user",
            "content": (
                f"Evaluate the response on one criterion: {criterion}.\n"
                f"Rubric (1 to 5): {rubric}\n\n"
                f"Question:\n{question}\n{ref}\nResponse:\n{answer}\n\n"
                "First explain your reasoning in two or three sentences. "
                "Then end with a final line of the form 'Score: N' where N is 1, 2, 3, 4 or 5."
            ),
        },
    ]


def weighted_score(probs: dict[str, float]) -> float | None:
    """Probability-weighted mean over the score tokens (renormalised over 1..5)."""
    total = sum(probs.get(s, 0.0) for s in SCORES)
    if total <= 0:
        return None
    return sum(int(s) * probs.get(s, 0.0) for s in SCORES) / total


def plain_score(text: str) -> float | None:
    m = _SCORE_LINE.findall(text or "")
    if m:
        return float(m[-1])
    digits = re.findall(r"\b([1-5])\b", text or "")
    return float(digits[-1]) if digits else None


@dataclass
class Judgement:
    criterion: str
    score: float | None
    method: str  # "logprobs", "plain" or "unparsed"
    reasoning: str

    def to_json(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion,
            "score": self.score,
            "method": self.method,
            "reasoning": self.reasoning,
        }


class Judge:
    """Scores (question, answer, reference) on each criterion."""

    def __init__(self, criteria: dict[str, str] | None = None, max_new_tokens: int = 160):
        self.criteria = criteria or dict(CRITERIA)
        self.max_new_tokens = max_new_tokens

    @property
    def name(self) -> str:
        raise NotImplementedError

    def judge_one(self, messages: list[dict[str, str]], criterion: str) -> Judgement:
        raise NotImplementedError

    def judge(self, question: str, answer: str, reference: str | None = None) -> list[Judgement]:
        return [
            self.judge_one(judge_messages(c, rubric, question, answer, reference), c)
            for c, rubric in self.criteria.items()
        ]


class LocalJudge(Judge):
    """A local causal LM: generate the reasoning greedily, then read the next-token
    distribution after "Score:" (appended when the judge did not write it)."""

    def __init__(self, model: str | None = None, **kw: Any):
        super().__init__(**kw)
        from tamis.models.causal_lm import load_causal_lm

        self.model, self.tok = load_causal_lm(model)
        self.model.eval()
        self.model_name = model or "smollm2"
        self.score_ids = {s: self.tok.encode(s, add_special_tokens=False)[-1] for s in SCORES}

    @property
    def name(self) -> str:
        return f"local:{self.model_name}"

    def judge_one(self, messages: list[dict[str, str]], criterion: str) -> Judgement:
        import torch

        prompt = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = self.tok(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            gen = self.model.generate(
                **enc,
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tok.pad_token_id or self.tok.eos_token_id,
            )
        text = self.tok.decode(gen[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        m = re.search(r"score\s*[:=]\s*\**\s*", text, re.IGNORECASE)
        lead = text[: m.end()] if m else text.rstrip() + "\nScore: "
        ids = self.tok(prompt + lead, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            logits = self.model(**ids).logits[0, -1].float()
        p = torch.softmax(logits, -1)
        probs = {s: float(p[i]) for s, i in self.score_ids.items()}
        score = weighted_score(probs)
        if score is None:
            fallback = plain_score(text)
            return Judgement(criterion, fallback, "plain" if fallback else "unparsed", text)
        return Judgement(criterion, score, "logprobs", text)


class HTTPJudge(Judge):
    """Any OpenAI-compatible chat completions endpoint. Asks for log-probabilities; uses them
    when the server returns them at the score token, else parses the plain score."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        **kw: Any,
    ):
        super().__init__(**kw)
        self.base_url = base_url.rstrip("/")
        self.model_name = model
        self.key = os.environ.get(api_key_env, "")
        self.timeout = timeout

    @property
    def name(self) -> str:
        return f"http:{self.base_url}:{self.model_name}"

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        try:
            r = httpx.post(
                f"{self.base_url}/chat/completions",
                json=body,
                headers=headers,
                timeout=self.timeout,
            )
        except httpx.HTTPError as e:
            raise TamisError(f"the judge endpoint {self.base_url} cannot be reached: {e}") from None
        if r.status_code != 200:
            raise TamisError(f"the judge endpoint answered {r.status_code}: {r.text[:300]}")
        return r.json()

    def judge_one(self, messages: list[dict[str, str]], criterion: str) -> Judgement:
        body = {
            "model": self.model_name,
            "messages": messages,
            "temperature": 0,
            "max_tokens": self.max_new_tokens,
            "logprobs": True,
            "top_logprobs": 5,
        }
        data = self._post(body)
        choice = data["choices"][0]
        text = choice["message"]["content"] or ""
        probs = score_probs_from_logprobs((choice.get("logprobs") or {}).get("content") or [])
        if probs is None and plain_score_line(text) is None:
            # the judge reasoned but wrote no score: ask for it, one digit, as G-Eval does
            follow = messages + [
                {"role": "assistant", "content": text},
                {"role": "user", "content": "Your final score (1, 2, 3, 4 or 5), one digit:"},
            ]
            data = self._post({**body, "messages": follow, "max_tokens": 2, "top_logprobs": 20})
            c2 = data["choices"][0]
            probs = first_token_score_probs((c2.get("logprobs") or {}).get("content") or [])
            text = f"{text}\nScore: {(c2['message']['content'] or '').strip()}"
        if probs is not None:
            score = weighted_score(probs)
            if score is not None:
                return Judgement(criterion, score, "logprobs", text)
        score = plain_score(text)
        return Judgement(criterion, score, "plain" if score is not None else "unparsed", text)


def plain_score_line(text: str) -> float | None:
    """The score of an explicit 'Score: N' line, if the judge wrote one."""
    m = _SCORE_LINE.findall(text or "")
    return float(m[-1]) if m else None


def first_token_score_probs(content: list[dict[str, Any]]) -> dict[str, float] | None:
    """The distribution over 1..5 at the first generated token (the answer to 'one digit')."""
    if not content:
        return None
    probs: dict[str, float] = {}
    for alt in content[0].get("top_logprobs") or [content[0]]:
        t = alt.get("token", "").strip()
        if t in SCORES:
            probs[t] = probs.get(t, 0.0) + math.exp(alt["logprob"])
    return probs or None


def score_probs_from_logprobs(content: list[dict[str, Any]]) -> dict[str, float] | None:
    """The distribution over 1..5 at the first score digit after "Score:" in an OpenAI-style
    `logprobs.content` list (token, logprob, top_logprobs); None when there is none."""
    text = ""
    for item in content:
        before = text
        text += item.get("token", "")
        if (
            re.search(r"score\s*[:=]\s*\**\s*$", before, re.IGNORECASE)
            and item.get("token", "").strip() in SCORES
        ):
            probs: dict[str, float] = {}
            for alt in item.get("top_logprobs") or [item]:
                t = alt.get("token", "").strip()
                if t in SCORES:
                    probs[t] = probs.get(t, 0.0) + math.exp(alt["logprob"])
            return probs or None
    return None


def make_judge(spec: str | None, criteria: list[str] | None = None, **kw: Any) -> Judge | None:
    """`local` / `local:MODEL` or `http://host:port/v1` + `--judge-model`: the judge to use."""
    if not spec:
        return None
    crit = None
    if criteria:
        unknown = [c for c in criteria if c not in CRITERIA]
        if unknown:
            raise TamisError(f"unknown judge criteria {unknown}; known: {sorted(CRITERIA)}")
        crit = {c: CRITERIA[c] for c in criteria}
    if spec == "local" or spec.startswith("local:"):
        return LocalJudge(spec.partition(":")[2] or None, criteria=crit)
    if spec.startswith(("http://", "https://")):
        model = kw.pop("model", None)
        if not model:
            raise TamisError("an HTTP judge needs its model name (--judge-model)")
        return HTTPJudge(spec, model, criteria=crit, **kw)
    raise TamisError(f"--judge takes 'local', 'local:MODEL' or an http(s) base URL, not {spec!r}")
