"""Bias signals: how often identity terms co-occur with labels and occupations, by normalised
pointwise mutual information (NPMI) over records.

NPMI(x, y) = log(p(x, y) / (p(x) p(y))) / -log p(x, y): 1 when x and y only occur together,
0 when independent, -1 when they never meet. A strong association is not proof of bias (a
banking intent about a "wife's card" is not sexist) but it is where a reviewer should look.
The word lists are short and English; pass your own with `terms=`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

IDENTITY_TERMS: dict[str, dict[str, list[str]]] = {
    "gender": {
        "female": [
            "she",
            "her",
            "hers",
            "herself",
            "woman",
            "women",
            "girl",
            "girls",
            "female",
            "females",
            "mother",
            "mothers",
            "daughter",
            "daughters",
            "wife",
            "wives",
            "sister",
            "sisters",
            "mom",
            "mum",
            "lady",
            "ladies",
            "aunt",
            "grandmother",
        ],
        "male": [
            "he",
            "him",
            "his",
            "himself",
            "man",
            "men",
            "boy",
            "boys",
            "male",
            "males",
            "father",
            "fathers",
            "son",
            "sons",
            "husband",
            "husbands",
            "brother",
            "brothers",
            "dad",
            "gentleman",
            "gentlemen",
            "uncle",
            "grandfather",
        ],
    },
    "religion": {
        "christian": ["christian", "christians", "christianity", "church", "catholic", "catholics"],
        "muslim": ["muslim", "muslims", "islam", "islamic", "mosque"],
        "jewish": ["jewish", "jew", "jews", "judaism", "synagogue"],
        "hindu": ["hindu", "hindus", "hinduism"],
        "buddhist": ["buddhist", "buddhists", "buddhism"],
        "atheist": ["atheist", "atheists", "atheism"],
    },
    "nationality": {
        "american": ["american", "americans"],
        "british": ["british", "english"],
        "chinese": ["chinese"],
        "indian": ["indian", "indians"],
        "mexican": ["mexican", "mexicans"],
        "russian": ["russian", "russians"],
        "german": ["german", "germans"],
        "french": ["french"],
        "african": ["african", "africans"],
        "arab": ["arab", "arabs", "arabic"],
    },
    "age": {
        "young": [
            "young",
            "youth",
            "teen",
            "teens",
            "teenager",
            "teenagers",
            "kid",
            "kids",
            "child",
            "children",
        ],
        "old": [
            "old",
            "elderly",
            "senior",
            "seniors",
            "aged",
            "pensioner",
            "pensioners",
            "retiree",
            "retirees",
        ],
    },
    "ethnicity": {
        "black": ["black", "blacks"],
        "white": ["white", "whites"],
        "asian": ["asian", "asians"],
        "hispanic": ["hispanic", "hispanics", "latino", "latina", "latinos"],
    },
}

OCCUPATIONS = [
    "doctor",
    "nurse",
    "engineer",
    "teacher",
    "lawyer",
    "ceo",
    "secretary",
    "programmer",
    "developer",
    "scientist",
    "pilot",
    "chef",
    "manager",
    "assistant",
    "cleaner",
    "driver",
    "soldier",
    "farmer",
    "artist",
    "writer",
    "police",
    "officer",
    "banker",
    "accountant",
    "cashier",
    "receptionist",
    "professor",
    "student",
    "surgeon",
]


def _presence(texts: Sequence[str], vocab: list[str]) -> Any:
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(
        vocabulary=sorted(set(vocab)), binary=True, lowercase=True, token_pattern=r"(?u)\b\w+\b"
    )
    return vec.transform(texts).tocsc(), vec.vocabulary_


def npmi_table(
    x: Any, y: Any, x_names: list[str], y_names: list[str], min_count: int
) -> list[dict[str, Any]]:
    """NPMI for every (x, y) pair of binary record-level variables met at least min_count times."""
    n = x.shape[0]
    both = np.asarray((x.T @ y).todense(), dtype=float)
    px = np.asarray(x.sum(0)).ravel() / n
    py = np.asarray(y.sum(0)).ravel() / n
    rows = []
    for i, j in zip(*np.nonzero(both >= min_count), strict=True):
        pxy = both[i, j] / n
        if pxy >= 1.0:
            continue
        npmi = float(np.log(pxy / (px[i] * py[j])) / -np.log(pxy))
        rows.append(
            {
                "identity": x_names[i],
                "with": y_names[j],
                "npmi": round(npmi, 4),
                "together": int(both[i, j]),
                "identity_records": int(round(px[i] * n)),
                "with_records": int(round(py[j] * n)),
            }
        )
    return sorted(rows, key=lambda r: -r["npmi"])


def bias_signals(
    texts: Sequence[str],
    labels: Sequence[Any] | None = None,
    terms: dict[str, dict[str, list[str]]] | None = None,
    occupations: Sequence[str] = OCCUPATIONS,
    min_count: int = 5,
    top: int = 20,
) -> dict[str, Any]:
    """Identity-group mentions and their strongest associations with labels and occupations."""
    import scipy.sparse as sp

    terms = terms or IDENTITY_TERMS
    groups = [(f"{axis}:{g}", words) for axis, gs in terms.items() for g, words in gs.items()]
    vocab = [w for _, words in groups for w in words]
    mat, index = _presence(texts, vocab)
    cols = []
    for _, words in groups:
        idx = [index[w] for w in set(words)]
        cols.append((mat[:, idx].sum(1) > 0).astype(np.int8))
    x = sp.csc_matrix(np.hstack([np.asarray(c) for c in cols]))
    names = [g for g, _ in groups]
    mentions = {g: int(x[:, i].sum()) for i, g in enumerate(names)}
    out: dict[str, Any] = {"records": len(texts), "mentions": mentions, "min_count": min_count}
    occ, occ_index = _presence(texts, list(occupations))
    occ_names = sorted(occ_index, key=occ_index.get)
    out["occupations"] = npmi_table(x, occ, names, occ_names, min_count)[:top]
    if labels is not None and any(lab is not None for lab in labels):
        values = sorted({str(v) for v in labels if v is not None})
        pos = {v: i for i, v in enumerate(values)}
        rows = [i for i, v in enumerate(labels) if v is not None]
        y = sp.csc_matrix(
            (
                np.ones(len(rows), np.int8),
                (rows, [pos[str(labels[i])] for i in rows]),
            ),
            shape=(len(texts), len(values)),
        )
        out["labels"] = npmi_table(x, y, names, [f"label:{v}" for v in values], min_count)[:top]
    return out
