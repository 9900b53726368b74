"""The Record: one example, whatever format it came from.

A record keeps the original object (`raw`) and, for every piece of text it exposes as a turn, the
path of that text inside `raw`. Writing a record back sets each turn's content at its path in a copy
of `raw`, so a record no operator touched is written back as the very same JSON object, key order
included; a normalised record differs only in the texts that changed.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any

# A path into the raw object: keys and list indexes, e.g. ("messages", 2, "content").
Path = tuple[str | int, ...]

ROLES = ("system", "user", "assistant", "tool", "text")


@dataclass(slots=True)
class Source:
    """Where a record came from: the file as given and its 1-based line (or row / element)."""

    file: str
    line: int


@dataclass(slots=True)
class Turn:
    """One role-tagged piece of text. `path` says where it lives in the raw object.

    `content` is normally a string; it is whatever the input held when that is not a string
    (None, a number, a list of parts) so that the structure operator can report it.
    """

    role: str
    content: Any
    path: Path
    is_input: bool = False  # an instruction's optional input (Alpaca's `input`, Dolly's `context`)
    # a chat message's fields besides role and content (`tool_calls`, `tool_call_id`, `name`,
    # `weight`): carried to exports; a message with them is never merged with its neighbour
    extra: dict[str, Any] | None = None

    @property
    def field(self) -> str:
        """The path written the way people read it: `messages[2].content`, `output`."""
        out = ""
        for p in self.path:
            out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
        return out

    @property
    def calls_tools(self) -> bool:
        """An assistant message that calls tools (its content may then be empty or null)."""
        return self.role == "assistant" and bool(self.extra and self.extra.get("tool_calls"))

    @property
    def calls_text(self) -> str:
        """The tool calls of the message written out, `name(arguments)` a line each: what it says
        beside its content, for the duplicate checks and embeddings ('' without calls)."""
        if not self.calls_tools:
            return ""
        out = []
        for call in self.extra["tool_calls"]:  # type: ignore[index]
            fn = call.get("function", call) if isinstance(call, dict) else {}
            args = fn.get("arguments", "")
            args = args if isinstance(args, str) else json.dumps(args, sort_keys=True)
            out.append(f"{fn.get('name', '')}({args})")
        return "\n".join(out)

    @property
    def text(self) -> str:
        """The content as text: '' for missing content, str() of anything else."""
        if isinstance(self.content, str):
            return self.content
        return "" if self.content is None else str(self.content)


@dataclass(slots=True)
class Record:
    """One example: id, ordered turns, optional label, and the untouched original object.

    `meta` holds the input's fields that are neither turns nor the label, untouched.
    `format` is the name of the format the record was read as; writing back uses it.
    """

    id: Any
    turns: list[Turn]
    raw: Any
    format: str
    source: Source
    label: Any = None
    label_path: Path | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def texts(self, role: str | None = None) -> list[str]:
        """Texts of the turns, optionally only those of one role."""
        return [t.text for t in self.turns if role is None or t.role == role]

    def messages(self) -> list[dict[str, Any]]:
        """The record as a chat: consecutive turns of one role joined by a blank line.

        An Alpaca record becomes [user: instruction + input, assistant: output]; plain text and
        text+label records become one `user` message. A message with fields of its own (a tool
        call, a tool result's `tool_call_id`) keeps them, stands alone, and a tool call whose
        content was null stays null.
        """
        out: list[dict[str, Any]] = []
        for t in self.turns:
            role = "user" if t.role == "text" else t.role
            text = t.text
            if t.extra:
                content = None if t.content is None and t.calls_tools else text
                out.append({"role": role, "content": content, **t.extra})
                continue
            if out and out[-1]["role"] == role and len(out[-1]) == 2:
                if text:
                    out[-1]["content"] = (
                        f"{out[-1]['content']}\n\n{text}" if out[-1]["content"] else text
                    )
            else:
                out.append({"role": role, "content": text})
        return out

    def non_text_turn(self) -> Turn | None:
        """The first turn holding a list or an object (an image, audio or file part): what a text
        fine-tune cannot take, and what no export can write as text."""
        return next((t for t in self.turns if isinstance(t.content, list | dict)), None)

    def original(self, turn: Turn) -> Any:
        """The turn's content as the input held it, before any operator changed it."""
        return _get(self.raw, turn.path)

    def to_raw(self) -> Any:
        """The original object with the (possibly changed) turn contents put back in place."""
        changed = [t for t in self.turns if not _same(_get(self.raw, t.path), t.content)]
        if not changed:
            return self.raw
        out = copy.deepcopy(self.raw)
        for t in changed:
            before = _get(out, t.path)
            if isinstance(t.content, str) and parts_text(before) is not None:
                # several text parts read as one text: a changed text goes back as one part
                _set(out, t.path, [{"type": "text", "text": t.content}])
            else:
                _set(out, t.path, t.content)
        return out

    def content_key(self) -> str:
        """A stable text of what the record says (roles + contents + label), for hashing."""
        parts = [
            f"{t.role}\x1f{t.text}"
            + (f"\x1f{json.dumps(t.extra, sort_keys=True)}" if t.extra else "")
            for t in self.turns
        ]
        if self.label is not None:
            parts.append(f"label\x1f{self.label}")
        return "\x1e".join(parts)


def parts_text(content: Any) -> str | None:
    """The text of an OpenAI content list made only of text parts
    (`[{"type": "text", "text": ...}, ...]`), the parts joined by a line break; None for
    anything else (a string, or a list holding an image, audio or file part)."""
    if not isinstance(content, list) or not content:
        return None
    texts = []
    for part in content:
        if not (isinstance(part, dict) and part.get("type") == "text"):
            return None
        text = part.get("text")
        if not isinstance(text, str):
            return None
        texts.append(text)
    return "\n".join(texts)


def _same(before: Any, content: Any) -> bool:
    """Whether a turn's content is still what the input held at its path."""
    if before is content:
        return True
    return isinstance(before, list) and isinstance(content, str) and parts_text(before) == content


def _get(obj: Any, path: Path) -> Any:
    for p in path:
        try:
            obj = obj[p]
        except (KeyError, IndexError, TypeError):
            return None
    return obj


def _set(obj: Any, path: Path, value: Any) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value
