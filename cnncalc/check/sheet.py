"""The instructor's question sheet: the only authority on what is asked.

A sheet is written like an answer file (see ``cnncalc.check``) with the answers left blank
(any value written there is ignored), plus three sheet-only keys::

    sheet: cnn-homework-2          # its id: submissions name it (default: the file name)
    title: Homework 2 — sizes of CNN layers
    spec: alexnet
    questions:
      - id: conv1-shape
        text: Output volume of AlexNet CONV1
        layer: conv1
        shape:                     # the quantity asked; the student answers it
        points: 2                  # default 1; shared equally by the answers of the item
      - id: my-conv
        text: "{conv} {kernel}x{kernel} filters, stride {stride}, on {input}"
        layer: {input: {choose: [28x28x3, 32x32x3]}, conv: 8, kernel: {choose: [3, 5]},
                stride: {range: [1, 3]}}       # per-student variants: see cnncalc.check.variants
        shape:
        params:
      - id: design
        require: [params <= 1M, output = 1x1x10]    # the network is the student's answer
        spec: design_net.yaml                          # (optional: the reference solution)

Questions, specs, options and points come only from here; :class:`SheetVariant` is the sheet
as one student sees it (the drawn numbers filled in), with its questions validated and the
networks analysed once — expected values are cached by the question's *definition*, so a
class of 200 sharing (or mostly sharing) questions costs little more than one submission.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from cnncalc.check import variants as V
from cnncalc.check.answers import AnswerFile, Question, answers_from_doc, quantity_label
from cnncalc.check.grade import Expected, Grader, NotFit
from cnncalc.errors import SpecError
from cnncalc.shapes import fmt_shape
from cnncalc.spec.yamlsafe import LineDict, LineList, load_yaml

SHEET_ONLY_TOP = ("sheet", "seed")
SHEET_ONLY_ITEM = ("points", "visibility")
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")   # Gradescope's


# ------------------------------------------------------------------------------ definitions
def plain(v: Any) -> Any:
    """LineDict/LineList → dict/list, for comparing and keying definitions."""
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain(x) for x in v]
    return v


def resolved_spec(q: Question, af: AnswerFile) -> Any:
    """The network a question is about, after following the file's named ``specs:``."""
    ref = q.spec if q.spec is not None else (None if isinstance(q.layer, dict) else af.spec)
    seen = set()
    while isinstance(ref, str) and ref in af.specs and ref not in seen:
        seen.add(ref)
        ref = af.specs[ref]
    return ref


def definition(q: Question, af: AnswerFile) -> dict:
    """What a question asks, field by field (everything but the answer)."""
    d = {"spec": plain(resolved_spec(q, af)), "layer": plain(q.layer), "input": plain(q.input),
         "batch": q.batch, "dtype": q.dtype, "bias": q.bias, "quantity": q.quantity}
    if q.quantity == "require":
        d["require"] = q.answer_text
    return d


def definition_key(q: Question, af: AnswerFile) -> str:
    d = definition(q, af)
    d["base"] = str(af.base_dir)
    if q.quantity == "require":
        d["require"] = plain(q.answer)
    return json.dumps(d, sort_keys=True, default=str)


class SharedGrader(Grader):
    """A Grader whose expected values are shared, by question definition, through ``cache``
    (one dict for a whole sheet and all its variants)."""

    def __init__(self, answers: AnswerFile, cache: dict, rounding: str | None = None):
        super().__init__(answers, rounding)
        self.cache = cache
        self._keys: dict[str, str] = {}

    def fix_definitions(self, questions: list[Question]) -> None:
        """Remember the definition key of each question id: later questions with these ids are
        copies with a student's answer (``dataclasses.replace``), never a new definition."""
        self._keys = {q.id: definition_key(q, self.answers) for q in questions}

    def expected(self, q: Question) -> Expected:
        key = self._keys.get(q.id) or definition_key(q, self.answers)
        hit = self.cache.get(key)
        if hit is None:
            try:
                hit = super().expected(q)
            except SpecError as e:
                hit = e
            self.cache[key] = hit
        if isinstance(hit, SpecError):
            raise hit
        return hit


# ------------------------------------------------------------------------------ the sheet
@dataclass
class Item:
    """One question item of the sheet: it may ask several quantities (its questions)."""
    id: str
    points: Fraction
    line: int | None
    questions: list[Question]
    text: str | None
    design: bool                      # a 'require:' item: the student's network is the answer
    doc: Any = None                   # the item as drawn (a mapping)
    drawn: list[tuple[str, Any]] = field(default_factory=list)   # (name, value) of its choices
    visibility: str = "visible"       # when Gradescope shows its tests to students

    def share(self) -> Fraction:
        return self.points / len(self.questions)

    @property
    def reference_spec(self) -> Any:
        return self.doc.get("spec") if isinstance(self.doc, dict) else None


@dataclass
class SheetVariant:
    """The sheet as one student sees it: drawn numbers filled in, every question validated."""
    sheet: "Sheet"
    variant: str | None
    answers: AnswerFile
    items: list[Item]
    grader: SharedGrader

    @property
    def questions(self) -> list[Question]:
        return [q for it in self.items for q in it.questions]

    def item_of(self, qid: str) -> Item | None:
        for it in self.items:
            if any(q.id == qid for q in it.questions):
                return it
        return None


class Sheet:
    """A question sheet loaded once; :meth:`variant` gives any student's version of it."""

    def __init__(self, path: str | Path, text: str | None = None, rounding: str | None = None):
        p = Path(path)
        self.path = str(path)
        # --rounding: every network of the sheet (and of the submissions' design answers) is built
        # with it, the per-student draws included (which values fit can depend on it)
        self.rounding = rounding
        if text is None:   # a regular UTF-8 file within the size limit (never /dev/zero or a FIFO)
            from cnncalc.spec.yamlsafe import read_text_file

            text = read_text_file(p, "question sheet")
        self.lines = text.splitlines()
        self.base_dir = p.parent
        doc = load_yaml(text, self.path)
        if not isinstance(doc, dict):
            raise SpecError("a question sheet is a mapping with a 'questions:' list", file=self.path,
                            line=getattr(doc, "line", 1))
        self.doc = doc
        sid = doc.get("sheet")
        if sid is not None and not isinstance(sid, (str, int)):
            raise SpecError("'sheet' is the sheet's id, a short name like cnn-homework-2", file=self.path,
                            line=doc.line_of("sheet"))
        self.id = str(sid) if sid is not None else p.stem
        self.id_line = doc.line_of("sheet") if sid is not None else None
        seed = doc.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (str, int)) or not str(seed)):
            raise SpecError("'seed' is a secret word or number that, with each student's id, draws their "
                            "numbers", file=self.path, line=doc.line_of("seed"))
        self.seed = None if seed is None else str(seed)
        self.title = doc.get("title")
        self.cache: dict = {}           # definition → Expected (or SpecError), for all variants
        self._own: set[Path] | None = None
        self._admissible: dict = {}
        self._variants: dict = {}
        items = doc.get("questions") or []
        if not isinstance(items, list):
            items = []                  # answers_from_doc reports it with its line
        self._items = items
        self.groups: list[tuple[str, tuple, Any]] = []     # (group name, path in doc, node)
        if V.choice_points(doc.get("spec")):
            self.groups.append(("spec", ("spec",), doc["spec"]))
        if isinstance(doc.get("specs"), dict):
            for name, s in doc["specs"].items():
                if V.choice_points(s):
                    self.groups.append((f"specs.{name}", ("specs", name), s))
        for n, it in enumerate(items):
            if V.choice_points(it):
                self.groups.append((f"item.{self._item_id(it, n)}", ("questions", n), it))
        stray = [p for p in V.choice_points(doc) if not any(p[:len(g[1])] == g[1] for g in self.groups)]
        if stray:
            raise SpecError("'choose'/'range' may appear inside questions, 'spec' or 'specs' only",
                            file=self.path, line=doc.line_of(stray[0][0]))
        for _, path, node in self.groups:
            for cp in V.choice_points(node):
                V.options(V.get(node, cp), self.path)     # validate every choice point up front
        self.has_variants = bool(self.groups)
        self.base = self.variant(None) if not self.has_variants else None
        if self.has_variants:   # validate the questions once, with some draw of each
            self.variant("\x00check")

    def own_files(self) -> set[Path]:
        """The sheet file and the network files it names (its reference solutions among them),
        resolved: a submission's design answer may never be one of them."""
        if self._own is None:
            self._own = self._files()
        return self._own

    def _files(self) -> set[Path]:
        items = self._items if isinstance(self._items, list) else []
        specs = self.doc.get("specs") if isinstance(self.doc.get("specs"), dict) else {}
        refs = [self.doc.get("spec"), *specs.values(), *(it.get("spec") for it in items if isinstance(it, dict))]
        out = set()
        for ref in [self.path] + [self.base_dir / r for r in refs if isinstance(r, str)]:
            try:
                if Path(ref).is_file():
                    out.add(Path(ref).resolve())
            except (OSError, ValueError):
                continue
        return out

    @staticmethod
    def _item_id(it, n: int) -> str:
        return str(it.get("id")) if isinstance(it, dict) and it.get("id") is not None else f"q{n + 1}"

    # -- drawing --------------------------------------------------------------------------
    def _drop(self, path: tuple, key) -> bool:
        if path == () and key in SHEET_ONLY_TOP:
            return True
        return len(path) == 2 and path[0] == "questions" and key in SHEET_ONLY_ITEM

    def _doc_with(self, values: dict) -> LineDict:
        return V.substitute(self.doc, values, drop=self._drop)

    def _parse(self, doc) -> AnswerFile:
        return answers_from_doc(doc, self.lines, file=self.path, base_dir=self.base_dir)

    def _combos(self, gpath: tuple, node) -> tuple[list[tuple], list[tuple]]:
        paths, combos = V.combinations(node, self.path, getattr(node, "line", None))
        return [gpath + p for p in paths], combos

    def _admissible_for(self, name: str, gpath: tuple, node, fixed: dict) -> tuple[list[tuple], list[tuple]]:
        """The combinations of one group that make gradable questions (given the draws of the
        sheet-level specs, ``fixed``)."""
        key = (name, json.dumps(sorted((repr(k), repr(v)) for k, v in fixed.items())))
        if key in self._admissible:
            return self._admissible[key]
        paths, combos = self._combos(gpath, node)
        ok = []
        for combo in combos:
            values = dict(fixed)
            values.update(zip(paths, combo))
            if self._gradable(name, gpath, values):
                ok.append(combo)
        if not ok:
            raise SpecError(f"no combination of the choices of {name.split('.', 1)[-1]!r} makes a question "
                            f"that can be graded (every one fails to fit)", file=self.path,
                            line=getattr(V.get(self.doc, paths[0]), "line", None) if paths else None,
                            hint="widen the choices or fix the question")
        self._admissible[key] = (paths, ok)
        return paths, ok

    def _gradable(self, name: str, gpath: tuple, values: dict) -> bool:
        doc = self._doc_with(values)
        if gpath[0] == "questions":
            doc["questions"] = LineList([doc["questions"][gpath[1]]])
            doc["questions"].item_lines = [getattr(doc["questions"][0], "line", None)]
        else:   # a sheet-level spec: does it build and analyse?
            probe = LineDict({"spec": gpath[1] if gpath[0] == "specs" else doc["spec"], "params": None})
            probe.line, probe.key_lines = getattr(V.get(doc, gpath), "line", None), {}
            doc["questions"] = LineList([probe])
            doc["questions"].item_lines = [probe.line]
            doc.pop("require", None)
        try:
            af = self._parse(doc)
            g = SharedGrader(af, self.cache, self.rounding)
            for q in af.questions:
                if q.quantity == "require":
                    continue
                exp = g.expected(q)
                if isinstance(exp.value, NotFit) and q.quantity != "fits":
                    return False
        except SpecError:
            return False
        return True

    def _draw(self, variant: str) -> dict:
        values: dict = {}
        for name, gpath, node in self.groups:      # sheet-level specs first (they come first)
            if gpath[0] == "questions":
                continue
            paths, ok = self._admissible_for(name, gpath, node, {})
            values.update(zip(paths, V.pick(ok, self.id, variant, name, self.seed)))
        fixed = dict(values)
        for name, gpath, node in self.groups:
            if gpath[0] != "questions":
                continue
            paths, ok = self._admissible_for(name, gpath, node, fixed)
            values.update(zip(paths, V.pick(ok, self.id, variant, name, self.seed)))
        return values

    def variant(self, variant: str | None) -> SheetVariant:
        """The sheet as student ``variant`` sees it (``None`` for a sheet without variants)."""
        if variant is None and self.has_variants:
            raise SpecError("this sheet has per-student variants: name the student whose questions you want",
                            hint="give --variant STUDENT_ID (a submission names its own with 'variant:')")
        if variant is not None and not self.has_variants:
            variant = None                       # every student gets the same questions
        if variant in self._variants:
            return self._variants[variant]
        values = self._draw(str(variant)) if variant is not None else {}
        doc = self._doc_with(values)
        for n, it in enumerate(doc.get("questions") or []):
            if isinstance(it, LineDict) and it.get("text", it.get("question")) is not None:
                it["text"] = fill_text(it, _drawn(values, n))
                it.key_lines.setdefault("text", it.line)
        af = self._parse(doc)
        grader = SharedGrader(af, self.cache, self.rounding)
        grader.fix_definitions([q for q in af.questions if q.quantity != "require"])
        items = self._group_items(doc, af, values)
        for it in items:                          # validate (and analyse) every question now
            if not it.design:
                for q in it.questions:
                    grader.expected(q)
        sv = SheetVariant(self, variant, af, items, grader)
        if len(self._variants) < 10_000:
            self._variants[variant] = sv
        return sv

    def _group_items(self, doc, af: AnswerFile, values: dict) -> list[Item]:
        raw = doc.get("questions") or []
        qs = list(af.questions)
        items, k = [], 0
        for n, it in enumerate(raw):
            iid = self._item_id(it, n)
            mine = []
            while k < len(qs) and (qs[k].id == iid or qs[k].id.startswith(iid + ".")):
                mine.append(qs[k])
                k += 1
            orig = self._items[n] if n < len(self._items) else {}
            pts = _points(orig.get("points", 1) if isinstance(orig, dict) else 1, self.path,
                          orig.line_of("points") if isinstance(orig, LineDict) else None)
            drawn = _drawn(values, n)
            text = it.get("text", it.get("question")) if isinstance(it, dict) else None
            vis = orig.get("visibility", "visible") if isinstance(orig, dict) else "visible"
            if vis not in VISIBILITIES:
                raise SpecError(f"'visibility' is one of {', '.join(VISIBILITIES)} (when Gradescope shows the "
                                f"item's tests), got {vis!r}", file=self.path,
                                line=orig.line_of("visibility") if isinstance(orig, LineDict) else None)
            items.append(Item(iid, pts, getattr(it, "line", None), mine, None if text is None else str(text),
                              any(q.quantity == "require" for q in mine), it, drawn, vis))
        if k < len(qs):   # a top-level 'require:'
            rest = qs[k:]
            items.append(Item("design", Fraction(1), rest[0].line, rest, None, True,
                              LineDict({"spec": doc.get("spec")}), []))
        return items


def _points(v, file, line) -> Fraction:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
        raise SpecError(f"'points' is a number ≥ 0, got {v!r}", file=file, line=line)
    return Fraction(v).limit_denominator(1000)


# ------------------------------------------------------------------------------ rendering
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.]*)\}")


def _drawn(values: dict, n: int) -> list[tuple[str, Any]]:
    """(name, value) of the choices drawn for question item n."""
    return [(str(p[-1]) if not isinstance(p[-1], int) else str(p[-2]), v)
            for p, v in values.items() if p[:2] == ("questions", n)]


def fill_text(doc: dict, drawn: list[tuple[str, Any]]) -> str:
    """An item's text with ``{name}`` placeholders filled from its (drawn) definition — a key
    of its ``layer:`` mapping or of the item; drawn numbers the text does not mention are
    appended, so a student always sees them."""
    text = str(doc.get("text", doc.get("question")))
    layer = doc.get("layer") if isinstance(doc.get("layer"), dict) else {}
    used = set()

    def lookup(m):
        name = m.group(1)
        for src in (layer, doc):
            if name in src and (not isinstance(src[name], (dict, list)) or name == "input"):
                used.add(name)
                return show(src[name])
        return m.group(0)

    text = _PLACEHOLDER.sub(lookup, text)
    extra = [f"{k} {show(v)}" for k, v in drawn if k not in used]
    return text + (" (" + ", ".join(extra) + ")" if extra else "")


def item_text(item: Item, af: AnswerFile | None = None) -> str:
    """What the item asks, in words, with the drawn numbers (and, without a text, of which
    network: 'conv1 of alexnet')."""
    if item.text:
        return item.text
    if not item.questions:
        return item.id
    q = item.questions[0]
    if q.quantity == "require":
        return q.label
    where = q.label.rsplit(": ", 1)[0]
    if af is not None and isinstance(q.layer, str):
        net = resolved_spec(q, af)
        name = net if isinstance(net, str) else (q.spec if isinstance(q.spec, str) else af.spec
                                                 if isinstance(af.spec, str) else None)
        if name:
            where += f" of {name}"
    return where


def show(v) -> str:
    if isinstance(v, (list, tuple)) and all(isinstance(x, int) for x in v):
        return fmt_shape(tuple(v)) if len(v) > 1 else str(v[0])
    return str(v)


def asks(q: Question) -> str:
    if q.quantity == "require":
        return f"a network with {q.answer_text}"
    return quantity_label(q)


def fmt_points(p: Fraction) -> str:
    if p.denominator == 1:
        return str(p.numerator)
    return f"{float(p):.2f}".rstrip("0").rstrip(".")


__all__ = ["Sheet", "SheetVariant", "Item", "SharedGrader", "definition", "definition_key", "plain",
           "resolved_spec", "item_text", "asks", "fmt_points", "show"]


# ------------------------------------------------------------------------------ solutions
@dataclass
class Solution:
    item: Item
    question: Question
    expected: str            # formatted for people
    arithmetic: str
    answer: Any              # a value that, written as the answer, passes (None: no fixed answer)


def solutions(sv: SheetVariant) -> list[Solution]:
    """Every expected answer of a student's variant, with its arithmetic. A design question's
    'answer' is the sheet's reference network (when it gives one)."""
    out = []
    for it in sv.items:
        for q in it.questions:
            if it.design:
                ref = it.reference_spec if it.reference_spec is not None else sv.answers.spec
                if ref is None:
                    out.append(Solution(it, q, f"any network with {q.answer_text}", "", None))
                    continue
                o = sv.grader.grade(q)
                out.append(Solution(it, q, f"{o.expected} ({'meets' if o.passed else 'does NOT meet'} "
                                           f"{q.answer_text})", o.arithmetic, _design_ref(sv, ref)))
                continue
            exp = sv.grader.expected(q)
            out.append(Solution(it, q, answer_text(exp.value, q.quantity, pretty=True), exp.arithmetic,
                                answer_value(exp.value, q.quantity)))
    return out


def _design_ref(sv: SheetVariant, ref):
    """The reference network as an answer that works anywhere: a zoo name stays a name; a file
    is inlined (its YAML document), so the solution key passes wherever it is saved — in
    ``submissions/`` too, where a submission may not name the sheet's files."""
    from cnncalc.check.answers import resolve_spec_ref
    from cnncalc.spec.yamlsafe import load_yaml, read_text_file

    seen = set()
    while isinstance(ref, str) and ref in sv.answers.specs and ref not in seen:
        seen.add(ref)
        ref = sv.answers.specs[ref]
    if isinstance(ref, str):
        where = resolve_spec_ref(ref, sv.answers)
        if where.path is None:
            return where.zoo
        return plain(load_yaml(read_text_file(where.path, "spec"), str(where.path)))
    return plain(ref)


def answer_value(v, quantity: str):
    """The expected value as a student would write it (so that it passes)."""
    if isinstance(v, NotFit):
        return "no" if quantity == "fits" else "does not fit"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, tuple):
        return fmt_shape(v) if quantity == "shape" else list(v)
    return v


def answer_text(v, quantity: str, pretty: bool = False) -> str:
    a = answer_value(v, quantity)
    if isinstance(a, int) and not isinstance(a, bool):
        return f"{a:,}" if pretty else str(a)
    if isinstance(a, list):
        return "[" + ", ".join(map(str, a)) + "]"
    return str(a)


__all__ += ["Solution", "solutions", "answer_value", "answer_text"]
