"""Bilingual (English and Vietnamese) text matching for feedback and policies.

A text is read two ways. Its **terms**: lowercase, Vietnamese domain phrases mapped to canonical English terms
while the diacritics still tell "tỉnh" (province) from "tính" (compute), then folded to ASCII, stopwords of
both languages dropped, light English stemming, English synonyms mapped to the same canonical terms; so "số
người dùng" and "users" meet as ``user``, "đang vận hành" and "operating" as ``operating``. Its **schema
objects**: snake_case identifiers, qualified names (``agencies.province`` also gives ``agencies`` and
``province``), quoted values (``'operating'`` gives ``value:operating``), identifiers an error message quotes,
and the identifiers of SQL text; each object carries a weight (qualified, snake_case and values 1.0; other
quoted or SQL identifiers 0.8; the plain column part of a qualified name 0.6; keys such as ``agency_id`` or
``systems.id`` 0.5; numeric values 0.3; tables 0.2; generic names such as ``id`` 0.1).

``similarity(a, b)`` is in [0, 1] and symmetric:

    T = cosine of the term vectors, each term (1 + ln tf) · 1 / (1 + commonness), where the words nearly
        every feedback in this domain uses ("system", "query", "column", "wrong", ...) have a high commonness,
        and numbers weigh 0.3 (they are usually the case's own figures, not the lesson)
    O = Σ over shared objects of min(w_a, w_b) / max(1, min(Σ w_a, Σ w_b))
        (a weighted overlap coefficient: a short comment naming one column fully matches a policy naming that
        column and two more; the floor of 1 keeps one shared table name from counting as a full match)
    C = Jaccard of the character trigrams of the normalized texts (a backoff for spellings and word forms)

    base       = 0.8·T + 0.2·C
    similarity = base + (1 − base)·0.6·O    when the texts share schema objects
                 0.8·base                   when both name objects (Σ w ≥ 1) and share none
                 base                       otherwise

Shared schema objects are the strongest evidence that two texts teach the same lesson, so they pull the score
towards 1 rather than adding a fixed amount; the terms carry paraphrases across the two languages; disjoint
objects are evidence of different lessons even when the wording is alike.

:class:`Document` holds a text prepared once (terms, objects, trigrams) for ranking many texts against one;
``Document.of_parts`` adds parts that only set a text's scene (the question of a comment, the example
questions of a rule), each scaled to a share of the text's own term vector: the setting can tip a match but
never carry it.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

# Vietnamese phrases with their diacritics, mapped before folding, where folding would make them ambiguous
# ("tỉnh" province / "tính" compute, "năm" year / "nằm" lies in, "bộ" ministry / "bộ dữ liệu" dataset).
# Longer phrases are replaced first, so "đang hoạt động" wins over "hoạt động".
_VIETNAMESE_PHRASES: dict[str, str] = {
    # entities
    "hệ thống thông tin": "system", "hệ thống": "system", "phần mềm": "application",
    "ứng dụng": "application", "cơ sở dữ liệu": "database", "bộ dữ liệu": "dataset", "dữ liệu": "data",
    "số liệu": "data", "cơ quan": "agency", "tổ chức": "agency", "chủ quản": "agency owner",
    "sở hữu": "owner", "quản lý": "manage", "đơn vị tính": "unit", "đơn vị": "unit", "bộ ngành": "ministry",
    "bộ, ngành": "ministry", "toàn bộ": "all", "bộ": "ministry", "ngành": "sector", "tài chính": "finance",
    "chính phủ": "government", "nhà nước": "government", "sở": "department", "cán bộ": "official",
    "đồng bộ": "sync", "bộ lọc": "filter", "cơ sở": "basis", "xã hội": "society", "đồng ý": "agree",
    "cộng đồng": "community", "hội đồng": "council", "cung cấp": "provide", "ủy ban nhân dân": "committee",
    "ubnd": "committee", "tỉnh thành": "province", "tỉnh/thành": "province", "tỉnh": "province",
    "thành phố": "province", "địa phương": "province", "địa bàn": "province", "vị trí": "province",
    "địa điểm": "province", "quận": "district", "huyện": "district", "xã": "commune", "phường": "commune",
    "người dùng hoạt động hằng tháng": "monthly active user",
    "người dùng hoạt động hàng tháng": "monthly active user", "số người dùng": "user", "người dùng": "user",
    "người sử dụng": "user", "tài khoản": "account", "hằng tháng": "monthly", "hàng tháng": "monthly",
    "mỗi tháng": "monthly",
    # statuses and attributes
    "trạng thái": "status", "tình trạng": "status", "đang hoạt động": "operating",
    "đang vận hành": "operating", "vận hành": "operating", "ngừng hoạt động": "retired",
    "dừng hoạt động": "retired", "ngừng vận hành": "retired", "ngừng sử dụng": "retired",
    "đã ngừng": "retired", "hoạt động": "active", "thí điểm": "piloting", "thử nghiệm": "piloting",
    "chạy thử": "piloting", "đang xây dựng": "building", "xây dựng": "building", "ngân sách": "budget",
    "kinh phí": "budget", "chi phí": "budget", "vốn đầu tư": "budget", "tổng mức đầu tư": "budget",
    "tiền": "budget", "triệu đồng": "million vnd", "tỷ đồng": "billion vnd", "tỉ đồng": "billion vnd",
    "nghìn đồng": "thousand vnd", "triệu": "million", "tỷ": "billion", "tỉ": "billion", "nghìn": "thousand",
    "ngàn": "thousand", "đồng": "vnd", "vnđ": "vnd", "an toàn thông tin": "security", "bảo mật": "security",
    "an ninh": "security", "cấp độ": "level", "mức độ": "level", "cấp": "level", "kết nối": "integration",
    "tích hợp": "integration", "liên thông": "integration", "nền tảng": "platform",
    "trục liên thông": "platform", "điện toán đám mây": "cloud", "đám mây": "cloud", "máy chủ": "hosting",
    "lưu trữ": "hosting", "tại chỗ": "premise", "triển khai": "launched", "ra mắt": "launched",
    "đưa vào sử dụng": "launched", "khai trương": "launched", "năm": "year", "ngày": "date", "tháng": "month",
    "quý": "quarter",
    # the query and the answer
    "tên cột": "column", "cột": "column", "trường dữ liệu": "column", "bảng": "table", "dòng": "row",
    "bản ghi": "row", "truy vấn": "query", "câu lệnh": "query", "câu truy vấn": "query",
    "điều kiện lọc": "filter", "điều kiện": "filter", "lọc": "filter", "gom nhóm": "group", "nhóm": "group",
    "sắp xếp": "sort", "đếm": "count", "số lượng": "count", "bao nhiêu": "count", "tổng": "total",
    "trung bình": "average", "lớn nhất": "maximum", "cao nhất": "maximum", "nhiều nhất": "maximum",
    "nhỏ nhất": "minimum", "thấp nhất": "minimum", "không trùng": "distinct", "riêng biệt": "distinct",
    "khác nhau": "distinct", "duy nhất": "distinct", "trùng lặp": "duplicate", "trùng": "duplicate",
    "nối bảng": "join", "kết hợp bảng": "join", "ghép bảng": "join", "nối": "join", "liên kết": "join",
    "tên": "name", "mã": "id", "loại": "type", "kiểu": "type", "nằm ở": "stored", "nằm trong": "stored",
    "lưu ở": "stored", "lưu trong": "stored", "câu trả lời": "answer", "trả lời": "answer",
    "phản hồi": "answer", "câu hỏi": "question", "tiếng việt": "vietnamese", "tiếng anh": "english",
    "ngôn ngữ": "language", "định dạng": "format", "làm tròn": "round", "chữ số thập phân": "decimal",
    "thập phân": "decimal", "phần trăm": "percent", "tỷ lệ": "share", "tỉ lệ": "share", "tỷ trọng": "share",
    "trình bày": "format", "dạng": "format", "hiển thị": "display", "giảm dần": "descending",
    "tăng dần": "ascending", "ngắn gọn": "concise", "con số": "count", "dài dòng": "concise",
    "chi tiết": "detail", "danh sách": "list", "liệt kê": "list", "gạch đầu dòng": "bullet",
    "biểu đồ": "chart", "trở lên": "above", "trở xuống": "below", "tối thiểu": "minimum", "tối đa": "maximum",
    "bao gồm": "include", "gồm cả": "include", "loại trừ": "exclude", "không tính": "exclude",
    "nghĩa là": "mean", "có nghĩa": "mean", "tức là": "mean", "tương ứng": "correspond",
    "ứng với": "correspond", "định nghĩa": "define", "thay vì": "instead", "chứ không phải": "instead",
    "sử dụng": "use", "dùng": "use", "giá trị": "value", "thuộc về": "belong", "thuộc": "belong",
    "sự cố": "incident", "lỗi hệ thống": "incident", "chi tiêu": "budget", "đã chi": "budget",
    "hỏi": "ask", "kết quả": "result", "sai": "wrong", "đúng": "correct", "chính xác": "correct",
}

# The same phrases typed without diacritics; only those that stay unambiguous once folded.
_FOLDED_PHRASES: dict[str, str] = {
    "he thong": "system", "co quan": "agency", "nguoi dung": "user", "so nguoi dung": "user",
    "nguoi su dung": "user", "tai khoan": "account", "ngan sach": "budget", "kinh phi": "budget",
    "dang hoat dong": "operating", "dang van hanh": "operating", "van hanh": "operating",
    "ngung hoat dong": "retired", "thi diem": "piloting", "thu nghiem": "piloting", "trang thai": "status",
    "bao mat": "security", "an toan thong tin": "security", "cap do": "level", "ket noi": "integration",
    "tich hop": "integration", "lien thong": "integration", "nen tang": "platform", "dam may": "cloud",
    "trieu dong": "million vnd", "ty dong": "billion vnd", "tinh thanh": "province", "thanh pho": "province",
    "dia phuong": "province", "bo nganh": "ministry", "truy van": "query", "ten cot": "column",
    "tieng viet": "vietnamese", "tieng anh": "english", "ngon ngu": "language", "tra loi": "answer",
    "cau tra loi": "answer", "dinh dang": "format", "lam tron": "round", "thap phan": "decimal",
    "phan tram": "percent", "tro len": "above", "tro xuong": "below", "bao gom": "include",
    "tuong ung": "correspond", "nghia la": "mean", "khong trung": "distinct", "trung lap": "duplicate",
    "trien khai": "launched", "hang thang": "monthly", "du lieu": "data", "so lieu": "data",
    "ket qua": "result", "gia tri": "value", "ty le": "share", "ti le": "share", "giam dan": "descending",
    "tang dan": "ascending", "ngan gon": "concise", "su co": "incident", "chi tieu": "budget",
}

# English words and inflections mapped to the canonical terms the Vietnamese phrases use.
_SYNONYMS: dict[str, str] = {
    "users": "user", "accounts": "account", "agencies": "agency", "organization": "agency",
    "organisation": "agency", "owns": "owner", "own": "owner", "owning": "owner", "owned": "owner",
    "ministries": "ministry", "provinces": "province", "city": "province", "cities": "province",
    "location": "province", "located": "province", "locality": "province", "region": "province",
    "operational": "operating", "operate": "operating", "operates": "operating", "pilot": "piloting",
    "trial": "piloting", "decommissioned": "retired", "discontinued": "retired", "retire": "retired",
    "cost": "budget", "costs": "budget", "funding": "budget", "spending": "budget", "expenditure": "budget",
    "money": "budget", "budgets": "budget", "spent": "budget", "spend": "budget", "spends": "budget",
    "incidents": "incident", "outage": "incident", "outages": "incident", "people": "user",
    "millions": "million", "mil": "million", "billions": "billion",
    "bn": "billion", "thousands": "thousand", "dong": "vnd", "secure": "security", "levels": "level",
    "tier": "level", "connected": "integration", "connect": "integration", "connects": "integration",
    "connection": "integration", "connections": "integration", "integrated": "integration",
    "integrate": "integration", "integrations": "integration", "linked": "integration",
    "platforms": "platform", "hosted": "hosting", "host": "hosting", "hosts": "hosting",
    "premises": "premise", "launch": "launched", "launches": "launched", "deployed": "launched",
    "deploy": "launched", "started": "launched", "years": "year", "dates": "date", "reply": "answer",
    "replies": "answer", "respond": "answer", "response": "answer", "responses": "answer",
    "answers": "answer", "answered": "answer", "columns": "column", "field": "column", "fields": "column",
    "tables": "table", "rows": "row", "records": "row", "record": "row", "entries": "row", "queries": "query",
    "unique": "distinct", "deduplicate": "distinct", "duplicates": "duplicate", "duplicated": "duplicate",
    "number": "count", "counts": "count", "counted": "count", "counting": "count", "sum": "total",
    "avg": "average", "means": "mean", "meaning": "mean", "refers": "mean", "defined": "define",
    "definition": "define", "corresponds": "correspond", "corresponding": "correspond", "includes": "include",
    "including": "include", "included": "include", "inclusive": "include", "excludes": "exclude",
    "excluding": "exclude", "excluded": "exclude", "filters": "filter", "filtered": "filter",
    "filtering": "filter", "grouped": "group", "grouping": "group", "sorted": "sort", "sorting": "sort",
    "order": "sort", "ordered": "sort", "joins": "join", "joined": "join", "joining": "join",
    "rounded": "round", "rounding": "round", "decimals": "decimal", "percentage": "percent",
    "percentages": "percent", "lists": "list", "listing": "list", "listed": "list", "bullets": "bullet",
    "stores": "stored", "store": "stored", "kept": "stored", "holds": "stored", "used": "use", "using": "use",
    "uses": "use", "incorrect": "wrong", "names": "name", "named": "name", "types": "type",
    "statuses": "status", "values": "value", "largest": "maximum", "highest": "maximum", "most": "maximum",
    "max": "maximum", "smallest": "minimum", "lowest": "minimum", "fewest": "minimum", "min": "minimum",
    "gte": "above", "results": "result", "ratio": "share", "proportion": "share", "fraction": "share",
    "shares": "share", "bulleted": "bullet", "line": "row", "lines": "row", "present": "format",
    "presented": "format", "formatted": "format", "formatting": "format", "desc": "descending",
    "asc": "ascending", "descend": "descending", "ascend": "ascending", "brief": "concise",
    "short": "concise", "shorter": "concise", "verbose": "concise", "wordy": "concise", "figure": "count",
    "figures": "count",
}

# Multi-word English expressions read as one canonical term.
_ENGLISH_PHRASES: dict[str, str] = {
    "or above": "above", "or more": "above", "or higher": "above", "and above": "above", "at least": "above",
    "no less than": "above", "or below": "below", "or less": "below", "at most": "below",
    "no more than": "below", "in operation": "operating", "shut down": "retired", "went live": "launched",
    "go live": "launched", "number of": "count", "how many": "count", "decimal places": "decimal",
    "decimal place": "decimal", "on premise": "premise", "on prem": "premise", "stored in": "stored",
    "lives in": "stored", "too long": "concise", "to the point": "concise", "largest first": "descending",
    "smallest first": "ascending", "is kept in": "stored", "each month": "monthly", "per month": "monthly",
    "every month": "monthly", "a month": "monthly",
}

_STOPWORDS = frozenset("""
a an and are as at be been being but by can could did do does doing for from had has have having how i if in
into is it its itself me my no nor not of on or our ours out should so such than that the their theirs them
then there these they this those through to too was we were what when where which while who whom why will with
would you your yours again also just only please any all each very more over under per about here one ones
thing things way s t let lets get got go goes make made see shown show shows want wants whole both other
another yet still even ever every else etc vs isn aren wasn weren don doesn didn cannot
la cua va co cac nhung mot duoc cho trong khi thi nay do de voi khong phai roi cung nhu ma se da dang toi ban
hay hoac neu vao ra len xuong lai nua chi moi rat qua can nen theo tai tu den sau truoc nao gi ai bang ay vay
chu o ve nhe oi day kia thuc su hon nhat vi boi nam
""".split())

# Words nearly every feedback on this assistant uses: weak evidence that two texts teach the same lesson.
_COMMONNESS: dict[str, float] = {
    "system": 3.0, "query": 3.0, "column": 1.5, "table": 1.5, "answer": 1.5, "question": 2.0, "wrong": 3.0,
    "correct": 2.0, "use": 2.0, "data": 2.0, "result": 2.0, "sql": 2.0, "count": 1.0, "value": 1.0,
    "need": 2.0, "must": 2.0, "say": 2.0, "instead": 1.0, "assistant": 3.0, "ai": 3.0, "know": 2.0,
    "return": 1.5, "give": 1.5, "time": 1.5, "name": 1.0, "right": 1.5, "user": 0.5, "agency": 0.5,
    "database": 1.5, "bad": 3.0, "error": 1.0, "there": 2.0, "list": 0.5, "total": 0.5, "feedback": 3.0,
}
_NUMBER_WEIGHT = 0.3

_SQL_KEYWORDS = frozenset("""
select from where and or not in is null like ilike between join inner left right full outer cross on using
group by order having limit offset as distinct all union intersect except case when then else end desc asc
with insert into values update set delete true false exists any some interval filter over partition window
nulls first last fetch next rows row only lateral natural returning recursive materialized date timestamp int
integer bigint smallint numeric decimal float real text varchar char boolean
""".split())
_GENERIC_NAMES = frozenset({"id", "name", "names", "count", "value", "type"})
# Nearly every lesson touches a table or a column called id or name: little evidence of the same lesson.
TABLE_WEIGHT = 0.2
GENERIC_WEIGHT = 0.1
# Keys (agency_id, systems.id) say how tables join, which many lessons share; what a lesson is about is rarer.
KEY_WEIGHT = 0.5

_IDENTIFIER = r"[a-z_][a-z0-9_]*"
_TOKEN = re.compile(r"[a-z0-9_]+(?:\.[a-z_][a-z0-9_]*)*")
# An identifier may end a sentence ("read agencies.name."): only a dot before a word character extends it.
_QUALIFIED = re.compile(rf"(?<![\w.])({_IDENTIFIER})\.({_IDENTIFIER})(?!\w|\.\w)")
_SNAKE = re.compile(r"(?<![\w.])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?!\w|\.\w)")
# A quote opens after a non-word character and closes before one, so apostrophes (agency's, isn't) do not.
_SINGLE_QUOTED = re.compile(r"(?<![\w'])['‘]([^'‘’\n]{1,60})['’](?![\w'])")
_DOUBLE_QUOTED = re.compile(r'(?<!\w)\\?["“`]([^"“”`\\\n]{1,60})\\?["”`](?!\w)')
# SQL text: a SELECT whose list starts the way SQL does (*, a function call, identifiers followed by , FROM or
# AS), so that English such as "select the systems from Hanoi" is not read as a query.
_SQL_STATEMENT = re.compile(r"\bselect\s+(?:distinct\s+)?(?:\*|[\w.]+\s*\(|[\w.]+\s*(?:,|\bfrom\b|\bas\b))")
# A statement quoted inside a comment ends where the English resumes.
_SQL_END = re.compile(r";|\.\s|\n\s*\n")
_SQL_FROM_JOIN = re.compile(rf"\b(?:from|join)\s+({_IDENTIFIER})(?:\s+(?:as\s+)?({_IDENTIFIER}))?")
_SQL_AS_ALIAS = re.compile(rf"\bas\s+({_IDENTIFIER})")


class _WithoutMarks(dict):
    """A ``str.translate`` table that drops combining marks (category Mn) and keeps every other character; each
    character's category is looked up once, the first time it is met."""

    def __missing__(self, code_point: int) -> int | None:
        kept = None if unicodedata.category(chr(code_point)) == "Mn" else code_point
        self[code_point] = kept
        return kept


_WITHOUT_MARKS = _WithoutMarks()


def fold(text: str) -> str:
    """Lowercase with Vietnamese diacritics removed (đ becomes d)."""
    if text.isascii():
        # Nothing to normalize or strip: the character-by-character path below would return the same.
        return text.lower()
    text = unicodedata.normalize("NFC", text).replace("đ", "d").replace("Đ", "D")
    return unicodedata.normalize("NFD", text).translate(_WITHOUT_MARKS).lower()


def normalize(text: str) -> str:
    """Folded text, punctuation turned to spaces; identifiers such as ``agencies.province`` stay intact."""
    folded = fold(text)
    # A dot survives only between two word characters (agencies.province, 45.2); underscores always survive.
    folded = re.sub(r"(?<![a-z0-9_])\.|\.(?![a-z0-9_])", " ", folded)
    return " ".join(re.sub(r"[^a-z0-9_.\s]", " ", folded).split())


def _phrase_pattern(phrases: Iterable[str]) -> re.Pattern[str]:
    return re.compile(r"(?<![\w.])(" + _longest_first(phrases) + r")(?!\w|\.\w)")


def _longest_first(phrases: Iterable[str]) -> str:
    """An expression matching any of ``phrases``, the longest of those that fit where several do.

    The same matches as the phrases sorted by length and joined by ``|``, as a tree of shared prefixes: a flat
    list of hundreds of phrases is tried one by one at each word (~38 µs of a 200-character text for the
    Vietnamese list), the tree reads a character once per level. Where a phrase ends and a longer one goes on,
    the longer is tried first (a greedy optional part) and the match falls back to the shorter when the longer
    does not fit, exactly as the ordered list does.
    """
    tree: dict[str, dict] = {}
    for phrase in phrases:
        node = tree
        for character in phrase:
            node = node.setdefault(character, {})
        node[""] = {}  # a phrase ends here

    def expression(node: dict[str, dict]) -> str:
        branches = [re.escape(character) + expression(child) for character, child in sorted(node.items())
                    if character]
        if not branches:
            return ""
        either = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{either})?" if "" in node else either

    return expression(tree)


_VIETNAMESE_PATTERN = _phrase_pattern(_VIETNAMESE_PHRASES)
_FOLDED_PATTERN = _phrase_pattern(_FOLDED_PHRASES)
_ENGLISH_PATTERN = _phrase_pattern(_ENGLISH_PHRASES)
# Canonical terms are base forms already: "operating" is a status, not a verb to stem.
_CANONICAL = frozenset(word for table in (_VIETNAMESE_PHRASES, _FOLDED_PHRASES, _SYNONYMS, _ENGLISH_PHRASES)
                       for phrase in table.values() for word in phrase.split())
# The domain vocabulary: the canonical terms the lexicons map words of either language to.
DOMAIN_TERMS = _CANONICAL


def _stem(word: str) -> str:
    """Light English stemming: plural s, -ies, -ing and -ed where the stem stays recognizable."""
    if word in _CANONICAL or len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix, minimum in (("ing", 6), ("ed", 5)):
        if word.endswith(suffix) and len(word) >= minimum and not word.endswith("eed"):
            stem = word[: -len(suffix)]
            if len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] not in "lsz":
                stem = stem[:-1]  # planned -> plan, running -> run
            return stem
    if word.endswith(("ches", "shes")) or (word.endswith("es") and word[-3] in "sxz"):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _replace(pattern: re.Pattern[str], table: Mapping[str, str], text: str) -> str:
    return pattern.sub(lambda match: f" {table[match.group(1)]} ", text)


def _term(token: str) -> str | None:
    if token in _STOPWORDS or (len(token) < 2 and not token.isdigit()):
        return None
    if token in _SYNONYMS:
        return _SYNONYMS[token]
    stemmed = _stem(token)
    return _SYNONYMS.get(stemmed, stemmed)


@lru_cache(maxsize=50_000)
def _terms(text: str) -> tuple[str, ...]:
    lowered = unicodedata.normalize("NFC", text).lower()
    lowered = re.sub(r">=|≥", " gte ", lowered).replace("%", " percent ")
    lowered = _replace(_VIETNAMESE_PATTERN, _VIETNAMESE_PHRASES, lowered)
    folded = normalize(lowered)
    folded = _replace(_FOLDED_PATTERN, _FOLDED_PHRASES, folded)
    folded = _replace(_ENGLISH_PATTERN, _ENGLISH_PHRASES, folded)
    result: list[str] = []
    for token in _TOKEN.findall(folded):
        if "." in token and not token.replace(".", "").isdigit():
            # A qualified name is a term of its own and also its column: agencies.province meets province.
            # A one-letter qualifier is an alias (s.id) or an abbreviation (e.g.), not a table.
            qualifier, token = token.rsplit(".", 1)
            if len(qualifier) > 1:
                result.append(f"{qualifier}.{token}")
        term = _term(token)
        if term is not None:
            result.append(term)
    return tuple(result)


def terms(text: str) -> list[str]:
    """The text's terms: folded, no stopwords, stemmed, Vietnamese domain phrases as canonical English."""
    return list(_terms(text))


def _value_object(literal: str) -> tuple[str, float] | None:
    # LIKE patterns carry wildcards around the value: '%Da Nang%' names the value Da Nang.
    cleaned = " ".join(normalize(literal.strip("%")).split())
    if not cleaned or len(cleaned.split()) > 4:
        return None  # a longer quotation is the user's wording, not a value of the database
    numeric = re.fullmatch(r"[\d\s.:-]+", cleaned) is not None
    return f"value:{cleaned}", 0.3 if numeric else 1.0


def _column_weight(column: str, plain: float) -> float:
    if column in _GENERIC_NAMES:
        return GENERIC_WEIGHT
    if column.endswith("_id"):
        return KEY_WEIGHT
    return 1.0 if "_" in column else plain


def _qualified_weight(column: str) -> float:
    return KEY_WEIGHT if column == "id" or column.endswith("_id") else 1.0


def _add(objects: dict[str, float], name: str, weight: float) -> None:
    objects[name] = max(weight, objects.get(name, 0.0))


def _sql_objects(sql: str, objects: dict[str, float]) -> None:
    """Tables, qualified columns (aliases resolved) and bare columns of one SQL statement."""
    aliases: dict[str, str] = {}
    for table, alias in _SQL_FROM_JOIN.findall(sql):
        if table in _SQL_KEYWORDS:
            continue
        _add(objects, table, TABLE_WEIGHT)
        if alias and alias not in _SQL_KEYWORDS:
            aliases[alias] = table
    column_aliases = set(_SQL_AS_ALIAS.findall(sql)) - set(aliases.values())
    for qualifier, column in _QUALIFIED.findall(sql):
        table = aliases.get(qualifier, qualifier)
        if len(table) > 1:
            _add(objects, f"{table}.{column}", _qualified_weight(column))
            _add(objects, table, TABLE_WEIGHT)
        _add(objects, column, _column_weight(column, plain=0.8))
    unqualified = _QUALIFIED.sub(" ", sql)
    for match in re.finditer(rf"(?<![\w.]){_IDENTIFIER}(?![\w.])", unqualified):
        token = match.group(0)
        is_function = unqualified[match.end():].lstrip().startswith("(")
        if (token in _SQL_KEYWORDS or token in aliases or token in column_aliases or is_function
                or len(token) < 2 or token in objects):
            continue
        _add(objects, token, _column_weight(token, plain=0.8))


@lru_cache(maxsize=50_000)
def _object_weights(text: str) -> tuple[tuple[str, float], ...]:
    objects: dict[str, float] = {}
    lowered = unicodedata.normalize("NFC", text).lower()
    # Each expression below is tried at every character; most texts have no quote, dot or SELECT, and a look
    # for the character an expression cannot match without spares the scan (~40 of ~48 µs for a rule).
    without_literals = lowered
    if "'" in lowered or "‘" in lowered:
        for literal in _SINGLE_QUOTED.findall(lowered):
            value = _value_object(literal)
            if value is not None:
                _add(objects, *value)
        # Literals are values, not identifiers: 'e-office.gov' must not read as a qualified name.
        without_literals = _SINGLE_QUOTED.sub(" ", lowered)
    quotes = ('"' in without_literals or "“" in without_literals or "`" in without_literals)
    for quoted in _DOUBLE_QUOTED.findall(without_literals) if quotes else ():
        # Error messages and SQL quote identifiers: column "users" does not exist, `total_users`.
        quoted = quoted.strip()
        if re.fullmatch(rf"{_IDENTIFIER}(?:\.{_IDENTIFIER})?", quoted):
            _add(objects, quoted, 1.0 if "." in quoted or "_" in quoted else 0.8)
    for qualifier, column in _QUALIFIED.findall(without_literals) if "." in without_literals else ():
        if len(qualifier) > 1:  # one letter is a table alias (s.id) or an abbreviation (e.g.)
            _add(objects, f"{qualifier}.{column}", _qualified_weight(column))
            _add(objects, qualifier, TABLE_WEIGHT)
        if len(column) > 1:
            _add(objects, column, _column_weight(column, plain=0.6))
    for name in _SNAKE.findall(without_literals) if "_" in without_literals else ():
        _add(objects, name, _column_weight(name, plain=1.0))
    covered = 0
    for statement in _SQL_STATEMENT.finditer(without_literals) if "select" in without_literals else ():
        if statement.start() < covered:
            continue  # a subquery of a statement already read
        end = _SQL_END.search(without_literals, statement.start())
        covered = end.start() if end else len(without_literals)
        _sql_objects(without_literals[statement.start():covered], objects)
    return tuple(sorted(objects.items()))


def object_weights(text: str) -> dict[str, float]:
    """The schema objects a text names, each with its weight as evidence (see the module docstring)."""
    return dict(_object_weights(text))


def schema_objects(text: str) -> set[str]:
    """Schema objects the text names: snake_case and qualified identifiers, quoted values, SQL identifiers."""
    return {name for name, _ in _object_weights(text)}


def _term_weight(term: str) -> float:
    if term.replace(".", "").isdigit():
        return _NUMBER_WEIGHT
    return 1.0 / (1.0 + _COMMONNESS.get(term, 0.0))


def _trigrams(text: str) -> frozenset[str]:
    normalized = normalize(text)
    if not normalized:
        return frozenset()
    padded = f"  {normalized} "
    return frozenset(padded[i:i + 3] for i in range(len(padded) - 2))


@dataclass(frozen=True)
class Document:
    """A text prepared once for many comparisons: weighted terms, weighted schema objects, trigrams."""

    vector: Mapping[str, float]
    norm: float
    objects: Mapping[str, float]
    object_mass: float
    main: str = field(repr=False)  # the text the trigrams are taken from

    @cached_property
    def trigrams(self) -> frozenset[str]:
        """The main text's character trigrams, taken when first asked for: most comparisons are settled without
        them (``similarity_at_least``), and a text never compared by trigrams neither builds nor keeps them."""
        return _trigrams(self.main)

    @classmethod
    def of(cls, text: str) -> Document:
        """Prepare one text; the same text gives the same (cached) document."""
        return _document(text)

    @classmethod
    def of_parts(cls, main: str, setting: Iterable[tuple[str, float]] = (),
                 objects: Mapping[str, float] | None = None) -> Document:
        """Prepare a text (``main``) with parts that only set its scene, such as the question of a comment.

        Each setting part's term vector is scaled to ``weight`` times the length of the main text's vector,
        so the setting can tip a comparison but never carry it: a main text with no terms gets none from its
        setting. The trigrams are the main text's; ``objects`` replaces the schema objects found in all the
        parts when the caller knows better which objects the text is about.
        """
        vector = _term_vector(main)
        norm = _norm(vector)
        found = dict(_object_weights(main))
        for text, weight in setting:
            if objects is None:
                for name, object_weight in _object_weights(text):
                    _add(found, name, object_weight)
            part = _term_vector(text)
            part_norm = _norm(part)
            if not part_norm or not norm or weight <= 0:
                continue
            scale = weight * norm / part_norm
            for term, value in part.items():
                vector[term] = vector.get(term, 0.0) + scale * value
        chosen = dict(objects) if objects is not None else found
        return cls(vector=vector, norm=_norm(vector), objects=chosen, object_mass=sum(chosen.values()), main=main)


def _term_vector(text: str) -> dict[str, float]:
    # Sublinear term frequency: a rule that says "percent" five times is not five times as much about percent.
    counts = Counter(_terms(text))
    return {term: (1.0 + math.log(count)) * _term_weight(term) for term, count in counts.items()}


def _norm(vector: Mapping[str, float]) -> float:
    return math.sqrt(sum(value * value for value in vector.values()))


@lru_cache(maxsize=20_000)
def _document(text: str) -> Document:
    return Document.of_parts(text)


def term_similarity(a: Document, b: Document) -> float:
    """Cosine of the weighted term vectors."""
    if not a.norm or not b.norm:
        return 0.0
    small, large = (a.vector, b.vector) if len(a.vector) <= len(b.vector) else (b.vector, a.vector)
    dot = sum(value * large.get(term, 0.0) for term, value in small.items())
    return min(1.0, dot / (a.norm * b.norm))


def object_overlap(a: Document, b: Document) -> float:
    """Weighted overlap coefficient of the schema objects; 0 when either names none."""
    if not a.objects or not b.objects:
        return 0.0
    small, large = (a.objects, b.objects) if len(a.objects) <= len(b.objects) else (b.objects, a.objects)
    shared = sum(min(weight, large[name]) for name, weight in small.items() if name in large)
    return min(1.0, shared / max(1.0, min(a.object_mass, b.object_mass)))


def trigram_similarity(a: Document, b: Document) -> float:
    """Jaccard of character trigrams."""
    if not a.trigrams or not b.trigrams:
        return 0.0
    shared = len(a.trigrams & b.trigrams)
    return shared / (len(a.trigrams) + len(b.trigrams) - shared)


def similarity_docs(a: Document, b: Document) -> float:
    """The similarity of two prepared documents (formula in the module docstring)."""
    return _combined(a, b, term_similarity(a, b), trigram_similarity(a, b), object_overlap(a, b))


def similarity_at_least(a: Document, b: Document, threshold: float) -> float | None:
    """``similarity_docs(a, b)`` when it is at least ``threshold``, else None.

    Sooner for most pairs: the similarity grows with the trigrams' share, so when even identical trigrams would
    leave the pair below ``threshold`` (with a hair of margin for rounding), they are not compared at all.
    """
    term, overlap = term_similarity(a, b), object_overlap(a, b)
    if _combined(a, b, term, 1.0, overlap) < threshold - 1e-9:
        return None
    score = _combined(a, b, term, trigram_similarity(a, b), overlap)
    return score if score >= threshold else None


def _combined(a: Document, b: Document, term: float, trigram: float, overlap: float) -> float:
    base = 0.8 * term + 0.2 * trigram
    if overlap > 0:
        score = base + (1.0 - base) * 0.6 * overlap
    elif a.object_mass >= 1.0 and b.object_mass >= 1.0:
        score = 0.8 * base
    else:
        score = base
    return max(0.0, min(1.0, score))


def similarity(a: str, b: str) -> float:
    """How likely two texts speak of the same thing, in [0, 1]."""
    return similarity_docs(Document.of(a), Document.of(b))
