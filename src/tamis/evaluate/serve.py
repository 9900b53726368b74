"""`tamis serve`: a small OpenAI-compatible chat completions server for a local causal LM.

It lets a team run the HTTP judge (or any OpenAI client) against a model on their own machine:
`POST /v1/chat/completions` with greedy decoding and, when asked, `logprobs` / `top_logprobs`
per generated token in the OpenAI shape; `GET /v1/models`. One request at a time.
"""

import math
import threading
import time
import uuid
from typing import Any


def create_app(model: str | None = None) -> Any:
    """The FastAPI app serving `model` (default: the offline SmolLM2)."""
    import torch
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel

    from tamis.models.causal_lm import load_causal_lm

    lm, tok = load_causal_lm(model)
    lm.eval()
    name = model or "smollm2"
    lock = threading.Lock()
    app = FastAPI(title="tamis serve", version="1")

    class ChatRequest(BaseModel):
        model: str | None = None
        messages: list[dict[str, Any]]
        max_tokens: int | None = 256
        temperature: float | None = 0.0
        logprobs: bool | None = False
        top_logprobs: int | None = 0

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "tamis"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict[str, Any]:
        if not req.messages:
            raise HTTPException(400, "messages is empty")
        prompt = tok.apply_chat_template(req.messages, tokenize=False, add_generation_prompt=True)
        enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
        k = max(0, min(int(req.top_logprobs or 0), 20))
        with lock, torch.inference_mode():
            out = lm.generate(
                **enc,
                max_new_tokens=max(1, min(int(req.max_tokens or 256), 2048)),
                do_sample=False,
                pad_token_id=tok.pad_token_id or tok.eos_token_id,
                output_scores=bool(req.logprobs),
                return_dict_in_generate=True,
            )
        new = out.sequences[0, enc["input_ids"].shape[1] :]
        ids = new.tolist()
        eos = tok.eos_token_id
        finish = "stop" if ids and ids[-1] == eos else "length"
        text = tok.decode(new, skip_special_tokens=True)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text},
            "finish_reason": finish,
        }
        if req.logprobs:
            content = []
            for tid, scores in zip(ids, out.scores, strict=False):
                if tid == eos:
                    break
                lp = torch.log_softmax(scores[0].float(), -1)
                top = torch.topk(lp, k) if k else None
                content.append(
                    {
                        "token": tok.decode([tid]),
                        "logprob": _finite(float(lp[tid])),
                        "top_logprobs": [
                            {"token": tok.decode([int(i)]), "logprob": _finite(float(v))}
                            for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)
                        ]
                        if top is not None
                        else [],
                    }
                )
            choice["logprobs"] = {"content": content}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": name,
            "choices": [choice],
            "usage": {
                "prompt_tokens": int(enc["input_ids"].shape[1]),
                "completion_tokens": len(ids),
                "total_tokens": int(enc["input_ids"].shape[1]) + len(ids),
            },
        }

    return app


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -1e9


def serve(model: str | None = None, host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn

    uvicorn.run(create_app(model), host=host, port=port, log_level="warning")
