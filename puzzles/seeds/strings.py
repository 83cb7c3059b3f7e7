"""Seed families about strings: reversal, counting, palindromes, ciphers, splitting, brackets."""

from __future__ import annotations

import random
import string

from puzzles.seeds.family import Family, make_instances

TOPIC = "strings"


def _word(rng: random.Random, shortest: int, longest: int, letters: str = string.ascii_lowercase) -> str:
    return "".join(rng.choice(letters) for _ in range(rng.randint(shortest, longest)))


REVERSE_TO_TARGET = Family(
    name="reverse_to_target",
    f='''
    def f(s: str, target=...) -> bool:
        """Find the string that reads as target when reversed."""
        return s[::-1] == target
    ''',
    g="""
    def g(target=...):
        return target[::-1]
    """,
    instances=make_instances(101, lambda rng: {"target": _word(rng, 4, 12)}),
)

COMPLETE_SUFFIX = Family(
    name="complete_suffix",
    f='''
    def f(s: str, start=..., whole=...) -> bool:
        """Find the text that, written after start, gives whole."""
        return start + s == whole
    ''',
    g="""
    def g(start=..., whole=...):
        return whole[len(start):]
    """,
    instances=make_instances(
        102,
        lambda rng: (lambda a, b: {"start": a, "whole": a + b})(_word(rng, 2, 6), _word(rng, 4, 8)),
    ),
)


def _count_and_length(rng: random.Random) -> dict[str, object]:
    length = rng.randint(5, 40)
    return {"ch": rng.choice("bcdxyz"), "count": rng.randint(1, length - 1), "length": length}


COUNT_AND_LENGTH = Family(
    name="count_and_length",
    f='''
    def f(s: str, ch=..., count=..., length=...) -> bool:
        """Find a string of exactly `length` characters in which ch occurs exactly `count` times."""
        return len(s) == length and s.count(ch) == count
    ''',
    g="""
    def g(ch=..., count=..., length=...):
        filler = "a" if ch != "a" else "b"
        return ch * count + filler * (length - count)
    """,
    instances=make_instances(103, _count_and_length),
)


def _palindrome(rng: random.Random) -> dict[str, object]:
    prefix = _word(rng, 2, 4)
    return {"prefix": prefix, "length": rng.randint(2 * len(prefix), 2 * len(prefix) + 6)}


PALINDROME_WITH_PREFIX = Family(
    name="palindrome_with_prefix",
    f='''
    def f(s: str, prefix=..., length=...) -> bool:
        """Find a palindrome with exactly `length` characters that starts with prefix."""
        return len(s) == length and s == s[::-1] and s.startswith(prefix)
    ''',
    g="""
    def g(prefix=..., length=...):
        left = (prefix + "z" * length)[: (length + 1) // 2]
        return left + left[: length // 2][::-1]
    """,
    instances=make_instances(104, _palindrome),
)

CAESAR_DECODE = Family(
    name="caesar_decode",
    f='''
    def f(s: str, shift=..., target=...) -> bool:
        """Find the lowercase word that turns into target when each letter moves `shift` places on in
        the alphabet (wrapping from z to a)."""
        return "".join(chr((ord(c) - 97 + shift) % 26 + 97) for c in s) == target
    ''',
    g="""
    def g(shift=..., target=...):
        return "".join(chr((ord(c) - 97 - shift) % 26 + 97) for c in target)
    """,
    instances=make_instances(105, lambda rng: {"shift": rng.randint(1, 25), "target": _word(rng, 5, 12)}),
    held_out=True,
)


def _interleave(rng: random.Random) -> dict[str, object]:
    a = _word(rng, 3, 8)
    return {"a": a, "b": _word(rng, len(a) - 1, len(a))}


INTERLEAVE = Family(
    name="interleave",
    f='''
    def f(s: str, a=..., b=...) -> bool:
        """Find s whose characters at even positions spell a and at odd positions spell b."""
        return s[::2] == a and s[1::2] == b
    ''',
    g="""
    def g(a=..., b=...):
        return "".join(x + y for x, y in zip(a, b)) + a[len(b):]
    """,
    instances=make_instances(106, _interleave),
)


def _common_prefix(rng: random.Random) -> dict[str, object]:
    prefix = _word(rng, 2, 5, "defghijklmnop")
    nexts = rng.sample("qrstuvwxyz", rng.randint(2, 4))
    words = [prefix + c + _word(rng, 0, 4) for c in nexts]
    if rng.random() < 0.3:
        words.append(prefix)
    rng.shuffle(words)
    return {"words": words}


COMMON_PREFIX = Family(
    name="longest_common_prefix",
    f='''
    def f(s: str, words=...) -> bool:
        """Find the longest string that every word starts with."""
        if not all(w.startswith(s) for w in words):
            return False
        return any(len(w) == len(s) for w in words) or len({w[len(s)] for w in words}) > 1
    ''',
    g="""
    def g(words=...):
        prefix = words[0]
        for w in words[1:]:
            while not w.startswith(prefix):
                prefix = prefix[:-1]
        return prefix
    """,
    instances=make_instances(107, _common_prefix),
)


def _runs(rng: random.Random) -> dict[str, object]:
    letters = [rng.choice("abcdefgh")]
    count = rng.randint(4, 7)
    while len(letters) < count:
        letters.append(rng.choice("abcdefgh".replace(letters[-1], "")))
    return {"runs": [[c, rng.randint(1, 5)] for c in letters]}


RUN_LENGTH_DECODE = Family(
    name="run_length_decode",
    f='''
    def f(s: str, runs=...) -> bool:
        """Find the string whose runs of equal letters are given by runs, a list of [letter, length]."""
        import itertools

        return [[c, len(list(group))] for c, group in itertools.groupby(s)] == runs
    ''',
    g="""
    def g(runs=...):
        return "".join(c * n for c, n in runs)
    """,
    instances=make_instances(108, _runs),
)


def _word_break(rng: random.Random) -> dict[str, object]:
    vocab = sorted({_word(rng, 2, 4, "abcdef") for _ in range(rng.randint(6, 9))})
    text = "".join(rng.choice(vocab) for _ in range(rng.randint(4, 7)))
    return {"text": text, "vocab": vocab}


WORD_BREAK = Family(
    name="word_break",
    f='''
    def f(words: List[str], text=..., vocab=...) -> bool:
        """Cut text into pieces that are all words of vocab."""
        return "".join(words) == text and all(w in vocab for w in words)
    ''',
    g="""
    def g(text=..., vocab=...):
        splits = {0: []}
        for end in range(1, len(text) + 1):
            for w in vocab:
                start = end - len(w)
                if start in splits and text[start:end] == w:
                    splits[end] = splits[start] + [w]
                    break
        return splits[len(text)]
    """,
    instances=make_instances(109, _word_break),
)

SORT_BY_LENGTH = Family(
    name="sort_by_length",
    f='''
    def f(out: List[str], words=...) -> bool:
        """Put words in order of length, shorter first; words of equal length in alphabetical order."""
        return sorted(out) == sorted(words) and all(
            (len(a), a) <= (len(b), b) for a, b in zip(out, out[1:])
        )
    ''',
    g="""
    def g(words=...):
        return sorted(words, key=lambda w: (len(w), w))
    """,
    instances=make_instances(
        110, lambda rng: {"words": [_word(rng, 1, 7) for _ in range(rng.randint(5, 10))]}
    ),
)


def _brackets(rng: random.Random) -> dict[str, object]:
    pairs = rng.randint(3, 12)
    return {"pairs": pairs, "depth": rng.randint(2, pairs)}


BRACKET_DEPTH = Family(
    name="bracket_depth",
    f='''
    def f(s: str, pairs=..., depth=...) -> bool:
        """Find a balanced string of `pairs` pairs of round brackets whose deepest nesting is depth."""
        if len(s) != 2 * pairs or set(s) - set("()"):
            return False
        level = deepest = 0
        for c in s:
            level += 1 if c == "(" else -1
            if level < 0:
                return False
            deepest = max(deepest, level)
        return level == 0 and deepest == depth
    ''',
    g="""
    def g(pairs=..., depth=...):
        return "(" * depth + ")" * depth + "()" * (pairs - depth)
    """,
    instances=make_instances(111, _brackets),
)


def _no_repeat(rng: random.Random) -> dict[str, object]:
    length = rng.randint(5, 30)
    return {"length": length, "distinct": rng.randint(2, min(length, 12))}


DISTINCT_LETTERS = Family(
    name="distinct_letters_no_repeat",
    f='''
    def f(s: str, length=..., distinct=...) -> bool:
        """Find a string of `length` lowercase letters that uses exactly `distinct` different letters
        and never has the same letter twice in a row."""
        return (
            len(s) == length
            and all("a" <= c <= "z" for c in s)
            and len(set(s)) == distinct
            and all(a != b for a, b in zip(s, s[1:]))
        )
    ''',
    g="""
    def g(length=..., distinct=...):
        letters = "abcdefghijklmnopqrstuvwxyz"[:distinct]
        return "".join(letters[i % distinct] for i in range(length))
    """,
    instances=make_instances(112, _no_repeat),
)

FAMILIES = (
    REVERSE_TO_TARGET,
    COMPLETE_SUFFIX,
    COUNT_AND_LENGTH,
    PALINDROME_WITH_PREFIX,
    CAESAR_DECODE,
    INTERLEAVE,
    COMMON_PREFIX,
    RUN_LENGTH_DECODE,
    WORD_BREAK,
    SORT_BY_LENGTH,
    BRACKET_DEPTH,
    DISTINCT_LETTERS,
)
