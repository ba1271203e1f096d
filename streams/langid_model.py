"""py3langid's identifier with a vectorised feature walk and a lean memory footprint.

Same results, bit for bit, as ``py3langid.langid.LanguageIdentifier`` with ``norm_probs=True``
(tests/unit/streams/test_normalize.py compares them); cheaper in two places:

* the feature walk: py3langid runs its byte automaton one byte at a time in Python. The
  automaton is an Aho–Corasick machine over byte n-grams of at most ``DFA_DEPTH`` bytes, so the
  state after a byte depends only on the last ``DFA_DEPTH`` bytes. Running it from the start
  state over every position's window at once takes ``DFA_DEPTH`` numpy gathers instead of one
  Python step per byte; the feature counts keep py3langid's first-visit order, so the scores
  are summed in the same order;
* the transition table keeps the low 16 bits of each state number and packs the 17th bit
  apart (:func:`split_states`): 21 MB instead of 39. The states are renumbered shallowest
  first, so the first three steps of the walk (states of depth 3 at most: 35,171 of them)
  skip the 17th bit;
* rows of the score table are gathered with ``np.take`` and converted to float32 before the
  product, as numpy's mixed-type product converted them (exactly), so the products are equal.
  The table stays float16 (28 MB; as float32 it took 57 MB, in every stage process), and the
  Python structures of py3langid's per-byte walk (about 7 MB) are dropped. The conversion is
  done on the bits when the table holds only normal numbers (it does): numpy's float16
  ``astype`` goes one element at a time and took half of the scoring.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from py3langid.langid import (
    MODEL_DIR,
    MODEL_FILE,
    RAW_FLOOR,
    LanguageIdentifier,
)
from py3langid.modelio import load_model

DFA_DEPTH = 6
"""The longest state label (in bytes) of the automaton of py3langid 0.4.0's model."""


class FastLanguageIdentifier(LanguageIdentifier):  # type: ignore[misc]
    __slots__ = ("_codes_next", "_codes_next_high", "_codes_out", "_codes_rowbase",
                 "_low_steps", "_table_bits")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        move = np.frombuffer(self.tk_nextmove, dtype=np.dtype(f"u{self.tk_nextmove.itemsize}"))
        rowbase = np.asarray(self._rowbase, dtype=np.intp)
        # states renumbered shallowest first, so that the first steps of the walk, which reach
        # only shallow states, need no 17th bit (low_steps)
        depth = state_depths(move, rowbase)
        order = np.argsort(depth, kind="stable")
        renumber = np.empty_like(order)
        renumber[order] = np.arange(len(order))
        self._codes_next, self._codes_next_high = split_states(move, renumber)
        self._codes_rowbase = rowbase[order]
        self._codes_out = np.asarray(self.tk_output, dtype=np.intp)[order]
        reach = np.cumsum(np.bincount(depth))  # states within depth d: numbers below reach[d]
        self._low_steps = int(np.searchsorted(reach, 1 << 16, side="right")) - 1
        # py3langid's Python structures of the automaton (about 7 MB, and the 39 MB transition
        # table split above) are only read by its per-byte walk, which visit_counts replaces
        for name in ("tk_output", "_rowbase", "tk_nextmove"):  # py3langid's slots
            setattr(self, name, None)
        table = self.nb_ptc
        self._table_bits = (
            table.view(np.uint16)
            if table.dtype == np.float16 and table.ndim == 2 and _only_normal(table)
            else None
        )

    def visit_counts(self, text: bytes) -> Counter[int] | None:
        """``py3langid.langid.visit_counts`` of ``text``: {feature: count}, first visit first."""
        codes = np.frombuffer(text, dtype=np.uint8)
        size = len(codes)
        states = np.zeros(size, dtype=np.intp)
        low, high, rowbase = self._codes_next, self._codes_next_high, self._codes_rowbase
        # step k (from the start state at every position) reaches states of depth <= k
        for step, lag in enumerate(range(min(DFA_DEPTH, size) - 1, -1, -1), start=1):
            moves = rowbase[states[lag:]] + codes[: size - lag]
            states[lag:] = low[moves]
            if high is not None and step > self._low_steps:
                states[lag:] |= high_bits(high, moves) << 16
        features = self._codes_out[states]
        features = features[features >= 0]
        return Counter(features.tolist()) if features.size else None

    def _sparse_score(self, visits: Counter[int], table: Any) -> Any:
        """py3langid's ``_sparse_score`` with ``np.take`` for the row gather (faster than fancy
        indexing, the same rows)."""
        idx = np.fromiter(visits.keys(), dtype=np.intp, count=len(visits))
        counts = np.fromiter(visits.values(), dtype=np.float32, count=len(visits))
        if table is self.nb_ptc and self._table_bits is not None:
            rows = _normal_half_to_single(np.take(self._table_bits, idx, axis=0))
        else:
            rows = np.take(table, idx, axis=0).astype(np.float32)
        return np.log1p(counts) @ rows + self.nb_pc

    def _raw_score(self, text: bytes) -> Any:
        visits = self.visit_counts(text)
        if visits:
            return self._sparse_score(visits, self.nb_ptc)
        fill = 0.0 if self._norm_probs else RAW_FLOOR
        return np.full(len(self.nb_classes), fill, dtype=np.float32)


def state_depths(move: Any, rowbase: Any, chunk: int = 2048) -> Any:
    """Each state's breadth-first depth from the start state (state 0). The successors of a
    level are gathered ``chunk`` states at a time (a whole level's would take 75 MB)."""
    depth = np.full(len(rowbase), -1, dtype=np.intp)
    depth[0] = 0
    frontier = np.zeros(1, dtype=np.intp)
    level = 0
    symbols = np.arange(256)
    while frontier.size:
        level += 1
        reached = np.unique(np.concatenate([
            np.unique(move[(rowbase[frontier[at : at + chunk]][:, None] + symbols).ravel()])
            for at in range(0, frontier.size, chunk)
        ]))
        frontier = reached[depth[reached] < 0].astype(np.intp)
        depth[frontier] = level
    if (depth < 0).any():
        raise ValueError("states the start state never reaches")
    return depth


def split_states(move: Any, renumber: Any, chunk: int = 1 << 20) -> tuple[Any, Any]:
    """The transition table, its states renumbered, as the low 16 bits of each state number
    (uint16) and, when a number needs a 17th bit, that bit packed eight to a byte (else None):
    py3langid's 104,583 states take 17 bits, and the table's 9.8 million uint32 entries 39 MB;
    split, they take 21 MB. Converted a chunk at a time (a whole intp copy would be 78 MB)."""
    top = len(renumber) - 1
    if top >= 1 << 17:
        raise ValueError(f"a state number of {top.bit_length()} bits: more than the split holds")
    if chunk % 8:
        raise ValueError("the chunks must fill whole bytes of the packed bits")
    low = np.empty(len(move), dtype=np.uint16)
    high = np.empty((len(move) + 7) // 8, dtype=np.uint8) if top >= 1 << 16 else None
    for at in range(0, len(move), chunk):
        numbers = renumber[move[at : at + chunk]]
        low[at : at + chunk] = numbers & 0xFFFF
        if high is not None:
            high[at // 8 : (at + len(numbers) + 7) // 8] = np.packbits(numbers >= 1 << 16)
    return low, high


def high_bits(packed: Any, index: Any) -> Any:
    """Bit ``index`` of a big-endian bit array packed by ``np.packbits`` (0 or 1, as intp)."""
    return ((packed[index >> 3] >> (7 - (index & 7))) & 1).astype(np.intp)


def _only_normal(table: Any) -> bool:
    """Does a float16 table hold only normal numbers (no zero, subnormal, inf or nan)?"""
    bits = table.view(np.uint16).reshape(-1)
    step = 1 << 20  # a few MB of temporaries at a time
    for at in range(0, bits.size, step):
        exponent = bits[at : at + step] & 0x7C00
        if ((exponent == 0) | (exponent == 0x7C00)).any():
            return False
    return True


def _normal_half_to_single(half: Any) -> Any:
    """float16 bits (normal numbers only) -> the same values as float32: the sign moves to bit
    31, the exponent is rebiased (15 -> 127), the mantissa is padded with zeros; exact, as
    numpy's ``astype(np.float32)``."""
    bits = half.astype(np.uint32)
    sign = (bits & 0x8000) << 16
    bits &= 0x7FFF
    bits <<= 13
    bits += (127 - 15) << 23
    bits |= sign
    return bits.view(np.float32)


def load_identifier() -> FastLanguageIdentifier:
    """py3langid's bundled model, normalised probabilities."""
    ptc, pc, classes, nextmove, row, output = load_model(MODEL_DIR / MODEL_FILE)
    return FastLanguageIdentifier(
        ptc,  # float16
        np.asarray(pc),
        classes,
        nextmove,
        output,
        norm_probs=True,
        tk_row=row,
    )
