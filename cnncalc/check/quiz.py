"""Documents made from a sheet: a student's questions (plain, markdown or JSON) and the blank
(or, for instructors, filled-in) answer file."""
from __future__ import annotations

import json
import re
from typing import Any

from cnncalc.check.answers import CONVENTIONS
from cnncalc.check.sheet import SheetVariant, asks, fmt_points, item_text, solutions

ANSWER_FORMS = ("55x55x96, [55, 55, 96], 34,848, 35K, 1.8e9, 61 MB, yes / no")


def _pts(p) -> str:
    return f"{fmt_points(p)} point{'' if p == 1 else 's'}"


def _design_note(sv: SheetVariant, it) -> str:
    return "the network (a path next to your answer file, a zoo name, or an inline spec) with " + \
        ", ".join(q.answer_text for q in it.questions)


def quiz_dict(sv: SheetVariant) -> dict:
    sheet = sv.sheet
    items = []
    for n, it in enumerate(sv.items, 1):
        if it.design:
            answers = [{"id": it.id, "asks": _design_note(sv, it)}]
        else:
            answers = [{"id": q.id, "asks": asks(q)} for q in it.questions]
        items.append({"n": n, "id": it.id, "text": item_text(it, sv.answers), "points": fmt_points(it.points),
                      "answers": answers})
    asked = {q.quantity for q in sv.questions}
    return {"sheet": sheet.id, "title": sheet.title, "variant": sv.variant, "items": items,
            "conventions": [CONVENTIONS[k] for k in CONVENTIONS if k in asked]}


def render_quiz(sv: SheetVariant, fmt: str = "plain") -> str:
    """A student's questions with the drawn numbers: ``plain``, ``markdown`` or ``json``."""
    d = quiz_dict(sv)
    if fmt == "json":
        from cnncalc.escape import json_dumps

        return json_dumps(d, indent=2) + "\n"
    title = d["title"] or d["sheet"]
    who = f"sheet {d['sheet']}" + (f", variant {d['variant']}" if d["variant"] is not None else "")
    out = []
    if fmt == "markdown":
        out += [f"# {_md(title)}", "", f"*{_md(who)}*", ""]
        for it in d["items"]:
            out.append(f"{it['n']}. **{_md(it['text'])}** ({_pts_s(it['points'])})")
            for a in it["answers"]:
                out.append(f"   - `{a['id']}`: {_md(a['asks'])}")
        out += ["", f"Answer forms: {ANSWER_FORMS}."]
        out += [f"Also accepted: {_md(c)}." for c in d["conventions"]]
        return "\n".join(out + [""])
    out += [title, who, ""]
    for it in d["items"]:
        out.append(f"{it['n']}. {it['text']}  [{_pts_s(it['points'])}]")
        w = max(len(a["id"]) for a in it["answers"])
        for a in it["answers"]:
            out.append(f"   {a['id'].ljust(w)}  {a['asks']}")
    out += ["", f"Answer forms: {ANSWER_FORMS}."]
    out += [f"Also accepted: {c}." for c in d["conventions"]]
    return "\n".join(out) + "\n"


def _pts_s(p: str) -> str:
    return f"{p} point{'' if p == '1' else 's'}"


def _md(s: str) -> str:
    return re.sub(r"([\\`*_|<>\[\]])", r"\\\1", str(s))


_PLAIN = re.compile(r"^[A-Za-z0-9][\w.,+\- ]*$")


def yaml_value(v: Any, exact: bool = False) -> str:
    """A value written so that YAML reads it back as the same answer (``exact``: as the same
    string — ids — where an answer may read ``no`` as false)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, dict)):
        return json.dumps(v, ensure_ascii=False)     # JSON flow style is YAML
    s = str(v)
    if _PLAIN.match(s) and ": " not in s and " #" not in s and (not exact or _reads_back(s)):
        return s
    return json.dumps(s, ensure_ascii=False)


def _reads_back(s: str) -> bool:
    """YAML reads it as this same string (not 007 → 7, yes → True, 1e3 → 1000.0)."""
    import yaml

    try:
        return yaml.safe_load(s) == s
    except yaml.YAMLError:
        return False


def _id(k: str) -> str:
    return k if _PLAIN.match(k) and " " not in k else json.dumps(k)


def render_template(sv: SheetVariant, filled: bool = False) -> str:
    """The answer file a student fills in: every question id, its text as a comment. With
    ``filled`` (instructors), the expected answers are written in: the solution key as a
    submission, which passes ``cnncalc check --key``."""
    sheet = sv.sheet
    sol = {s.question.id: s for s in solutions(sv)} if filled else {}
    title = sheet.title or sheet.id
    out = [f"# Answers to: {_one_line(title)} ({_one_line(sheet.path)})"]
    if filled:
        out.append("# THE SOLUTION KEY (every expected answer filled in) — not for students")
    else:
        out += ["# Write each answer after its colon, the way you would on paper:",
                f"#   {ANSWER_FORMS}",
                "# Only the answers count: the questions, networks and points come from the sheet."]
    out.append(f"sheet: {yaml_value(sheet.id, exact=True)}")
    out.append("id:                   # your student id (as on the class list)")
    if sheet.has_variants:
        out.append(f"variant: {yaml_value(sv.variant, exact=True)}" if sv.variant is not None
                   else "variant:              # the variant you were given: your questions' numbers depend on it")
    out += ["student:", "answers:"]
    rows: list[tuple[str, str] | str] = []
    for n, it in enumerate(sv.items, 1):
        rows.append(f"  # {n}. {_one_line(item_text(it, sv.answers))} ({_pts(it.points)})")
        if it.design:
            val = sol[it.questions[0].id].answer if filled else None
            if isinstance(val, dict):      # the reference network, inline (block style)
                rows.append((f"  {_id(it.id)}:", _one_line(_design_note(sv, it))))
                rows += ["    " + line for line in _block(val)]
                continue
            rows.append((f"  {_id(it.id)}: {yaml_value(val)}".rstrip(), _one_line(_design_note(sv, it))))
            continue
        for q in it.questions:
            val = sol[q.id].answer if filled else None
            rows.append((f"  {_id(q.id)}: {yaml_value(val)}".rstrip(), asks(q)))
    w = max((len(r[0]) for r in rows if isinstance(r, tuple)), default=0)
    out += [r if isinstance(r, str) else f"{r[0].ljust(w)}  # {r[1]}" for r in rows]
    return "\n".join(out) + "\n"


def _block(doc: dict) -> list[str]:
    """A network spec as block YAML lines (its innermost mappings and lists in flow style)."""
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, allow_unicode=True,
                          width=100).splitlines()


def _one_line(s: str) -> str:
    """One line for a YAML comment: whitespace runs (line breaks included) as one space, any
    other control character shown escaped (YAML refuses them even in comments)."""
    from cnncalc.escape import term_text

    return term_text(" ".join(str(s).split()))


__all__ = ["render_quiz", "render_template", "quiz_dict", "yaml_value"]
