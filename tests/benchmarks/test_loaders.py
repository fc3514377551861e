"""Loaders on every shipped question file, named benchmarks, data-folder discovery, and format errors."""

import json

import dspy
import pytest

from agentdistill.benchmarks.loaders import (BenchmarkFormatError, BenchmarkNotFoundError, benchmark_file,
                                             find_data_dir, load_benchmark, load_file, train_test_split)

DATA = find_data_dir()
SHIPPED = sorted(DATA.glob("*/*.json"))
EXPECTED = {  # file stem prefix -> (examples, family); math_*_1000 files hold 2 questions with a null answer
    "2wikimultihopqa_500": (500, "factual"), "aime_90": (90, "math"), "gsm_hard_500": (500, "math"),
    "hotpotqa_500": (500, "factual"), "math_500": (500, "math"), "musique_500": (500, "factual"),
    "hotpotqa_1000": (1000, "factual"), "math_1000": (998, "math"), "math_medium_1000": (998, "math"),
}


def test_every_shipped_file_is_covered():
    assert len(SHIPPED) == 9
    assert {"_".join(p.stem.split("_")[:-1]) for p in SHIPPED} == set(EXPECTED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_load_every_shipped_file(path):
    n, family = EXPECTED["_".join(path.stem.split("_")[:-1])]
    examples = load_file(path)
    assert len(examples) == n
    raw = {str(e["id"]): e for e in json.loads(path.read_text())["examples"]}
    for ex in examples:
        assert isinstance(ex, dspy.Example)
        assert set(ex.inputs().keys()) == {"question"}
        assert ex.family == family
        assert isinstance(ex.answer, str) and ex.answer
        assert ex.question == raw[ex.id]["question"]
    assert len({ex.id for ex in examples}) == n  # ids are unique within a file


@pytest.mark.parametrize("name,n,family", [("hotpotqa", 500, "factual"), ("musique", 500, "factual"),
                                           ("2wikimultihopqa", 500, "factual"), ("math500", 500, "math"),
                                           ("gsm-hard", 500, "math"), ("aime", 90, "math")])
def test_named_test_sets(name, n, family):
    examples = load_benchmark(name)
    assert len(examples) == n and all(e.family == family and e.benchmark == name for e in examples)


def test_train_split_and_limit_and_aliases():
    assert len(load_benchmark("math", split="train")) == 998
    assert benchmark_file("math", "train").name.startswith("math_1000")  # not math_medium
    assert benchmark_file("math_medium", "train").name.startswith("math_medium_1000")
    assert len(load_benchmark("hotpotqa", split="train", limit=7)) == 7
    assert load_benchmark("GSM_Hard", limit=1)[0].benchmark == "gsm-hard"


def test_gsm_hard_float_answers_become_clean_strings():
    ex = load_benchmark("gsm-hard", limit=1)[0]
    assert ex.answer == "13138980"  # stored as the float 13138980.0


def test_bamboogle_and_olymmath_load_from_a_user_folder(tmp_path):
    (tmp_path / "test").mkdir()
    rows = [{"id": "b1", "question": "Who was president when the Eiffel Tower opened?", "answer": "Sadi Carnot"}]
    (tmp_path / "test" / "bamboogle_125_20250101.json").write_text(json.dumps({"metadata": {}, "examples": rows}))
    math_rows = [{"id": "o1", "question": "Compute 1+1.", "answer": "2"}]
    (tmp_path / "test" / "olymmath.json").write_text(json.dumps({"metadata": {}, "examples": math_rows}))
    bam = load_benchmark("bamboogle", data_dir=tmp_path)
    assert bam[0].family == "factual" and bam[0].answer == "Sadi Carnot"
    assert load_benchmark("olymmath", data_dir=tmp_path)[0].family == "math"


@pytest.mark.parametrize("file_name", ["olymath_200_20250511.json", "olymmath_200_20250511.json"])
def test_olymmath_under_the_papers_file_name_and_the_datasets(tmp_path, file_name):
    # the paper ships OlymMATH as olymath_200_20250511.json (one "m"); the benchmark is named olymmath
    (tmp_path / "test").mkdir()
    payload = {"metadata": {"dataset_info": {"name": "OlymMATH", "split": "test"}},
               "examples": [{"id": "olym-1", "question": "Find the least n with n^2 > 50.", "answer": "8"},
                            {"id": "olym-2", "question": "Compute 2^{10} - 1000.", "answer": "24"}]}
    (tmp_path / "test" / file_name).write_text(json.dumps(payload))
    assert benchmark_file("olymmath", data_dir=tmp_path).name == file_name
    examples = load_benchmark("olymmath", data_dir=tmp_path)
    assert [(e.id, e.answer, e.family, e.benchmark) for e in examples] == [
        ("olym-1", "8", "math", "olymmath"), ("olym-2", "24", "math", "olymmath")]
    assert load_benchmark("olymath", data_dir=tmp_path, limit=1)[0].id == "olym-1"  # the paper's spelling as a name
    assert load_file(tmp_path / "test" / file_name)[0].benchmark == "olymmath"


def test_olymmath_newest_file_wins_across_spellings(tmp_path):
    (tmp_path / "test").mkdir()
    for name, answer in [("olymmath_200_20250101.json", "old"), ("olymath_200_20250511.json", "new")]:
        rows = [{"id": "1", "question": "q?", "answer": answer}]
        (tmp_path / "test" / name).write_text(json.dumps({"metadata": {}, "examples": rows}))
    assert load_benchmark("olymmath", data_dir=tmp_path)[0].answer == "new"


def test_missing_named_set_says_where_and_how(tmp_path):
    (tmp_path / "test").mkdir()
    with pytest.raises(BenchmarkNotFoundError, match=r"bamboogle.*AGENTDISTILL_DATA"):
        load_benchmark("bamboogle", data_dir=tmp_path)
    with pytest.raises(BenchmarkNotFoundError, match="'olymmath_<count>_<date>.json' or 'olymath_<count>_<date>.json'"):
        load_benchmark("olymmath", data_dir=tmp_path)
    with pytest.raises(BenchmarkNotFoundError, match="Did you mean 'hotpotqa'"):
        load_benchmark("hotpotq")
    with pytest.raises(BenchmarkNotFoundError, match="no 'train' split"):
        load_benchmark("aime", split="train")


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENTDISTILL_DATA", str(DATA.parent))  # the data/ folder is accepted too
    assert find_data_dir() == DATA
    monkeypatch.setenv("AGENTDISTILL_DATA", str(tmp_path))
    with pytest.raises(BenchmarkNotFoundError, match=r"\$AGENTDISTILL_DATA.*test/"):
        find_data_dir()


def _write(tmp_path, payload, name="bad.json"):
    p = tmp_path / name
    p.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return p


@pytest.mark.parametrize("payload,pattern", [
    ("{not json", r"bad\.json: not valid JSON \(line 1"),
    ({"metadata": {}, "items": []}, r"bad\.json: top-level object has no 'examples' field \(found: metadata, items\)"),
    ({"examples": {"a": 1}}, r"'examples' must be a list"),
    ({"examples": [{"id": "q1", "question": "x?", "answer": "1"}, {"id": "q2", "answer": "2"}]},
     r"bad\.json: example #1 \(id 'q2'\): missing field 'question'"),
    ({"examples": [{"id": 7, "question": "", "answer": "2"}]}, r"example #0 \(id 7\): field 'question' must be"),
    ({"examples": [{"id": 7, "question": "q?", "answer": {"x": 1}}]}, r"field 'answer' must be a string or number"),
    ({"examples": ["just a string"]}, r"example #0 must be an object"),
])
def test_format_errors_name_file_example_and_field(tmp_path, payload, pattern):
    with pytest.raises(BenchmarkFormatError, match=pattern):
        load_file(_write(tmp_path, payload))


def test_null_answers_skipped_or_strict(tmp_path, caplog):
    p = _write(tmp_path, {"examples": [{"id": "a", "question": "q?", "answer": None},
                                       {"id": "b", "question": "q2?", "answer": "4"}]}, "math_x.json")
    assert [e.id for e in load_file(p)] == ["b"]
    assert "skipped 1 example(s)" in caplog.text
    with pytest.raises(BenchmarkFormatError, match=r"example #0 \(id 'a'\): field 'answer' is empty"):
        load_file(p, strict=True)


def test_train_test_split_is_seeded_and_disjoint():
    exs = load_benchmark("aime")
    train, test = train_test_split(exs, test_size=0.25, seed=1)
    assert len(test) == 22 and len(train) == 68
    assert not {e.id for e in train} & {e.id for e in test}
    assert [e.id for e in train_test_split(exs, 0.25, seed=1)[1]] == [e.id for e in test]


@pytest.mark.parametrize("limit", [0, -1])
def test_a_limit_below_one_is_refused(limit):
    # it used to return one example: the check ran after the first one was kept
    with pytest.raises(ValueError, match=f"limit={limit}: pass a positive number of examples, or None for all"):
        load_benchmark("gsm-hard", limit=limit)
