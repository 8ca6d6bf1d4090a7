"""Final answers of math solutions: extraction (`\\boxed{}`, `####`, "The answer is") and normalisation.

A rephrased solution is kept only when its final answer equals the original's after `normalize_answer`, so
the normalisation decides which surface differences count as "the same answer":
    spaces, `\\left`/`\\right`, `\\!` `\\,` `\\;`, `$`, `\\%` and `%`, degrees, `\\text{...}` wrappers, `dfrac`/`tfrac`,
    `\\frac12` -> `\\frac{1}{2}`, `a/b` -> `\\frac{a}{b}`, a leading `x =`, thousands commas, a trailing period,
    and numbers written differently (`5.0` == `5`, `.5` == `0.5` == `1/2`).
Different values never compare equal: `\\frac{1}{2}` and `\\frac{2}{4}` stay different (MATH answers are in
lowest terms, and a rephrasing that changes the form is not trusted).
"""

from __future__ import annotations

import re
from fractions import Fraction

_BOX_COMMANDS = ("\\boxed", "\\fbox")
_ANSWER_IS = re.compile(r"the (?:final )?answer is:?\s*(.+?)\s*(?:\.\s*)?$", re.IGNORECASE | re.MULTILINE)
_HASHES = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)


def _braced(text: str, start: int) -> str | None:
    """The contents of the brace group opening at text[start] == '{', honouring nesting; None if unbalanced."""
    depth = 0
    for index in range(start, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : index]
    return None


def extract_boxed(text: str) -> str | None:
    """The contents of the last `\\boxed{...}` (or `\\fbox{...}`, or `\\boxed 5`) in `text`, else None."""
    best = -1
    command = ""
    for name in _BOX_COMMANDS:
        found = text.rfind(name)
        if found > best:
            best, command = found, name
    if best < 0:
        return None
    rest = best + len(command)
    while rest < len(text) and text[rest] == " ":
        rest += 1
    if rest < len(text) and text[rest] == "{":
        return _braced(text, rest)
    if command == "\\boxed" and rest > best + len(command):  # `\boxed 5`: the token up to the next space or $
        match = re.match(r"[^\s$]+", text[rest:])
        return match.group(0) if match else None
    return None


def extract_answer(text: str) -> str | None:
    """The final answer of a solution: last `\\boxed{}`, else `#### x` (GSM8K), else "The answer is x"; else None."""
    if not isinstance(text, str) or not text.strip():
        return None
    boxed = extract_boxed(text)
    if boxed is not None and boxed.strip():
        return boxed.strip()
    for pattern in (_HASHES, _ANSWER_IS):
        found = pattern.findall(text)
        if found and found[-1].strip():
            return found[-1].strip().strip("$").strip()
    return None


# -------------------------------------------------------------------------------------------- normalising


def _unwrap_text(answer: str) -> str:
    """`\\text{5 cm}` -> `5 cm`; `\\mbox{}` and `\\textbf{}` likewise (nested braces honoured)."""
    for command in ("\\text", "\\mbox", "\\textbf", "\\mathrm"):
        while (at := answer.find(command + "{")) >= 0:
            inner = _braced(answer, at + len(command))
            if inner is None:
                break
            answer = answer[:at] + inner + answer[at + len(command) + len(inner) + 2 :]
    return answer


def _fix_fracs(answer: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{b}` -> `\\frac{1}{b}` (MATH writes both)."""
    answer = re.sub(r"\\frac(\d)(\d)", r"\\frac{\1}{\2}", answer)
    answer = re.sub(r"\\frac(\d)\{", r"\\frac{\1}{", answer)
    return re.sub(r"\\frac\{([^{}]*)\}(\d)", r"\\frac{\1}{\2}", answer)


def _as_number(answer: str) -> Fraction | None:
    """A plain number or simple fraction as an exact Fraction: `5`, `-0.50`, `.5`, `3/4`, `\\frac{3}{4}`."""
    match = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}", answer)
    if match:
        sign, num, den = match.groups()
        if int(den) == 0:
            return None
        value = Fraction(int(num), int(den))
        return -value if sign else value
    if re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", answer):
        return Fraction(answer)
    match = re.fullmatch(r"(-?\d+)/(\d+)", answer)
    if match and int(match.group(2)) != 0:
        return Fraction(int(match.group(1)), int(match.group(2)))
    return None


def normalize_answer(answer: str | None) -> str | None:
    """Canonical form of a final answer (see module docstring); None stays None."""
    if answer is None:
        return None
    text = _unwrap_text(str(answer))
    for junk in ("\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "$", "\\%", "%", "^\\circ", "^{\\circ}",
                 "\\circ", "\\displaystyle"):
        text = text.replace(junk, "")
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    text = re.sub(r"\s+", "", text)
    text = re.sub(r"^[a-zA-Z]\s*=", "", text)  # `x=5` -> `5`
    text = text.rstrip(".")
    text = re.sub(r"(?<=\d),(?=\d{3}(\D|$))", "", text)  # `1,000` -> `1000`
    text = _fix_fracs(text)
    number = _as_number(text)
    if number is not None:
        # Only exact values compare equal, so `0.5`, `.5`, `1/2` and `\frac{1}{2}` meet in one canonical form.
        if "\\frac" in text and (number.numerator, number.denominator) != _frac_parts(text):
            return text  # `\frac{2}{4}` is not in lowest terms: keep the form (see module docstring)
        return str(number.numerator) if number.denominator == 1 else f"{number.numerator}/{number.denominator}"
    return text


def _frac_parts(text: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(-?)\\frac\{(-?\d+)\}\{(-?\d+)\}", text)
    if not match:
        return None
    sign, num, den = match.groups()
    return (-int(num) if sign else int(num)), int(den)


def answers_match(expected: str | None, got: str | None) -> bool:
    """True when both answers exist and are equal after normalisation."""
    left, right = normalize_answer(expected), normalize_answer(got)
    return left is not None and right is not None and left != "" and left == right
