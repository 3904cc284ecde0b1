"""The literal cues of a regular expression: substrings one of which every match contains.

Screening runs broad patterns built of many ``\\b``-led alternatives over every field of every feedback. Python's
``re`` tries each alternative at each position of the text, so a pattern of thirty alternatives costs far more than
looking for thirty words: a text that contains none of a pattern's cues cannot match it, and the pattern need not
run. The cues are read from the pattern itself (its parsed form), never written beside it, so a pattern edited
later keeps a correct prefilter or none at all: where the parse shows anything this module does not understand,
there are no cues and the pattern always runs.
"""

from __future__ import annotations

import re
from re import _constants as sre  # the parsed form's op codes (Python ≥ 3.11)
from re import _parser as sre_parse

# Sets of strings grow by concatenation ("(a|b)(c|d)" gives four); past this size a run is cut instead.
MAX_STRINGS = 64

_ZERO_WIDTH = frozenset({sre.AT, sre.ASSERT, sre.ASSERT_NOT})
_REPEATS = frozenset({sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT})

# What a part of a pattern is known to match, both as sets of strings (None: nothing useful is known):
# ``spelled`` holds every string the part can match (it is a finite set of literals, assertions aside), and
# ``cues`` holds strings one of which every match of the part contains.
_Reading = tuple[frozenset[str] | None, frozenset[str] | None]


def literal_cues(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Non-empty substrings one of which every match of ``pattern`` contains, or None when none are known."""
    if pattern.flags & (re.IGNORECASE | re.VERBOSE) or not isinstance(pattern.pattern, str):
        return None
    try:
        parsed = sre_parse.parse(pattern.pattern, pattern.flags)
        _, cues = _sequence(list(parsed))
    except (AttributeError, TypeError, ValueError, re.error):  # a form this module does not know
        return None
    return cues


def _sequence(items: list[tuple[object, object]]) -> _Reading:
    """A pattern's parts one after another: runs of spelled parts concatenate; the longest cues win."""
    choices: list[frozenset[str]] = []
    run: frozenset[str] | None = frozenset({""})  # the spelled strings of the run being built
    spelled_throughout = True
    for op, argument in items:
        if op in _ZERO_WIDTH:
            continue  # the text on either side of an assertion is contiguous
        spelled, cues = _part(op, argument)
        if spelled is not None and run is not None and len(run) * len(spelled) <= MAX_STRINGS:
            run = frozenset(before + after for before in run for after in spelled)
            continue
        spelled_throughout = False
        if run is not None:
            choices.append(run)
        run = spelled
        if cues is not None:
            choices.append(cues)
    if run is not None:
        choices.append(run)
    useful = [choice for choice in choices if "" not in choice]
    best = max(useful, key=lambda choice: (min(map(len, choice)), -len(choice)), default=None)
    return (run if spelled_throughout else None), best


def _part(op: object, argument) -> _Reading:
    if op is sre.LITERAL:
        character = frozenset({chr(argument)})
        return character, character
    if op is sre.SUBPATTERN:
        _group, add_flags, del_flags, inner = argument
        if add_flags or del_flags:  # "(?i:...)" and the like change what a literal matches
            return None, None
        return _sequence(list(inner))
    if op is sre.ATOMIC_GROUP:
        return _sequence(list(argument))
    if op is sre.BRANCH:
        readings = [_sequence(list(alternative)) for alternative in argument[1]]
        spelled = [reading[0] for reading in readings]
        cues = [reading[1] for reading in readings]
        every_spelled = None if None in spelled else frozenset().union(*spelled)
        if every_spelled is not None and len(every_spelled) > MAX_STRINGS:
            every_spelled = None
        return every_spelled, (None if None in cues else frozenset().union(*cues))
    if op in _REPEATS:
        low, high, inner = argument
        if low == 0:
            return None, None  # may match nothing at all
        spelled, cues = _sequence(list(inner))
        return (spelled if low == high == 1 else None), cues
    if op is sre.IN:
        return _character_set(argument)
    return None, None  # any character, a category, a back-reference: no literal is known


def _character_set(members: list[tuple[object, object]]) -> _Reading:
    """"[:=]" or "(c|d)", which the parser makes a set: spelled when it lists a few characters and nothing else."""
    characters: set[str] = set()
    for op, argument in members:
        if op is sre.LITERAL:
            characters.add(chr(argument))
        elif op is sre.RANGE and argument[1] - argument[0] < MAX_STRINGS:
            characters.update(map(chr, range(argument[0], argument[1] + 1)))
        else:  # a negated set, a category (\w, \d), a wide range
            return None, None
    spelled = frozenset(characters) if len(characters) <= MAX_STRINGS else None
    return spelled, spelled
