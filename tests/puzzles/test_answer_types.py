import ast
import re

import pytest

from puzzles.answer_types import (
    ANSWER_BASE_TYPES,
    annotation_to_type,
    canonical_type,
)
from puzzles.records import InvalidProgram
from sandbox.worker import type_mismatch  # the one exact-type check; it runs in the trusted worker


def annotation(text: str) -> ast.expr:
    return ast.parse(text, mode="eval").body


@pytest.mark.parametrize("name", ANSWER_BASE_TYPES)
def test_base_types_are_their_own_spelling(name):
    assert annotation_to_type(annotation(name)) == name


def test_bool_and_int_stay_distinct():
    assert annotation_to_type(annotation("bool")) == "bool"
    assert annotation_to_type(annotation("int")) == "int"
    assert canonical_type("List[bool]") != canonical_type("List[int]")


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("List[int]", "List[int]"),
        ("list[int]", "List[int]"),
        ("typing.List[int]", "List[int]"),
        ("List[List[str]]", "List[List[str]]"),
        ("list[List[list[float]]]", "List[List[List[float]]]"),
        ("List[ bool ]", "List[bool]"),
        ("'List[int]'", "List[int]"),  # a quoted (forward-reference) annotation
    ],
)
def test_list_spellings_become_canonical(written, canonical):
    assert annotation_to_type(annotation(written)) == canonical
    assert canonical_type(written) == canonical


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("Dict[str, int]", "answer type Dict[str, int] is not a P3 answer type"),
        ("dict", "answer type dict is not a P3 answer type"),
        ("Tuple[int, int]", "answer type Tuple[int, int] is not a P3 answer type"),
        ("Set[int]", "answer type Set[int] is not a P3 answer type"),
        ("None", "answer type None is not a P3 answer type"),
        ("Optional[int]", "answer type Optional[int] is not a P3 answer type"),
        ("int | None", "is not a P3 answer type"),
        ("List[Dict[str, int]]", "answer type List[Dict[str, int]] is not a P3 answer type"),
        ("List", "needs an element type"),
        ("List[int, str]", "more than one element type"),
        ("complex", "is not a P3 answer type"),
        ("numpy.ndarray", "is not a P3 answer type"),
        ("List[" * 12 + "int" + "]" * 12, "nests lists more than 10 deep"),
    ],
)
def test_rejected_types_say_why(written, reason):
    with pytest.raises(InvalidProgram, match=re.escape(reason)):
        annotation_to_type(annotation(written))
    with pytest.raises(InvalidProgram):
        canonical_type(written)


def test_rejection_message_lists_the_allowed_types():
    with pytest.raises(InvalidProgram) as caught:
        canonical_type("Dict[str, int]")
    assert str(caught.value) == (
        "answer type Dict[str, int] is not a P3 answer type (int, float, str, bool or List[...] of them)"
    )


@pytest.mark.parametrize("text", ["", "List[", "int int", "\x00", "x" * 5000, "List[\udc80]"])
def test_canonical_type_rejects_garbage_text(text):
    with pytest.raises(InvalidProgram):
        canonical_type(text)


@pytest.mark.parametrize(
    ("value", "answer_type", "expected"),
    [
        (5, "int", True),
        (True, "int", False),
        (5.0, "int", False),
        (5, "float", False),
        (5.0, "float", True),
        (True, "bool", True),
        (1, "bool", False),
        ("a", "str", True),
        ([], "List[int]", True),
        ([1, 2], "List[int]", True),
        ([1, True], "List[int]", False),
        ((1, 2), "List[int]", False),
        ([[1], []], "List[List[int]]", True),
        ([[1], 2], "List[List[int]]", False),
        ([1], "List[List[int]]", False),
        ([["a"]], "List[List[str]]", True),
    ],
)
def test_answer_matches_type_uses_exact_types(value, answer_type, expected):
    assert (type_mismatch(value, answer_type) is None) is expected


def test_worker_type_check_refuses_a_non_canonical_type():
    assert "unknown answer type" in type_mismatch(1, "list[int]")
