"""The needle-in-a-haystack pipeline (memjax.data.niah): lengths, the needle in the haystack, the
answer recoverable from the text by a plain regular-expression reader, the targets and masks."""

import re

import numpy as np
import pytest

from memjax.data import NIAH_VOCAB, needle_decode, needle_encode, needle_haystack

# an independent reader: the value each needle sentence states, found in the decoded text
PATTERNS = {
    "passkey": r"The pass key is (\d+)\. Remember it\. \1 is the pass key\. ",
    "number": r"One of the special magic numbers for (\w+) is: (\d{7})\. ",
    "uuid": r"One of the special magic uuids for (\w+) is: "
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\. ",
}
QUESTION = {
    "passkey": "What is the pass key? The pass key is ",
    "number": "What is the special magic number for {w} mentioned in the provided text? The "
    "special magic number for {w} mentioned in the provided text is ",
    "uuid": "What is the special magic uuid for {w} mentioned in the provided text? The "
    "special magic uuid for {w} mentioned in the provided text is ",
}


@pytest.mark.parametrize("haystack", ["noise", "shakespeare"])
@pytest.mark.parametrize("kind", ["passkey", "number", "uuid"])
@pytest.mark.parametrize("seq_len", [320, 1024])
def test_needle_in_haystack_and_answer_recoverable(kind, seq_len, haystack):
    b = needle_haystack(seq_len, 4, seq_len, kind, haystack=haystack)
    assert b.tokens.shape == (4, seq_len) and b.tokens.dtype == np.int32
    assert (b.tokens > 0).all() and (b.tokens <= len(NIAH_VOCAB)).all()  # no padding
    width = {"passkey": 5, "number": 7, "uuid": 36}[kind]
    assert b.answer.shape == (4, width)
    for i in range(4):
        text = needle_decode(b.tokens[i])
        assert len(text) == seq_len
        matches = list(re.finditer(PATTERNS[kind], text))
        assert len(matches) == 1, text  # exactly one needle
        m = matches[0]
        value = m.group(1) if kind == "passkey" else m.group(2)
        # the needle sits where the batch says, the value too, and it is the answer
        assert m.start() == b.needle_pos[i]
        assert text[b.value_pos[i] : b.value_pos[i] + width] == value
        assert needle_decode(b.answer[i]) == value
        # the text ends with the question and then the answer
        q = QUESTION[kind].format(w=m.group(1) if kind != "passkey" else "")
        assert text.endswith(q + value)
        # the needle is inside the haystack, before the question
        assert m.end() <= seq_len - len(q) - width
        assert 0.0 <= b.depth[i] <= 1.0


def test_targets_and_mask_score_only_the_answer():
    b = needle_haystack(3, 2, 400, "number")
    a = b.answer.shape[1]
    scored = b.targets >= 0
    assert scored.sum(1).tolist() == [a, a]
    # target at t is the token at t + 1, on the a positions before the last token
    for i in range(2):
        (pos,) = np.nonzero(scored[i])
        assert pos.tolist() == list(range(400 - a - 1, 400 - 1))
        assert (b.targets[i, pos] == b.tokens[i, pos + 1]).all()
        assert (b.tokens[i, pos + 1] == b.answer[i]).all()
    assert b.answer_mask.sum(1).tolist() == [a, a]
    assert b.answer_mask[:, -a:].all()


def test_depth_places_the_needle_and_seed_is_deterministic():
    first = needle_haystack(0, 2, 600, "passkey", depth=0.0)
    assert (first.needle_pos == 0).all()
    last = needle_haystack(0, 2, 600, "passkey", depth=1.0)
    hay = 600 - len("What is the pass key? The pass key is ") - 5
    needle = len("The pass key is 00000. Remember it. 00000 is the pass key. ")
    assert (last.needle_pos >= hay - needle - 100).all()  # snapped back to a sentence start
    again = needle_haystack(0, 2, 600, "passkey", depth=1.0)
    assert all(np.array_equal(x, y) for x, y in zip(last, again, strict=True))
    assert not np.array_equal(needle_haystack(1, 2, 600).answer, needle_haystack(2, 2, 600).answer)


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="kind"):
        needle_haystack(0, 1, 512, "key")
    with pytest.raises(ValueError, match="seq_len"):
        needle_haystack(0, 1, 200, "uuid")
    with pytest.raises(ValueError, match="haystack"):
        needle_haystack(0, 1, 512, haystack="lorem")
    with pytest.raises(ValueError, match="text"):
        needle_encode("tab\there")


# the "marker" template: needle and question share the only "=" of the sequence
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
MARKER = {
    "passkey": (r"The pass key=(\d{5})\. ", "The pass key="),
    "number": (r"The magic number for (\w+)=(\d{7})\. ", "The magic number for {w}="),
    "uuid": (r"The magic uuid for (\w+)=(" + UUID + r")\. ", "The magic uuid for {w}="),
}


@pytest.mark.parametrize("haystack", ["noise", "shakespeare"])
@pytest.mark.parametrize("kind", ["passkey", "number", "uuid"])
def test_marker_template_needle_marker_and_answer(kind, haystack):
    seq_len = {"passkey": 64, "number": 128, "uuid": 256}[kind]
    b = needle_haystack(7, 3, seq_len, kind, haystack=haystack, template="marker")
    width = {"passkey": 5, "number": 7, "uuid": 36}[kind]
    assert b.tokens.shape == (3, seq_len) and b.answer.shape == (3, width)
    assert (b.tokens > 0).all()
    pattern, question = MARKER[kind]
    for i in range(3):
        text = needle_decode(b.tokens[i])
        assert len(text) == seq_len
        matches = list(re.finditer(pattern, text))
        assert len(matches) == 1, text
        m = matches[0]
        value = m.group(1) if kind == "passkey" else m.group(2)
        assert m.start() == b.needle_pos[i]
        # the answer follows the only other "=": the marker occurs exactly twice
        assert [j for j, c in enumerate(text) if c == "="] == [
            b.value_pos[i] - 1,
            seq_len - width - 1,
        ]
        assert text[b.value_pos[i] : b.value_pos[i] + width] == value == needle_decode(b.answer[i])
        q = question.format(w=m.group(1) if kind != "passkey" else "")
        assert text.endswith(q + value) and m.end() <= seq_len - len(q) - width
        # the answer mask covers exactly the answer, the targets score exactly it
        assert np.nonzero(b.answer_mask[i])[0].tolist() == list(range(seq_len - width, seq_len))
        (pos,) = np.nonzero(b.targets[i] >= 0)
        assert (b.tokens[i, pos + 1] == b.answer[i]).all() and pos[-1] == seq_len - 2


def test_marker_template_shortest_lengths_and_bad_template():
    for kind, shortest in (("passkey", 38), ("number", 74), ("uuid", 128)):
        assert needle_haystack(0, 8, shortest, kind, template="marker").tokens.shape[1] == shortest
        with pytest.raises(ValueError, match="seq_len"):
            needle_haystack(0, 1, shortest - 1, kind, template="marker")
    with pytest.raises(ValueError, match="template"):
        needle_haystack(0, 1, 512, template="short")
