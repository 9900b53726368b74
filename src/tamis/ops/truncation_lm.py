"""`truncation_lm`: answers cut off where no writer would stop, by a small chat LM.

The `heuristics` rules see a cut only in the form of the last words: a dangling "the", an open
bracket, a calculation without its last step. An answer cut right after a number or a finished
sentence ("... 2*12=24", "... and spiritual dimensions.") reads as complete to them. A language
model tuned for chat knows where answers end: it gives the end-of-turn token a high probability
after a closing sentence and a very low one after a half-written thought. This operator asks it,
for each answer, how likely the turn ends exactly where the answer ends: `end_logprob`, the natural
log of that probability, and flags answers under `max_end_logprob`.

Answers are read with their trailing white space stripped, so a turn that ends after one more line
break is as finished as one that ends right away: the score is the probability of either,
P(end) + P(line break) * P(end | line break), read from one forward pass with the line break
appended. Scoring the bare end alone called short finished scripts cut (`#!/bin/bash` + `ls -lS`:
after a finished command the model writes a line break before it ends the turn) and finished gsm8k
answers that end on a bare result (docs/benchmarks.md, cut-off answers).

Only the end matters, so the model reads the last `answer_tokens` tokens of the answer after the
last `prompt_tokens` of the prompt (enough for it to know what is being answered): a fixed cost
per record, whatever the length. The default model is the offline SmolLM2-135M-Instruct; any
Hugging Face chat model with a chat template can be named instead. At about 3.6 records/s on 2
CPU cores it is the slowest operator here, so it is opt-in; its scores are cached by content and
parameters, so re-deciding with another threshold costs nothing (docs/benchmarks.md).
"""

from __future__ import annotations

import multiprocessing
from typing import Any

from tamis.ops.base import (
    Operator,
    Param,
    Reason,
    ends_in_tool_call,
    joined,
    prompt_roles,
    register,
)
from tamis.records.model import Record


@register
class TruncationLM(Operator):
    name = "truncation_lm"
    description = "answers cut off mid-thought: a chat LM's probability that the turn ends there"
    requires = ("torch", "transformers")
    extra = "train"
    cacheable = True
    max_batch = 64  # a model pass per record: small batches keep every worker busy
    params = {
        "max_end_logprob": Param(
            -14.0,
            "flag when log P(end of turn | answer), the end right away or after one line break, "
            "is under this (natural log)",
        ),
        "model": Param("smollm2", "chat model (offline SmolLM2 by default)", compute=True),
        "answer_tokens": Param(48, "last answer tokens the model reads", compute=True),
        "prompt_tokens": Param(32, "last prompt tokens the model reads first", compute=True),
        "batch_size": Param(32, "records per forward pass"),
    }
    version = 2  # 2: the end may come after one line break
    signals = {"end_logprob": "float32"}
    reasons = {"truncated": "the answer stops where the model would not end a turn"}

    def prepare(self) -> None:
        from tamis.models.causal_lm import resolve_model

        resolve_model(self.p["model"], "sft")  # converts and caches SmolLM2 once, before workers

    def setup(self) -> None:
        import torch

        from tamis.models.causal_lm import load_causal_lm

        if multiprocessing.current_process().name != "MainProcess":
            torch.set_num_threads(1)  # one thread per worker process: no oversubscription
        self._model, self._tok = load_causal_lm(self.p["model"])
        self._model.eval()
        tok = self._tok
        self._end = _end_token(tok)
        self._break = tok("\n", add_special_tokens=False)["input_ids"][-1]
        # the tokens that open the assistant turn after the prompt, from the model's own template
        chat = [{"role": "user", "content": "\x00"}]
        text = tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        head, tail = text.split("\x00")
        self._head = tok(head, add_special_tokens=False)["input_ids"]
        self._tail = tok(tail, add_special_tokens=False)["input_ids"]

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = [{"end_logprob": None} for _ in records]
        todo = []
        for i, r in enumerate(records):
            answer = joined(r, ("assistant",)).rstrip()
            if answer and not ends_in_tool_call(r):  # text before a call is not an ending
                todo.append((i, joined(r, prompt_roles(r)), answer))
        bs = max(1, int(self.p["batch_size"]))
        for start in range(0, len(todo), bs):
            part = todo[start : start + bs]
            scores = self._score([(p, a) for _, p, a in part])
            for (i, _, _), s in zip(part, scores, strict=True):
                rows[i]["end_logprob"] = s
        return rows

    def _score(self, pairs: list[tuple[str, str]]) -> list[float]:
        """log P(end of turn | prompt tail, answer tail), the end right away or after one line
        break, per (prompt, answer), from one padded batch."""
        import torch

        tok = self._tok
        n_p, n_a = int(self.p["prompt_tokens"]), int(self.p["answer_tokens"])
        seqs = []
        for prompt, answer in pairs:
            p_ids = tok(prompt, add_special_tokens=False)["input_ids"][-n_p:] if n_p else []
            a_ids = tok(answer, add_special_tokens=False)["input_ids"][-n_a:]
            seqs.append(self._head + p_ids + self._tail + a_ids + [self._break])
        width = max(map(len, seqs))
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for j, s in enumerate(seqs):  # left padding: the last position is every answer's end
            ids[j, width - len(s) :] = torch.tensor(s)
            mask[j, width - len(s) :] = 1
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # each answer's positions as if unpadded
        with torch.inference_mode():
            out = self._model(input_ids=ids, attention_mask=mask, position_ids=pos)
            logp = torch.log_softmax(out.logits[:, -2:, :].float(), dim=-1)
        at_end = logp[:, 0, self._end]  # the turn ends right after the answer
        after_break = logp[:, 0, self._break] + logp[:, 1, self._end]  # or after one line break
        score = torch.logaddexp(at_end, after_break)
        return [round(float(x), 4) for x in score]

    def decide(self, record: Record, signals: dict[str, Any]) -> list[Reason]:
        lp = signals.get("end_logprob")
        if lp is not None and lp < self.p["max_end_logprob"]:
            return [Reason(self.name, "truncated", lp)]
        return []


def _end_token(tok: Any) -> int:
    """The token that closes an assistant turn in this model's chat template."""
    text = tok.apply_chat_template(
        [{"role": "user", "content": "a"}, {"role": "assistant", "content": "\x00"}],
        tokenize=False,
    )
    after = text.split("\x00", 1)[1]
    ids = tok(after, add_special_tokens=False)["input_ids"]
    if ids:
        return int(ids[0])
    return int(tok.eos_token_id)
