"""py3langid's identifier with a vectorised feature walk and a lean memory footprint.

Same results, bit for bit, as ``py3langid.langid.LanguageIdentifier`` with ``norm_probs=True``
(tests/unit/streams/test_normalize.py compares them); cheaper in two places:

* the feature walk: py3langid runs its byte automaton one byte at a time in Python. The
  automaton is an Aho–Corasick machine over byte n-grams of at most ``DFA_DEPTH`` bytes, so the
  state after a byte depends only on the last ``DFA_DEPTH`` bytes. Running it from the start
  state over every position's window at once takes ``DFA_DEPTH`` numpy gathers instead of one
  Python step per byte; the feature counts keep py3langid's first-visit order, so the scores
  are summed in the same order;
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
    __slots__ = ("_codes_next", "_codes_out", "_codes_rowbase", "_table_bits")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        move = self.tk_nextmove
        self._codes_next = np.frombuffer(move, dtype=np.dtype(f"u{move.itemsize}"))
        self._codes_rowbase = np.asarray(self._rowbase, dtype=np.intp)
        self._codes_out = np.asarray(self.tk_output, dtype=np.intp)
        # py3langid's Python structures of the automaton (about 7 MB) are only read by its
        # per-byte walk, which visit_counts replaces: let them go
        for name in ("tk_output", "_rowbase"):  # py3langid's slots
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
        nextmove, rowbase = self._codes_next, self._codes_rowbase
        for lag in range(min(DFA_DEPTH, size) - 1, -1, -1):
            states[lag:] = nextmove[rowbase[states[lag:]] + codes[: size - lag]]
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
