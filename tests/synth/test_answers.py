import pytest

from solar_ray.synth.answers import answers_match, extract_answer, extract_boxed, normalize_answer


@pytest.mark.parametrize(("text", "expected"), [
    ("so the answer is $\\boxed{\\frac{2}{5}}$.", "\\frac{2}{5}"),
    ("first \\boxed{1} then \\boxed{\\sqrt{x^{2}}}", "\\sqrt{x^{2}}"),  # the last box, nested braces kept
    ("\\fbox{7}", "7"),
    ("it is \\boxed 5$", "5"),
    ("Natalia sold 48 clips.\n#### 72", "72"),
    ("The answer is: 3.5", "3.5"),
    ("no final answer here", None),
    ("unbalanced \\boxed{3", None),
    ("", None),
])
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_extract_boxed_none_without_box():
    assert extract_boxed("#### 4") is None


@pytest.mark.parametrize(("left", "right"), [
    ("\\frac12", "0.5"), ("\\dfrac{1}{2}", ".5"), ("1/2", "\\tfrac{1}{2}"), ("x = 6", "6"), ("6.0", "6"),
    ("1,000", "1000"), ("540^\\circ", "540"), ("\\text{(B)}", "(B)"), ("50\\%", "50"), ("\\left(1,2\\right)", "(1,2)"),
    ("$-3$", "-3"), ("5.", "5"),
])
def test_same_answer_after_normalisation(left, right):
    assert answers_match(left, right), (normalize_answer(left), normalize_answer(right))


@pytest.mark.parametrize(("left", "right"), [
    ("5", "6"), ("\\frac{2}{4}", "\\frac{1}{2}"), ("1/3", "0.33"), ("(1,2)", "(2,1)"), ("5", None), ("", ""),
])
def test_different_answers_do_not_match(left, right):
    assert not answers_match(left, right)
