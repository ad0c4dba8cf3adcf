"""
The answer checker behind lampo.py's reward (correct(y_i)) and eval.py's accuracy.

Training goes wrong quietly here: a lax checker invites reward hacking, a strict one punishes right
answers written differently (0.5 vs \\frac{1}{2}) and teaches the model wrong. Values are compared by
math-verify, the field's verifier (behind lighteval's and open-r1's published MATH-500 and AIME
numbers); ours is only finding the final answer and a few rewrites.
"""

import re
import threading

import math_verify


BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_BOX_ARGUMENT = re.compile(r"\s*\{|\s+([^\s${}]+)")  # \boxed{...} or \boxed 5
_ANSWER_PHRASE = re.compile(r"\banswer\**\s*(?:is\b|:)[\s*:]*", re.IGNORECASE)

def extract_answer(text: str) -> str | None:
    """The model's final answer: the last box after the reasoning, else 'the answer is X'."""
    # Boxes inside <think>...</think> are drafts: only the text after the last </think> counts, and
    # a response cut off mid-thought (<think> never closed) has none. No tags: thinking was off.
    if "<think>" in text and "</think>" not in text:
        return None
    final = text.rsplit("</think>", 1)[-1]
    if BOX_COMMAND.search(final):
        return last_boxed(final)
    phrases = list(_ANSWER_PHRASE.finditer(final))
    if not phrases:
        return None
    line = final[phrases[-1].end():].partition("\n")[0]    # no box: the line's rest, to the sentence's end
    inline = re.match(r"\$+([^$]+)\$", line)
    answer = inline[1] if inline else re.split(r"\.(?:\s|$)", line, maxsplit=1)[0]
    return answer.strip(" $*.") or None

def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...} (or \\fbox, or \\boxed 5) in text; None if none or cut off."""
    boxes = list(BOX_COMMAND.finditer(text))
    arg = _BOX_ARGUMENT.match(text, boxes[-1].end()) if boxes else None
    if arg is None:
        return None
    if arg[1]:
        return arg[1]  # \boxed 5
    depth = 0
    for brace in re.compile(r"[{}]").finditer(text, arg.end() - 1):
        depth += 1 if brace[0] == "{" else -1
        if depth == 0:
            return text[arg.end():brace.start()].strip() or None
    return None  # the response ended inside the box: no answer, not a partial one

# Notations math-verify misses, rewritten as LaTeX it reads, value kept. Decimals become exact
# fractions, so a decimal equals only the value it spells out: math-verify rounds floats to 6
# places, which would let 0.3333333 pass for \frac{1}{3}.
_THOUSANDS = re.compile(r"(?<=\d)\\,(?=\d{3}(?!\d))")  # 10\,080
_REPEATING = re.compile(r"(\d*)\.(\d*)\\overline\{(\d+)\}")  # 0.1\overline{6}
_DECIMAL = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+|\d*)\.(\d+)")  # 1,234.5 and .5
_CHOICE = re.compile(r"^([A-J])\)$")  # C), an option as multiple-choice prompts list it
MAX_ANSWER_CHARS = 500  # an answer is short: a longer one is a ramble, refused before parsing

def _repeating_fraction(m: re.Match) -> str:
    """a.b\\overline{c} = (abc - ab) / (99..9 00..0), with len(c) nines and len(b) zeros."""
    head, repeat = m[1] + m[2], m[3]
    numerator = int(head + repeat) - int(head or 0)
    return f"\\frac{{{numerator}}}{{{(10 ** len(repeat) - 1) * 10 ** len(m[2])}}}"

def _decimal_fraction(m: re.Match) -> str:
    digits = (m[1].replace(",", "") + m[2]).lstrip("0") or "0"
    return f"\\frac{{{digits}}}{{1{'0' * len(m[2])}}}"

def _parsed(answer: str, timeout: int | None) -> list:
    """math-verify's reading of an answer, after the rewrites above."""
    s = answer.strip().rstrip(".").replace("°", "^{\\circ}")
    s = _CHOICE.sub(r"\1", _THOUSANDS.sub("", s))
    s = _DECIMAL.sub(_decimal_fraction, _REPEATING.sub(_repeating_fraction, s))   # repeating ones first
    config = [math_verify.LatexExtractionConfig()]
    return math_verify.parse("\\boxed{" + s + "}", config, parsing_timeout=timeout)

def is_equiv(pred: str | None, gold: str) -> bool:
    """True when the predicted answer has the same value as the gold answer."""
    if pred is None or max(len(pred), len(gold)) > MAX_ANSWER_CHARS:
        return False
    # math-verify gives up on a parse or a comparison after 1 s (the answer scores 0) through
    # signal.alarm, which only the main thread may set; in other threads it runs without a limit.
    timeout = 1 if threading.current_thread() is threading.main_thread() else None
    # Gold first: verify() follows the gold's form. Gold 17 accepts x+y=17; gold 2x+z=1 is not 1.
    return math_verify.verify(_parsed(gold, timeout), _parsed(pred, timeout), timeout_seconds=timeout)
