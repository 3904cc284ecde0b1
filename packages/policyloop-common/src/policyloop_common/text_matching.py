"""Bilingual (English and Vietnamese) text matching for feedback and policies.

A text becomes a :class:`Document`: its terms (folded to ASCII, stopwords removed, light English stemming,
Vietnamese domain phrases mapped to canonical English terms, so "người dùng" and "users" meet as ``user``)
and its schema objects (snake_case identifiers, qualified names, quoted values, identifiers named by SQL).

``similarity(a, b)`` is in [0, 1]:

    terms   = cosine of the term-frequency vectors, each term weighted 1/(1 + commonness), where the words every
              text in this domain uses ("system", "query", "column", ...) have a high commonness
    objects = |A ∩ B| / min(|A|, |B|) over the schema objects (overlap coefficient: a short feedback naming one
              column matches a policy naming that column and two more)
    trigram = Jaccard of character trigrams of the folded texts, a backoff for spellings and word forms

    similarity = 0.45·terms + 0.40·objects + 0.15·trigram     when the texts share schema objects
                 0.85·(0.80·terms + 0.20·trigram)             when both name objects but none in common
                 0.80·terms + 0.20·trigram                    otherwise

Shared schema objects are the strongest evidence that two texts teach the same lesson; the term part carries
paraphrases across the two languages; the trigram part keeps near-verbatim repeats high whatever else happens.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

# Vietnamese phrases (already folded to ASCII) and English variants mapped to one canonical term.
# Longer phrases are replaced first, so "dang hoat dong" wins over "hoat dong".
_PHRASES: dict[str, str] = {
    "so nguoi dung": "user", "nguoi dung": "user", "tai khoan": "account", "nguoi su dung": "user",
    "he thong": "system", "co quan": "agency", "don vi": "unit", "bo nganh": "ministry",
    "thanh pho": "province", "tinh thanh": "province", "dia phuong": "province", "tinh": "province",
    "ngan sach": "budget", "kinh phi": "budget", "chi phi": "budget", "dang hoat dong": "operating",
    "dang van hanh": "operating", "van hanh": "operating", "hoat dong": "operating",
    "thi diem": "piloting", "dang xay dung": "building", "xay dung": "building", "ngung hoat dong": "retired",
    "bao mat": "security", "an toan thong tin": "security", "cap do": "level", "muc do": "level",
    "trieu dong": "million vnd", "trieu": "million", "ty dong": "billion vnd", "ty": "billion", "dong": "vnd",
    "ket noi": "integration", "tich hop": "integration", "lien thong": "integration", "nen tang": "platform",
    "dam may": "cloud", "dien toan dam may": "cloud", "trien khai": "launched", "ra mat": "launched",
    "ten cot": "column", "cot": "column", "truy van": "query", "cau truy van": "query",
    "loc": "filter", "dieu kien": "filter", "nhom": "group", "dem": "count", "so luong": "count",
    "bao nhieu": "count", "tong": "total", "trung binh": "average", "lon nhat": "maximum",
    "nhieu nhat": "maximum", "it nhat": "minimum", "ngay": "date", "thang": "month",
    "tieng viet": "vietnamese", "tieng anh": "english", "ngon ngu": "language", "tra loi": "answer",
    "cau tra loi": "answer", "cau hoi": "question", "dinh dang": "format", "lam tron": "round",
    "chu so": "digit", "thap phan": "decimal", "trang thai": "status", "gia tri": "value",
    "tro len": "above", "tro xuong": "below", "bao gom": "include", "tuong ung": "correspond",
    "khong trung": "distinct", "trung lap": "duplicate", "rieng biet": "distinct", "dong du lieu": "row",
    "ban ghi": "row", "lien ket": "join", "ghep": "join", "noi bang": "join", "ten": "name",
    "vi tri": "location", "dia diem": "location", "thuoc": "belong", "so huu": "own", "chu quan": "own",
    "reply": "answer", "respond": "answer", "response": "answer", "writes": "write", "written": "write",
    "unique": "distinct", "records": "row", "entries": "row", "located": "location", "city": "province",
    "cities": "province", "provinces": "province", "connected": "integration", "integrated": "integration",
    "connection": "integration", "connect": "integration", "hosted": "hosting", "users": "user",
    "or above": "above", "or more": "above", "at least": "above", "or below": "below", "at most": "below",
    "active": "operating", "money": "budget", "cost": "budget", "units": "unit", "millions": "million",
    "billions": "billion", "dong vnd": "vnd",
}
_PHRASE_PATTERN = re.compile(
    r"\b(" + "|".join(sorted(map(re.escape, _PHRASES), key=len, reverse=True)) + r")\b")

_STOPWORDS = frozenset("""
a an and are as at be been but by can could did do does for from had has have how i in into is it its me my
no not of on or our should so than that the their them then there these they this those to was we were what
when where which who why will with would you your yours again also just only please any all each very more most
over under per than too via about above' s t also here one ones thing things way
la cua va co cac nhung mot duoc cho trong khi thi nay do de voi khong phai roi cung nhu ma se da dang toi ban
hay hoac neu vao ra len xuong lai nua chi moi rat qua can nen theo tai tu den sau truoc nao gi ai bang ay vay
chu nam o thuc te ve
""".split())

# Words nearly every feedback on this assistant uses: weak evidence that two texts teach the same lesson.
_COMMON = {"system": 3.0, "query": 3.0, "column": 2.0, "table": 2.0, "answer": 1.5, "question": 2.0,
           "wrong": 3.0, "use": 2.0, "data": 2.0, "result": 2.0, "sql": 2.0, "count": 1.0, "value": 1.0,
           "correct": 2.0, "need": 2.0, "must": 2.0, "sai": 3.0, "dung": 2.0, "say": 2.0, "instead": 1.5}

_SQL_KEYWORDS = frozenset("""
select from where and or not in is null like ilike between join inner left right full outer on group by order
having limit offset as distinct count sum avg min max case when then else end desc asc union all with insert
update delete set into values true false exists any some cast coalesce lower upper date interval extract
""".split())

_IDENTIFIER = r"[a-z_][a-z0-9_]*"
_QUALIFIED = re.compile(rf"\b({_IDENTIFIER})\.({_IDENTIFIER})\b")
_SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
_SINGLE_QUOTED = re.compile(r"'([^']{1,60})'")
_DOUBLE_QUOTED = re.compile(r'"([^"]{1,60})"')
_SQL_START = re.compile(r"^\s*(select|with|insert|update|delete)\b", re.IGNORECASE)
_TOKEN = re.compile(r"[a-z0-9_]+(?:\.[a-z0-9_]+)?")


def fold(text: str) -> str:
    """Lowercase with Vietnamese diacritics removed (đ becomes d)."""
    text = text.replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(char for char in decomposed if unicodedata.category(char) != "Mn").lower()


def normalize(text: str) -> str:
    """Folded text with punctuation turned to spaces; identifiers such as ``agencies.province`` stay intact."""
    folded = fold(text)
    # Keep dots and underscores only inside identifiers.
    folded = re.sub(r"(?<![a-z0-9_])\.|\.(?![a-z0-9_])", " ", folded)
    return " ".join(re.sub(r"[^a-z0-9_.\s]", " ", folded).split())


# The canonical terms are already in their base form ("operating" is a status, not a verb).
_CANONICAL = frozenset(word for phrase in _PHRASES.values() for word in phrase.split())


def _stem(word: str) -> str:
    if word in _CANONICAL or "_" in word or "." in word or word.isdigit() or len(word) <= 3:
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith("ing") and len(word) > 5:
        return word[:-3]
    if word.endswith("ed") and len(word) > 4 and not word.endswith("eed"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@lru_cache(maxsize=20_000)
def _terms(text: str) -> tuple[str, ...]:
    mapped = _PHRASE_PATTERN.sub(lambda match: " " + _PHRASES[match.group(1)] + " ", normalize(text))
    result = []
    for token in _TOKEN.findall(mapped):
        if token in _STOPWORDS or len(token) < 2 and not token.isdigit():
            continue
        if "." in token:
            # A qualified name also counts as its column: "systems.total_users" meets "total_users".
            result.append(token)
            token = token.rsplit(".", 1)[1]
        stemmed = _stem(token)
        result.append(_PHRASES.get(stemmed, stemmed))
    return tuple(result)


def terms(text: str) -> list[str]:
    """The text's terms: folded, without stopwords, stemmed, Vietnamese domain phrases in canonical English."""
    return list(_terms(text))


def _is_sql(text: str) -> bool:
    return bool(_SQL_START.match(text))


@lru_cache(maxsize=20_000)
def _schema_objects(text: str) -> frozenset[str]:
    objects: set[str] = set()
    folded = fold(text)
    for literal in _SINGLE_QUOTED.findall(folded):
        cleaned = " ".join(re.sub(r"[%_]", " ", literal).split())
        if cleaned:
            objects.add(f"value:{cleaned}")
    without_literals = _SINGLE_QUOTED.sub(" ", folded)
    for quoted in _DOUBLE_QUOTED.findall(without_literals):
        # Error messages quote the identifier they complain about: column "users" does not exist.
        if re.fullmatch(_IDENTIFIER, quoted):
            objects.add(quoted)
    for table, column in _QUALIFIED.findall(without_literals):
        if table.isdigit() or column.isdigit():
            continue
        objects.add(f"{table}.{column}")
        objects.add(column)
    objects.update(_SNAKE.findall(without_literals))
    if _is_sql(text):
        for token in re.findall(_IDENTIFIER, without_literals):
            if token not in _SQL_KEYWORDS and len(token) > 1:
                objects.add(token)
    return frozenset(objects)


def schema_objects(text: str) -> set[str]:
    """Schema objects the text names: snake_case and qualified identifiers, quoted values, SQL identifiers."""
    return set(_schema_objects(text))


def _weight(term: str) -> float:
    return 1.0 / (1.0 + _COMMON.get(term, 0.0))


def _trigrams(text: str) -> frozenset[str]:
    padded = f"  {text} "
    return frozenset(padded[i:i + 3] for i in range(len(padded) - 2))


@dataclass(frozen=True)
class Document:
    """A text prepared once for many comparisons."""

    vector: dict[str, float]
    norm: float
    objects: frozenset[str]
    trigrams: frozenset[str]

    @classmethod
    def of(cls, text: str, objects: set[str] | frozenset[str] | None = None) -> Document:
        """Prepare ``text``; ``objects`` overrides the schema objects found in it."""
        counts = Counter(_terms(text))
        vector = {term: count * _weight(term) for term, count in counts.items()}
        norm = math.sqrt(sum(value * value for value in vector.values()))
        found = frozenset(objects) if objects is not None else _schema_objects(text)
        return cls(vector=vector, norm=norm, objects=found, trigrams=_trigrams(normalize(text)))


def term_similarity(a: Document, b: Document) -> float:
    """Cosine of the weighted term vectors."""
    if not a.norm or not b.norm:
        return 0.0
    small, large = (a.vector, b.vector) if len(a.vector) <= len(b.vector) else (b.vector, a.vector)
    dot = sum(value * large.get(term, 0.0) for term, value in small.items())
    return dot / (a.norm * b.norm)


def object_overlap(a: Document, b: Document) -> float:
    """Overlap coefficient of the schema objects; 0 when either names none."""
    if not a.objects or not b.objects:
        return 0.0
    return len(a.objects & b.objects) / min(len(a.objects), len(b.objects))


def trigram_similarity(a: Document, b: Document) -> float:
    """Jaccard of character trigrams."""
    if not a.trigrams or not b.trigrams:
        return 0.0
    return len(a.trigrams & b.trigrams) / len(a.trigrams | b.trigrams)


def similarity_docs(a: Document, b: Document) -> float:
    """The similarity of two prepared documents (formula in the module docstring)."""
    terms_part = term_similarity(a, b)
    trigram_part = trigram_similarity(a, b)
    overlap = object_overlap(a, b)
    if overlap > 0:
        score = 0.45 * terms_part + 0.40 * overlap + 0.15 * trigram_part
    elif a.objects and b.objects:
        # Different objects named: likely a different lesson, but wording can still say otherwise.
        score = 0.85 * (0.80 * terms_part + 0.20 * trigram_part)
    else:
        score = 0.80 * terms_part + 0.20 * trigram_part
    return max(0.0, min(1.0, score))


def similarity(a: str, b: str) -> float:
    """How likely two texts speak of the same thing, in [0, 1]."""
    return similarity_docs(Document.of(a), Document.of(b))
