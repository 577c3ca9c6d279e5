"""Needle-in-a-haystack retrieval (RULER S-NIAH style; used for Titans Table 2).

Character-level token ids over a small fixed vocabulary (:data:`NIAH_VOCAB`: id 0 is padding,
ids 1.. are newline and the 95 printable ASCII characters). Generated with numpy from an int
seed (``np.random.default_rng(seed)``), deterministic.

Needle kinds (after RULER, Hsieh et al. 2024):

- ``"passkey"``: ``"The pass key is 48213. Remember it. 48213 is the pass key. "``; question
  ``"What is the pass key? The pass key is "``; answer the digits.
- ``"number"``: ``"One of the special magic numbers for {word} is: 7261934. "``; question
  ``"What is the special magic number for {word} mentioned in the provided text? The special
  magic number for {word} mentioned in the provided text is "``; answer a 7-digit number.
- ``"uuid"``: like ``"number"`` with a random 36-character UUID as the value.

Templates: ``"ruler"`` (the RULER sentences above) or ``"marker"``, a compact form whose needle
and question share one key marker ``=`` that occurs nowhere else in the sequence (not in either
haystack): needle ``"The pass key=48213. "``, question ``"The pass key="``; needle ``"The magic
number for apple=7261934. "``, question ``"The magic number for apple="``; ``"uuid"`` likewise.
The answer then follows the only other ``=``, so copying the tokens after the matching marker
(an induction / associative-recall circuit, as on MQAR) solves it.

Haystacks: ``"noise"`` (RULER's repeated "The grass is green. ..." filler) or
``"shakespeare"`` (a contiguous passage of the vendored tiny-shakespeare at a random offset).

Example:
    >>> from memjax.data import needle_decode, needle_haystack
    >>> batch = needle_haystack(0, batch_size=2, seq_len=128, kind="passkey")
    >>> batch.tokens.shape, batch.answer.shape
    ((2, 128), (2, 5))
    >>> len(needle_decode(batch.answer[0]))
    5
"""

from __future__ import annotations

import string
from typing import NamedTuple

import numpy as np

from memjax.data._common import as_rng
from memjax.data.errors import bad_arg
from memjax.data.synthetic import IGNORE_INDEX

__all__ = ["NIAH_VOCAB", "NeedleBatch", "needle_decode", "needle_encode", "needle_haystack"]

#: characters of token ids 1..96 (id 0 is padding)
NIAH_VOCAB = "\n" + "".join(c for c in string.printable if c not in "\t\r\x0b\x0c\n")
_STOI = {c: i + 1 for i, c in enumerate(NIAH_VOCAB)}
_NOISE = (
    "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. "
)
_WORDS = (
    "apple",
    "river",
    "candle",
    "falcon",
    "garden",
    "harbor",
    "lantern",
    "marble",
    "meadow",
    "orchid",
    "pepper",
    "quartz",
    "saddle",
    "timber",
    "velvet",
    "willow",
    "anchor",
    "bishop",
    "cobalt",
    "dragon",
    "ember",
    "forest",
    "glacier",
    "hammer",
)
_KINDS = ("passkey", "number", "uuid")
_TEMPLATES = ("ruler", "marker")
_HAYSTACKS = ("noise", "shakespeare")


class NeedleBatch(NamedTuple):
    """A batch of needle-in-a-haystack sequences of exactly ``T = seq_len`` tokens.

    Layout: ``haystack[:d] + needle + haystack[d:] + question + answer``.

    - ``tokens``: ``(B, T) int32`` ids (see :data:`NIAH_VOCAB`); the answer fills the last
      ``A`` positions.
    - ``targets``: ``(B, T) int32`` next-token targets on the answer only:
      ``targets[t] = tokens[t + 1]`` for ``t in [T-A-1, T-2]``, -100 elsewhere.
    - ``answer_mask``: ``(B, T) bool``, True on the answer tokens (the last ``A`` positions).
    - ``needle_pos``: ``(B,) int32`` index of the needle sentence's first token.
    - ``value_pos``: ``(B,) int32`` index where the answer value starts inside the needle.
    - ``depth``: ``(B,) float32`` ``needle_pos / haystack length``.
    - ``answer``: ``(B, A) int32`` the answer ids.
    """

    tokens: np.ndarray
    targets: np.ndarray
    answer_mask: np.ndarray
    needle_pos: np.ndarray
    value_pos: np.ndarray
    depth: np.ndarray
    answer: np.ndarray


def needle_encode(text: str) -> np.ndarray:
    """``(len(text),) int32`` ids in ``[1, len(NIAH_VOCAB)]``; characters outside the vocabulary
    raise ``ValueError``.

    Example:
        >>> needle_decode(needle_encode("pass key 42"))
        'pass key 42'
    """
    try:
        return np.fromiter((_STOI[c] for c in text), np.int32, count=len(text))
    except KeyError as e:
        raise bad_arg("text", "characters from NIAH_VOCAB", e.args[0]) from None


def needle_decode(ids) -> str:
    """Inverse of :func:`needle_encode`; padding (0) decodes to nothing."""
    return "".join(NIAH_VOCAB[int(i) - 1] for i in np.asarray(ids).reshape(-1) if int(i) > 0)


def _needle(
    kind: str, rng: np.random.Generator, num_digits: int, template: str = "ruler"
) -> tuple[str, str, str, int]:
    """Returns (needle, question, answer, offset of the answer value inside the needle)."""
    if kind == "passkey":
        value = "".join(str(d) for d in rng.integers(0, 10, size=num_digits))
        if template == "marker":
            return f"The pass key={value}. ", "The pass key=", value, len("The pass key=")
        needle = f"The pass key is {value}. Remember it. {value} is the pass key. "
        question = "What is the pass key? The pass key is "
        return needle, question, value, len("The pass key is ")
    word = _WORDS[int(rng.integers(len(_WORDS)))]
    if kind == "number":
        noun = "number"
        value = str(int(rng.integers(1_000_000, 10_000_000)))
    else:
        noun = "uuid"
        h = "".join("0123456789abcdef"[int(i)] for i in rng.integers(0, 16, size=32))
        value = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    if template == "marker":
        head = f"The magic {noun} for {word}="
        return f"{head}{value}. ", head, value, len(head)
    head = f"One of the special magic {noun}s for {word} is: "
    q = f"the special magic {noun} for {word} mentioned in the provided text"
    question = f"What is {q}? {q[0].upper()}{q[1:]} is "
    return f"{head}{value}. ", question, value, len(head)


def _haystack(kind: str, n: int, rng: np.random.Generator) -> str:
    if kind == "noise":
        return (_NOISE * (n // len(_NOISE) + 1))[:n]
    from memjax.data.text import load_tiny_shakespeare

    text = load_tiny_shakespeare()
    if n > len(text):
        raise bad_arg("seq_len", f"at most ~{len(text)} characters for haystack='shakespeare'", n)
    start = int(rng.integers(0, len(text) - n + 1))
    return text[start : start + n]


def _snap(hay: str, pos: int) -> int:
    """Move ``pos`` back to the nearest sentence or line start (0 and ``len(hay)`` stay)."""
    if pos <= 0 or pos >= len(hay):
        return min(max(pos, 0), len(hay))
    i, j = hay.rfind(". ", 0, pos), hay.rfind("\n", 0, pos)
    return max(0, i + 2 if i >= 0 else 0, j + 1 if j >= 0 else 0)


def needle_haystack(
    seed: int | np.random.Generator | None,
    batch_size: int,
    seq_len: int = 1024,
    kind: str = "passkey",
    *,
    haystack: str = "noise",
    depth: float | None = None,
    num_digits: int = 5,
    template: str = "ruler",
) -> NeedleBatch:
    """Needle-in-a-haystack sequences of exactly ``seq_len`` character tokens.

    Args:
        seed: int seed (or numpy Generator).
        batch_size: number of sequences.
        seq_len: total tokens per sequence (haystack + needle + question + answer), e.g.
            1024 .. 16384.
        kind: ``"passkey"``, ``"number"`` or ``"uuid"`` (see the module docstring).
        haystack: ``"noise"`` or ``"shakespeare"``.
        depth: needle depth in [0, 1] as a fraction of the haystack; ``None`` draws it
            uniformly per example. The needle is moved back to the nearest sentence
            (``". "``) or line start.
        num_digits: passkey length.
        template: ``"ruler"`` (RULER's sentences) or ``"marker"`` (compact needle and question
            sharing the key marker ``=``; module docstring).

    Returns:
        :class:`NeedleBatch`.

    Example:
        >>> b = needle_haystack(0, batch_size=2, seq_len=512, kind="passkey")
        >>> b.tokens.shape, b.answer.shape
        ((2, 512), (2, 5))
        >>> bool((b.tokens[0, b.value_pos[0]:b.value_pos[0] + 5] == b.answer[0]).all())
        True
        >>> m = needle_haystack(0, batch_size=1, seq_len=64, kind="passkey", template="marker")
        >>> needle_decode(m.tokens[0, -18:]) == "The pass key=" + needle_decode(m.answer[0])
        True
    """
    if kind not in _KINDS:
        raise bad_arg("kind", f"one of {_KINDS}", kind)
    if template not in _TEMPLATES:
        raise bad_arg("template", f"one of {_TEMPLATES}", template)
    if haystack not in _HAYSTACKS:
        raise bad_arg("haystack", f"one of {_HAYSTACKS}", haystack)
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise bad_arg("batch_size", "a positive int", batch_size)
    if not isinstance(num_digits, int | np.integer) or not 1 <= num_digits <= 64:
        raise bad_arg("num_digits", "an int in [1, 64]", num_digits)
    if depth is not None and not (isinstance(depth, float | int) and 0.0 <= depth <= 1.0):
        raise bad_arg("depth", "None or a number in [0, 1]", depth)
    rng = as_rng(seed)
    # longest needle + question + answer for this kind, to validate seq_len up front
    if template == "ruler":
        min_len = {"passkey": 95 + 2 * num_digits, "number": 230, "uuid": 290}[kind]
    else:
        min_len = {"passkey": 28 + 2 * num_digits, "number": 74, "uuid": 128}[kind]
    if not isinstance(seq_len, int | np.integer) or seq_len < min_len:
        raise bad_arg("seq_len", f"an int >= {min_len} for kind={kind!r}", seq_len)
    tokens = np.zeros((batch_size, seq_len), np.int32)
    needle_pos = np.zeros(batch_size, np.int32)
    value_pos = np.zeros(batch_size, np.int32)
    depths = np.zeros(batch_size, np.float32)
    answers = []
    for b in range(batch_size):
        needle, question, answer, offset = _needle(kind, rng, num_digits, template)
        n_hay = seq_len - len(needle) - len(question) - len(answer)
        hay = _haystack(haystack, n_hay, rng)
        d = float(rng.uniform()) if depth is None else float(depth)
        cut = _snap(hay, round(d * n_hay))
        text = hay[:cut] + needle + hay[cut:] + question + answer
        tokens[b] = needle_encode(text)
        needle_pos[b] = cut
        value_pos[b] = cut + offset
        depths[b] = cut / max(n_hay, 1)
        answers.append(needle_encode(answer))
    a = len(answers[0])
    answer_mask = np.zeros((batch_size, seq_len), bool)
    answer_mask[:, seq_len - a :] = True
    targets = np.full((batch_size, seq_len), IGNORE_INDEX, np.int32)
    targets[:, seq_len - a - 1 : seq_len - 1] = tokens[:, seq_len - a :]
    return NeedleBatch(
        tokens, targets, answer_mask, needle_pos, value_pos, depths, np.stack(answers)
    )
