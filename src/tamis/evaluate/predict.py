"""Load what `tamis train` wrote (or any model folder) and run it: class predictions, greedy
answers and per-example perplexity on the same rendering training used."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tamis.errors import TamisError
from tamis.records.model import Record


@dataclass
class LoadedModel:
    """A model ready to predict: task, model, tokenizer, label names, where it came from."""

    task: str
    model: Any
    tok: Any
    path: str
    base: str | None = None
    labels: list[str] = field(default_factory=list)
    max_length: int = 512

    @property
    def name(self) -> str:
        return self.path


def _run_json(path: str) -> dict[str, Any] | None:
    f = os.path.join(path, "run.json")
    if os.path.isfile(f):
        with open(f, encoding="utf-8") as fh:
            return json.load(fh)
    return None


def load(ref: str | None, task: str | None = None) -> LoadedModel:
    """A `tamis train` run folder (its adapter on its base model, merged), a model folder, or
    None / "smollm2" / "minilm" for the offline defaults."""
    import torch
    from transformers import AutoTokenizer

    from tamis.models.causal_lm import resolve_model

    torch.set_num_threads(max(1, torch.get_num_threads()))
    run = _run_json(ref) if ref and os.path.isdir(ref) else None
    base: str | None = None
    max_length = 512
    if run is not None:
        cfg = run.get("config", {})
        task = task or cfg.get("task", "sft")
        base = run["model"]
        saved = run.get("saved") or os.path.join(ref, "adapter" if cfg.get("lora") else "model")
        if not os.path.isdir(saved):  # the run folder was moved: look beside run.json
            saved = os.path.join(ref, os.path.basename(saved.rstrip("/")))
        max_length = int(cfg.get("max_length", max_length))
        labels_map = run.get("labels") or {}
        labels = [lab for lab, _ in sorted(labels_map.items(), key=lambda kv: kv[1])]
        lora = bool(cfg.get("lora", True))
        # with LoRA the head comes with the adapter: the base model's lack of one is no news
        head = ["classifier.", "score."] if lora else []
        model = _from(task, base if lora else saved, labels, cfg.get("pooling", "cls"), head)
        if lora:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, saved).merge_and_unload()
        tok = AutoTokenizer.from_pretrained(saved)
        path = ref
    else:
        task = task or ("classification" if ref == "minilm" else "sft")
        path = resolve_model(ref, task)
        if ref and not os.path.exists(path) and ref not in ("smollm2", "minilm"):
            raise TamisError(f"no such model folder or tamis run: {ref}")
        if ref and os.path.isdir(ref) and not os.path.isfile(os.path.join(ref, "config.json")):
            why = (
                " (it holds only a --dry-run's preflight.json: train without --dry-run first)"
                if os.path.isfile(os.path.join(ref, "preflight.json"))
                else ""
            )
            raise TamisError(
                f"{ref} is neither a tamis run (no run.json) nor a model folder (no config.json)"
                + why
            )
        tok = AutoTokenizer.from_pretrained(path)
        model = _from(task, path, [])
        labels = []
        if task == "classification":
            id2label = getattr(model.config, "id2label", {}) or {}
            labels = [str(id2label[i]) for i in sorted(id2label)]
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model.eval()
    return LoadedModel(task, model, tok, path, base, labels, max_length)


def _from(
    task: str, path: str, labels: list[str], pooling: str = "cls", expected: Sequence[str] = ()
) -> Any:
    if task == "classification":
        from transformers import AutoModelForSequenceClassification

        kw: dict[str, Any] = {}
        if labels:
            kw = {
                "num_labels": len(labels),
                "id2label": dict(enumerate(labels)),
                "label2id": {lab: i for i, lab in enumerate(labels)},
            }
        from tamis.models.loading import from_pretrained

        def mean_pooled(model: Any) -> bool:
            return pooling == "mean" or getattr(model.config, "tamis_pooling", None) == "mean"

        # a mean-pooled model's pooler is replaced, so never saved: its absence is no news (a
        # missing head is: a base model's head is random)
        model = from_pretrained(
            AutoModelForSequenceClassification,
            path,
            expected,
            after=lambda m: ["pooler."] if mean_pooled(m) else [],
            **kw,
        )
        if mean_pooled(model):
            from tamis.models.pooling import use_mean_pooling

            use_mean_pooling(model)
        return model
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path)


def classify(lm: LoadedModel, records: list[Record], batch_size: int = 64) -> list[str]:
    """The predicted label of each record."""
    import torch

    out: list[str] = []
    from tamis.train.data import classification_text

    texts = [classification_text(r) for r in records]
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            enc = lm.tok(
                texts[i : i + batch_size],
                truncation=True,
                max_length=lm.max_length,
                padding=True,
                return_tensors="pt",
            )
            logits = lm.model(**enc).logits
            out.extend(lm.labels[j] if lm.labels else str(j) for j in logits.argmax(-1).tolist())
    return out


def prompt_messages(r: Record) -> tuple[list[dict[str, str]], str]:
    """The conversation up to its last assistant turn, and that turn's text (the reference)."""
    from tamis.train.data import _messages

    msgs = _messages(r)
    last = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
    if last is None:
        return msgs, ""
    return msgs[:last], msgs[last]["content"]


def generate(
    lm: LoadedModel, records: list[Record], max_new_tokens: int = 256, batch_size: int = 8
) -> list[str]:
    """Greedy answers to each record's prompt (the conversation before its last answer)."""
    return generate_answers(lm, records, max_new_tokens, batch_size)[0]


def _eos_ids(lm: LoadedModel) -> set[int]:
    ids: set[int] = set()
    for src in (getattr(lm.model, "generation_config", None), lm.model.config, lm.tok):
        e = getattr(src, "eos_token_id", None)
        ids.update([e] if isinstance(e, int) else (e or []))
    return ids


def generate_answers(
    lm: LoadedModel, records: list[Record], max_new_tokens: int = 256, batch_size: int = 8
) -> tuple[list[str], list[bool]]:
    """Greedy answers, and for each whether it ran to `max_new_tokens` without ending (a cut
    made by the evaluator's budget, not by the model)."""
    import torch

    tok = lm.tok
    prompts = [
        tok.apply_chat_template(prompt_messages(r)[0], tokenize=False, add_generation_prompt=True)
        for r in records
    ]
    eos = _eos_ids(lm)
    old_side = tok.padding_side
    tok.padding_side = "left"
    out: list[str] = []
    at_limit: list[bool] = []
    try:
        with torch.inference_mode():
            for i in range(0, len(prompts), batch_size):
                enc = tok(
                    prompts[i : i + batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                )
                gen = lm.model.generate(
                    **enc,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                )
                new = gen[:, enc["input_ids"].shape[1] :]
                out.extend(t.strip() for t in tok.batch_decode(new, skip_special_tokens=True))
                for row in new.tolist():
                    at_limit.append(len(row) >= max_new_tokens and not eos.intersection(row))
    finally:
        tok.padding_side = old_side
    return out, at_limit


def token_nll(
    lm: LoadedModel, records: list[Record], batch_size: int = 8
) -> tuple[list[float], list[int]]:
    """Summed negative log-likelihood and token count per record, over the tokens training
    would train (assistant answers); over all tokens for records with no answer (plain text)."""
    import torch

    from tamis.train.data import IGNORE, sft_example

    feats = []
    for r in records:
        ex = sft_example(r, lm.tok, lm.max_length)
        labels = list(ex.labels)
        if all(x == IGNORE for x in labels):
            labels = list(ex.input_ids)
        feats.append((ex.input_ids, labels))
    # batches of like lengths: in input order, padding is 39% of the tokens of gsm8k's answers
    # (the forward pass costs by the padded token), sorted 3%
    order = sorted(range(len(feats)), key=lambda k: len(feats[k][0]))
    nll = [0.0] * len(feats)
    count = [0] * len(feats)
    pad = lm.tok.pad_token_id
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            where = order[i : i + batch_size]
            chunk = [feats[k] for k in where]
            n = max(len(ids) for ids, _ in chunk)
            ids = torch.tensor([a + [pad] * (n - len(a)) for a, _ in chunk])
            mask = torch.tensor([[1] * len(a) + [0] * (n - len(a)) for a, _ in chunk])
            lab = torch.tensor([b + [IGNORE] * (n - len(b)) for _, b in chunk])
            logits = lm.model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = lab[:, 1:]
            lp = torch.log_softmax(logits, -1)
            keep = target != IGNORE
            got = lp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
            sums, kept = (-(got * keep).sum(1)).tolist(), keep.sum(1).tolist()
            for k, v, c in zip(where, sums, kept, strict=True):
                nll[k], count[k] = v, c
    return nll, count


def perplexity(nll: list[float], count: list[int]) -> float:
    total = sum(count)
    return math.exp(sum(nll) / total) if total else float("nan")
