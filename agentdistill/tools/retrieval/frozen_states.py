"""A frozen encoder's token states, computed once per distinct text while colbert-ai trains the ColBERT head.

    with frozen_encoder_states() as stats:              # around colbert.training.training.train(...)
        train(config, triples, queries, collection)
    stats.computed, stats.reused                        # rows encoded vs rows served from the cache

When only the 384->128 head learns (the encoder frozen for every step), the encoder's output for a given token
sequence never changes, yet colbert's loop runs the full encoder for every query and passage of every step - over
90% of a step's time on CPU. Here `ColBERT.bert` is replaced for the duration by a module that keys each row on its
token ids and attention mask (trailing [PAD] positions stripped, so the same passage padded to different batch lengths
is one entry), runs the encoder only on rows it has not seen, in eval mode (no dropout: the states a frozen encoder
gives at indexing time) and without gradients, and returns the cached states; pad positions get zeros, which
colbert's doc mask zeroes anyway. `cache=False` computes every row the same way without storing it: the reference
the cached training is tested against (tests/tools/retrieval/test_frozen_states.py).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass


@dataclass
class CacheStats:
    computed: int = 0
    reused: int = 0


class _FrozenStates:
    def __init__(self, encoder, pad_id: int, cache: bool, stats: CacheStats, dtype):
        self.encoder, self.pad_id, self.cache, self.stats, self.dtype = encoder, pad_id, cache, stats, dtype
        self.store: dict[bytes, object] = {}

    def parameters(self, *args, **kwargs):  # colbert's set_bert_grad walks these (they stay frozen)
        return self.encoder.parameters(*args, **kwargs)

    def __call__(self, input_ids, attention_mask=None, **kwargs):
        import torch

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        keys, lengths = [], []
        for ids, mask in zip(input_ids, attention_mask):
            n = len(ids)
            while n > 0 and int(ids[n - 1]) == self.pad_id and int(mask[n - 1]) == 0:
                n -= 1
            lengths.append(n)
            keys.append(ids[:n].numpy().tobytes() + b"|" + mask[:n].numpy().tobytes())
        first: dict[bytes, int] = {}  # each unseen sequence once, even when a batch holds it twice
        for i, key in enumerate(keys):
            if key not in self.store and key not in first:
                first[key] = i
        missing = list(first.values())
        seen_now = {}
        if missing:
            was_training = self.encoder.training
            self.encoder.eval()
            with torch.no_grad():
                rows = torch.tensor(missing)
                states = self.encoder(input_ids[rows], attention_mask=attention_mask[rows])[0]
            self.encoder.train(was_training)
            for row, i in enumerate(missing):
                seen_now[keys[i]] = states[row, :lengths[i]].to(self.dtype)
            self.stats.computed += len(seen_now)
        if self.cache:
            self.store.update(seen_now)
        self.stats.reused += sum(1 for key in keys if key not in seen_now)
        width, hidden = input_ids.shape[1], self.encoder.config.hidden_size
        out = torch.zeros(len(keys), width, hidden, dtype=torch.float32)
        for i, key in enumerate(keys):
            state = seen_now.get(key)
            out[i, :lengths[i]] = (state if state is not None else self.store[key]).to(torch.float32)
        return (out,)


@contextlib.contextmanager
def frozen_encoder_states(cache: bool = True, dtype=None):
    """Within the block, every colbert ColBERT model's `bert` serves frozen, cached token states (see above).

    dtype: how states are stored (default float32: identical to recomputing; float16 halves the memory)."""
    import torch

    from agentdistill.tools.retrieval import compat

    compat.ensure_colbert()
    from colbert.modeling.base_colbert import BaseColBERT

    stats = CacheStats()
    original = BaseColBERT.bert
    wrappers: dict[int, _FrozenStates] = {}

    def bert(self):
        encoder = self.model.LM
        if id(encoder) not in wrappers:
            pad = getattr(self, "pad_token", None)
            pad = encoder.config.pad_token_id if pad is None else pad
            wrappers[id(encoder)] = _FrozenStates(encoder, int(pad or 0), cache, stats, dtype or torch.float32)
        return wrappers[id(encoder)]

    BaseColBERT.bert = property(bert)
    try:
        yield stats
    finally:
        BaseColBERT.bert = original
