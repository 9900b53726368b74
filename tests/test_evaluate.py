"""`tamis eval`: metrics against scikit-learn, generation metrics on gsm8k, the G-Eval judge
through a real local OpenAI-compatible server, base comparison and the forgetting check."""

from __future__ import annotations

import csv
import json
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import DATA, banking_rows

pytest.importorskip("sklearn")


def _banking_labels() -> list[str]:
    with open(DATA / "banking77" / "test.csv", encoding="utf-8") as fh:
        return [r["category"] for r in csv.DictReader(fh)]


def test_classification_metrics_match_scikit_learn() -> None:
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    from tamis.evaluate.metrics import classification_metrics

    truth = _banking_labels()
    rng = random.Random(0)
    classes = sorted(set(truth))
    pred = [t if rng.random() < 0.8 else rng.choice(classes) for t in truth]  # 80% right
    m = classification_metrics(truth, pred)
    assert m["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    p, r, f, _ = precision_recall_fscore_support(truth, pred, average="macro", zero_division=0)
    assert (m["macro_precision"], m["macro_recall"], m["macro_f1"]) == pytest.approx((p, r, f))
    pc, rc, fc, sc = precision_recall_fscore_support(
        truth, pred, labels=m["labels"], average=None, zero_division=0
    )
    lab = m["labels"][3]
    assert m["per_class"][lab]["f1"] == pytest.approx(fc[3])
    assert m["per_class"][lab]["support"] == sc[3]
    assert np.array_equal(
        np.array(m["confusion"]), confusion_matrix(truth, pred, labels=m["labels"])
    )


def test_generation_metrics_on_gsm8k_answers(gsm8k: list[dict]) -> None:
    from tamis.evaluate.metrics import answer_scores, chrf, final_number, rouge_l

    refs = [o["output"] for o in gsm8k[:20]]
    assert final_number(refs[0]) == "72"  # "... = 72 clips altogether in April and May."
    assert final_number("She pays $1,200.50 in total") == "1200.5"
    assert final_number("no number here") is None
    right = "Natalia sold 24 clips in May, so 48 + 24 = 72."
    assert answer_scores(right, refs[0]) == {"exact_match": 1.0, "contains_answer": 1.0}
    early = "The answer is 72 clips. In May she sold 24."  # right number, not last
    assert answer_scores(early, refs[0]) == {"exact_match": 0.0, "contains_answer": 1.0}
    assert answer_scores("Paris.", "paris")["exact_match"] == 1.0  # text answers: normalised
    # ROUGE-L and chrF: identical texts score the maximum, another answer scores lower
    assert rouge_l(refs[:3], refs[:3]) == pytest.approx([1.0, 1.0, 1.0])
    wrong = refs[1:4]
    assert max(rouge_l(wrong, refs[:3])) < 0.6
    corpus, per = chrf(refs[:3], refs[:3])
    assert corpus == pytest.approx(100.0) and per == pytest.approx([100.0] * 3)
    assert chrf(wrong, refs[:3])[0] < 50


def test_paired_bootstrap_separates_a_real_difference_from_noise() -> None:
    from tamis.evaluate.metrics import paired_bootstrap

    rng = np.random.default_rng(0)
    a = (rng.random(1000) < 0.80).astype(float)
    b = (rng.random(1000) < 0.70).astype(float)
    res = paired_bootstrap(lambda i: (a[i].mean(), b[i].mean()), 1000, seed=0)
    assert res["significant"] and res["ci_low"] < res["diff"] < res["ci_high"]
    assert 0.05 < res["diff"] < 0.15
    same = paired_bootstrap(lambda i: (a[i].mean(), a[i].mean()), 1000, seed=0)
    assert not same["significant"] and same["diff"] == 0


def test_score_token_distribution_from_openai_logprobs() -> None:
    from tamis.evaluate.judge import score_probs_from_logprobs, weighted_score

    content = [
        {"token": "Fine", "logprob": -0.1, "top_logprobs": []},
        {"token": ".\nScore", "logprob": -0.1, "top_logprobs": []},
        {"token": ":", "logprob": -0.1, "top_logprobs": []},
        {
            "token": " 4",
            "logprob": np.log(0.6),
            "top_logprobs": [
                {"token": " 4", "logprob": np.log(0.6)},
                {"token": " 5", "logprob": np.log(0.3)},
                {"token": " 3", "logprob": np.log(0.1)},
            ],
        },
    ]
    probs = score_probs_from_logprobs(content)
    assert probs == pytest.approx({"4": 0.6, "5": 0.3, "3": 0.1})
    assert weighted_score(probs) == pytest.approx(4.2)
    assert score_probs_from_logprobs(content[:3]) is None  # no score token: plain parsing


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server() -> str:
    """`tamis serve` with the offline SmolLM2 on loopback, in its own process."""
    pytest.importorskip("gguf")
    pytest.importorskip("fastapi")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tamis.cli.main", "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    import httpx

    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read().decode()[-2000:])
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("tamis serve did not start")
    yield url
    proc.terminate()
    proc.wait(timeout=30)


def test_http_judge_scores_with_logprobs_from_a_real_local_server(server: str) -> None:
    from tamis.evaluate.judge import HTTPJudge

    judge = HTTPJudge(server, "smollm2", criteria={"correctness": "1: wrong; 5: right"})
    judge.max_new_tokens = 48
    q = "Natalia sold clips to 48 of her friends in April, and then half as many in May. How many clips did she sell altogether?"  # noqa: E501
    good = judge.judge(q, "48 + 24 = 72. She sold 72 clips.", "72")[0]
    assert good.method == "logprobs" and 1.0 <= good.score <= 5.0
    assert good.reasoning  # the judge wrote its reasoning first (a 135M judge reasons poorly)
    # the server speaks the OpenAI shape: top log-probabilities per generated token
    import httpx

    r = httpx.post(
        f"{server}/chat/completions",
        json={
            "model": "smollm2",
            "messages": [{"role": "user", "content": "Say hi"}],
            "max_tokens": 4,
            "logprobs": True,
            "top_logprobs": 3,
        },
        timeout=60,
    ).json()
    tok = r["choices"][0]["logprobs"]["content"][0]
    assert len(tok["top_logprobs"]) == 3 and tok["logprob"] <= 0
    assert r["usage"]["completion_tokens"] >= 1


def test_http_judge_falls_back_to_the_plain_score_without_logprobs(server: str) -> None:
    """A server that ignores `logprobs` (many do): the written score is used and labelled so."""
    from tamis.evaluate.judge import HTTPJudge

    class NoLogprobs(HTTPJudge):
        def _post(self, body: dict) -> dict:
            body = {**body, "logprobs": False}
            return super()._post(body)

    judge = NoLogprobs(server, "smollm2", criteria={"fluency": "1: broken; 5: fluent"})
    judge.max_new_tokens = 64
    j = judge.judge("Say hello.", "Hello! How can I help you today?")[0]
    assert j.method in ("plain", "unparsed")
    assert j.score is None or j.score in (1.0, 2.0, 3.0, 4.0, 5.0)


def test_generation_defects_are_the_answers_own(gsm8k: list[dict], tmp_path: Path) -> None:
    """The clean checks find what a model's answer adds (an empty answer, a merged instruction,
    a refusal, a cut), not what the prompt or the reference already had; a cut made by the token
    limit is the evaluator's, not the model's."""
    from tamis.evaluate.defects import generation_defects, summarise
    from tamis.records.io import Reader

    objs = [dict(o) for o in gsm8k[:3]]
    # a prompt the checks flag whatever the answer: the reference has it, so it is not counted
    objs[2]["instruction"] = "See the attached image. " + objs[2]["instruction"]
    f = tmp_path / "gsm.jsonl"
    f.write_text("".join(json.dumps(o) + "\n" for o in objs))
    recs = list(Reader([str(f)]))
    ref = objs[0]["output"]  # "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = ..."
    other = gsm8k[5]
    answers = {
        "reference": ref,
        "empty": "",
        "merged": f"{ref}\n\n2. Instruction: {other['instruction']}\n2. Output: {other['output']}",
        "refusal": "I'm sorry, but I cannot help with that request.",
        "cut": "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips in April and",
    }
    found = {k: generation_defects([recs[0]], [a], [False])[0] for k, a in answers.items()}
    assert found["reference"] == []
    assert any("empty" in x for x in found["empty"]), found
    assert "heuristics/merged_instructions" in found["merged"]
    assert "heuristics/refusal" in found["refusal"]
    assert found["cut"] == ["heuristics/truncated"]
    # the same cut when generation ran to the token limit: not the model's
    assert generation_defects([recs[0]], [answers["cut"]], [True]) == [[]]
    # the prompt's own finding (a picture the model cannot see) is not put on the answer
    with_ref = generation_defects([recs[2]], [objs[2]["output"]])[0]
    assert with_ref == [] and generation_defects([recs[2]], [""])[0] != []
    s = summarise([found["reference"], found["merged"], found["cut"]], [False, False, True])
    assert s["defect_rate"] == pytest.approx(2 / 3) and s["at_token_limit"] == pytest.approx(1 / 3)
    assert s["by_reason"]["heuristics/truncated"] == 1
    # a check that needs the whole data set is refused before any model is loaded
    from tamis.evaluate.run import evaluate

    with pytest.raises(Exception, match="'exact_dedup' is not a per-record check"):
        evaluate("no-such-model", str(f), str(tmp_path / "e"), defect_ops=["exact_dedup"])


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A short SmolLM2 LoRA run on 16 gsm8k records; 6 other records held out; plain text."""
    pytest.importorskip("gguf")
    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    tmp = tmp_path_factory.mktemp("evalsft")
    gsm = json.loads((DATA / "instruct" / "gsm_8k_train.json").read_text())
    train_f, test_f, general = tmp / "train.jsonl", tmp / "test.jsonl", tmp / "general.jsonl"
    train_f.write_text("".join(json.dumps(o) + "\n" for o in gsm[:16]))
    test_f.write_text(
        "".join(json.dumps({"id": f"t{i}", **o}) + "\n" for i, o in enumerate(gsm[100:106]))
    )
    roles = json.loads((DATA / "instruct" / "gpteacher_roleplay.json").read_text())[:8]
    general.write_text("".join(json.dumps({"text": o["response"]}) + "\n" for o in roles))
    cfg = TrainConfig(
        task="sft",
        train_file=[str(train_f)],
        output=str(tmp / "run"),
        max_steps=6,
        batch_size=2,
        max_length=256,
        learning_rate=3e-3,
        report_to=["none"],
    )
    train(cfg, echo=lambda s: None)
    return tmp / "run", test_f, general


def test_eval_of_a_lora_run_against_its_base_with_the_forgetting_check(
    sft_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from tamis.cli.main import app

    run, test_f, general = sft_run
    out = tmp_path / "eval"
    args = ["eval", str(run), "--data", str(test_f), "-o", str(out), "--base", "smollm2"]
    args += ["--general", str(general), "--max-new-tokens", "48", "--resamples", "200"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code in (0, 1), res.output  # 1: forgetting was found
    m = json.loads((out / "metrics.json").read_text())
    for k in ("perplexity", "exact_match", "contains_answer", "rouge_l", "chrf"):
        assert k in m["model"] and k in m["base"]
    assert m["model"]["n"] == 6
    # fine-tuned on gsm8k: its held-out gsm8k perplexity is below the base model's
    assert m["model"]["perplexity"] < m["base"]["perplexity"]
    ppl = next(r for r in m["comparison"] if r["metric"] == "perplexity")
    assert ppl["ci_low"] <= ppl["diff"] <= ppl["ci_high"] and ppl["diff"] < 0
    f = m["forgetting"]
    assert f["metric"] == "perplexity" and f["before"] > 0 and f["after"] > 0
    assert f["forgot"] == (f["relative_worsening"] > f["bound"])
    assert (res.exit_code == 1) == f["forgot"]
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["id"] for p in preds] == [f"t{i}" for i in range(6)]
    assert all("prediction" in p and "base_prediction" in p for p in preds)
    # generated answers checked by the clean operators; a cut at the token limit is not a defect
    d = m["model"]["defects"]
    assert d["n"] == 6 and m["model"]["defect_rate"] == d["defect_rate"]
    assert d["ops"] == ["structure", "heuristics"] and 0 <= d["at_token_limit"] <= 1
    assert all(isinstance(p["defects"], list) and "at_token_limit" in p for p in preds)
    assert not any("heuristics/truncated" in p["defects"] for p in preds if p["at_token_limit"])
    cut = sum(p["at_token_limit"] for p in preds)  # said on the terminal, not only in the files
    assert (f"{cut} of 6 answers ran to the limit of 48" in " ".join(res.output.split())) == (
        cut > 0
    )
    assert any(r["metric"] == "defect_rate" for r in m["comparison"])
    html = (out / "report.html").read_text()
    assert "Model against base" in html and "Forgetting check" in html and "data:image/png" in html
    assert "Defects in the generated answers" in html


def test_local_judge_in_an_eval_run(sft_run: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from tamis.evaluate.judge import LocalJudge
    from tamis.evaluate.run import evaluate

    run, test_f, _ = sft_run
    judge = LocalJudge(criteria={"correctness": "1: wrong; 5: right"}, max_new_tokens=40)
    res = evaluate(
        str(run),
        str(test_f),
        str(tmp_path / "e"),
        limit=2,
        max_new_tokens=32,
        judge=judge,
        echo=lambda s: None,
    )
    j = res.model["judge"]
    assert j["n"] == 2 and j["criteria"]["correctness"]["methods"] == {"logprobs": 2}
    assert 1.0 <= j["criteria"]["correctness"]["mean"] <= 5.0
    assert "LLM judge" in (tmp_path / "e" / "report.html").read_text()


@pytest.mark.parametrize("lora", [False, True])
def test_classification_eval_matches_scikit_learn_on_its_own_predictions(
    tmp_path: Path, lora: bool
) -> None:
    """A full fine-tune and a LoRA run (head saved with the adapter) reload with their labels."""
    from sklearn.metrics import accuracy_score, f1_score

    from tamis.evaluate.run import evaluate
    from tamis.train import TrainConfig
    from tamis.train.trainer import train

    picked = banking_rows("train.csv", 40)
    random.Random(0).shuffle(picked)
    tr, te = tmp_path / "tr.jsonl", tmp_path / "te.jsonl"
    tr.write_text("".join(json.dumps(r) + "\n" for r in picked[:120]))
    te.write_text("".join(json.dumps(r) + "\n" for r in picked[120:]) + '{"text": "cut off\n')
    cfg = TrainConfig(
        task="classification",
        train_file=[str(tr)],
        output=str(tmp_path / "run"),
        max_steps=10,
        batch_size=16,
        learning_rate=5e-5,
        head_learning_rate=5e-3,
        pooling="mean",
        lora=lora,
        max_length=48,
        report_to=["none"],
    )
    if lora:
        cfg.learning_rate, cfg.max_steps = 2e-3, 16
    train(cfg, echo=lambda s: None)
    said: list[str] = []
    res = evaluate(str(tmp_path / "run"), str(te), str(tmp_path / "e"), echo=said.append)
    # a broken row is named (file and line) and left out; the rest is evaluated
    assert any(f"{te}:41" in m and "unreadable" in m for m in said), said
    preds = [json.loads(x) for x in (tmp_path / "e" / "predictions.jsonl").read_text().splitlines()]
    y = [p["reference"] for p in preds]
    p = [p["prediction"] for p in preds]
    assert len(preds) == 40
    assert res.model["accuracy"] == pytest.approx(accuracy_score(y, p))
    assert res.model["macro_f1"] == pytest.approx(f1_score(y, p, average="macro"))
    assert res.model["accuracy"] > 0.6  # 4 classes: chance is 0.25
    assert "confusion matrix" in (tmp_path / "e" / "report.html").read_text()


def test_eval_names_a_folder_that_is_no_model(tmp_path: Path) -> None:
    """A `train --dry-run` folder (only preflight.json) or a missing path: one clear line, exit 2,
    not a tokenizer traceback."""
    from typer.testing import CliRunner

    from tamis.cli.main import app

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "2+2?", "output": "4"}) + "\n")
    dry = tmp_path / "run"
    dry.mkdir()
    (dry / "preflight.json").write_text("{}")
    for ref, said in ((dry, "train without --dry-run first"), (tmp_path / "nope", "no such")):
        res = CliRunner().invoke(app, ["eval", str(ref), "--data", str(data), "--no-generation"])
        assert res.exit_code == 2, res.output
        assert said in " ".join(res.output.split()), res.output
        assert "Traceback" not in res.output
