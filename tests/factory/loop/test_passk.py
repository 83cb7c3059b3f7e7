import math

import pytest

from factory.loop.passk import mean_pass_at_k, pass_at_k


def test_k1_is_fraction_correct():
    # n=10, c=3, k=1: 1 - C(7,1)/C(10,1) = 1 - 7/10 = 0.3
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)


def test_k2_by_hand():
    # n=5, c=2, k=2: C(3,2) = 3, C(5,2) = 10 -> 1 - 3/10 = 0.7
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)


def test_k3_by_hand():
    # n=6, c=1, k=3: C(5,3) = 10, C(6,3) = 20 -> 1 - 10/20 = 0.5
    assert pass_at_k(6, 1, 3) == pytest.approx(0.5)


def test_no_correct_is_zero():
    # c=0: C(n,k)/C(n,k) = 1 -> 0
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 0, 10) == 0.0


def test_fewer_wrong_than_k_is_one():
    # n=5, c=3, k=3: only 2 wrong samples, every 3-subset has a correct one -> C(2,3) = 0 -> 1
    assert pass_at_k(5, 3, 3) == 1.0
    assert pass_at_k(4, 4, 1) == 1.0


def test_matches_binomials_and_is_stable_for_large_n():
    for n, c, k in [(20, 7, 5), (100, 1, 10), (50, 49, 1), (13, 6, 13)]:
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert pass_at_k(n, c, k) == pytest.approx(exact)
    # n=2000 would overflow a float binomial; the product form stays finite and in [0, 1]
    value = pass_at_k(2000, 3, 1000)
    assert 0.0 <= value <= 1.0
    # 1 - (1000*999*998)/(2000*1999*1998) = 1 - 0.1248...
    assert value == pytest.approx(1 - (1000 * 999 * 998) / (2000 * 1999 * 1998))


@pytest.mark.parametrize(
    ("n", "c", "k", "message"),
    [
        (3, 1, 4, "exceeds"),
        (3, 4, 1, "cannot exceed"),
        (-1, 0, 1, "non-negative"),
        (3, -1, 1, "non-negative"),
        (3, 1, 0, "at least 1"),
        (3, 1, -2, "at least 1"),
    ],
)
def test_bad_arguments(n, c, k, message):
    with pytest.raises(ValueError, match=message):
        pass_at_k(n, c, k)


def test_non_int_rejected():
    with pytest.raises(TypeError):
        pass_at_k(10, 3.0, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        pass_at_k(10, True, 1)  # type: ignore[arg-type]


def test_mean():
    # (10,3,k=1) -> 0.3 ; (10,0) -> 0 ; (10,10) -> 1 ; mean = 1.3/3
    assert mean_pass_at_k([(10, 3), (10, 0), (10, 10)], 1) == pytest.approx(1.3 / 3)
    assert mean_pass_at_k(iter([(5, 2)]), 2) == pytest.approx(0.7)
    with pytest.raises(ValueError, match="no problems"):
        mean_pass_at_k([], 1)
