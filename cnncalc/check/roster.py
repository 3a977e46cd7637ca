"""A class roster: who should hand in, under which id, and (optionally) with which variant.

``--roster roster.csv`` is a CSV file with a header row::

    id,name,variant
    s1001,Ada Lovelace,
    s1002,Bob Stone,B          # an explicit variant (else each student's id draws their own)

Columns are found by their header, case and spaces ignored: the student id (``id``,
``student id``, ``sid``, ``sis user id``, ``username``, ``email``; a Canvas gradebook export,
which has both ``ID`` and ``SIS User ID``, is read by its ``SIS User ID``), the name (``name``,
``student``, ``full name``) and the ``variant``. Other columns are kept: the LMS export echoes
Canvas's ``Student``, ``ID``, ``SIS User ID``, ``SIS Login ID`` and ``Section`` back. Canvas's
"Points Possible" row is skipped. Every problem is an error with file:line (exit 2).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from cnncalc.errors import SpecError, short

ID_HEADERS = ("id", "student id", "sid", "sis user id", "username", "login", "email")
NAME_HEADERS = ("name", "student", "full name", "student name")
CANVAS = ("student", "id", "sis user id", "sis login id", "section")


@dataclass
class Student:
    id: str
    name: str | None
    variant: str | None
    line: int
    columns: dict[str, str] = field(default_factory=dict)   # every cell, by normalised header


@dataclass
class Roster:
    path: str
    students: list[Student]
    has_variants: bool = False

    def __post_init__(self):
        self.by_id = {s.id: s for s in self.students}
        by_name: dict[str, list[Student]] = {}
        for s in self.students:
            if s.name:
                by_name.setdefault(name_key(s.name), []).append(s)
        self._by_name = {k: v[0] for k, v in by_name.items() if len(v) == 1}   # unambiguous names only

    def get(self, sid: str | None) -> Student | None:
        return None if sid is None else self.by_id.get(sid)

    def by_name(self, name: str | None) -> Student | None:
        """The one student of that name (case and spacing ignored), if exactly one has it."""
        return None if not name else self._by_name.get(name_key(name))


def name_key(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def _norm(header: str) -> str:
    return " ".join(str(header).replace("_", " ").split()).casefold()


def load_roster(path: str | Path) -> Roster:
    """Read a roster CSV (read like an answer file: a regular UTF-8 file within the size limit)."""
    from cnncalc.spec.yamlsafe import read_text_file

    text = read_text_file(Path(path), "roster")
    return parse_roster(text.lstrip("\ufeff"), str(path))


def parse_roster(text: str, file: str = "<roster>") -> Roster:
    def err(msg, line=None, hint=None):
        return SpecError(msg, file=file, line=line, hint=hint)

    try:
        rows = list(csv.reader(text.splitlines()))
    except csv.Error as e:
        raise err(f"not a CSV file: {e}") from None
    if not rows or not any(c.strip() for c in rows[0]):
        raise err("the roster is empty: it needs a header row such as 'id,name,variant'", 1)
    header = [_norm(h) for h in rows[0]]
    dup = next((h for h in header if h and header.count(h) > 1), None)
    if dup:
        raise err(f"the roster has two columns named {dup!r}", 1)
    if "sis user id" in header and "id" in header:          # a Canvas gradebook export
        id_col = header.index("sis user id")
    else:
        id_col = next((header.index(h) for h in ID_HEADERS if h in header), None)
    if id_col is None:
        raise err(f"the roster has no student id column (its columns: {short(', '.join(rows[0]), 80)})", 1,
                  hint="name the column 'id' (or 'student id', 'sid', 'SIS User ID', 'email')")
    name_col = next((header.index(h) for h in NAME_HEADERS if h in header), None)
    var_col = header.index("variant") if "variant" in header else None
    students: list[Student] = []
    seen: dict[str, int] = {}
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        cells = {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header) if h}
        name = row[name_col].strip() if name_col is not None and name_col < len(row) else ""
        if name.startswith("Points Possible"):               # Canvas's second row
            continue
        sid = row[id_col].strip() if id_col < len(row) else ""
        if not sid:
            raise err(f"row {n} has no student id", n, hint="every student needs an id: the one they write "
                                                            "in 'id:' of their answers")
        if any(ord(c) < 32 or ord(c) == 127 for c in sid) or len(sid) > 200:
            raise err(f"the student id {short(sid)} holds control characters or is too long", n)
        if sid in seen:
            raise err(f"the student id {short(sid)} is on the roster twice (the other is on line {seen[sid]})", n)
        seen[sid] = n
        variant = row[var_col].strip() if var_col is not None and var_col < len(row) else ""
        students.append(Student(sid, name or None, variant or None, n, cells))
    if not students:
        raise err("the roster lists no students", 1)
    return Roster(file, students, has_variants=any(s.variant for s in students))


def canvas_columns(student: Student | None, sid: str | None, name: str | None) -> list[str]:
    """Student, ID, SIS User ID, SIS Login ID, Section of one student: Canvas's own when the
    roster is a Canvas export, else the name and the id (as the SIS User ID)."""
    cols = student.columns if student is not None else {}
    if all(c in cols for c in ("id", "sis user id")):
        return [cols.get(c, "") for c in CANVAS]
    return [name or "", "", sid or "", cols.get("sis login id", ""), cols.get("section", "")]


__all__ = ["Student", "Roster", "load_roster", "parse_roster", "name_key", "canvas_columns"]
