"""Grading: the exact value of every question, read off the analysis engine, compared with the
answer at the precision it was written.

Nothing is typed in: a layer's numbers come from its Layer object and the Report
(``analyze_graph``), the arithmetic from the layer's own ``explain_*`` methods, receptive
fields from ``cnncalc.analysis.rf``.
"""
from __future__ import annotations

import importlib
import operator
from fractions import Fraction
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnncalc.analysis.report import DTYPES, Report, analyze_graph
from cnncalc.check.answers import (QUANTITIES, AnswerFile, Question, binary_reading, load_answers,
                                   parse_answer, resolve_spec_ref)
from cnncalc.errors import SpecError
from cnncalc.graph import Graph
from cnncalc.layers import Conv
from cnncalc.layers.base import suggest
from cnncalc.numbers import Quantity, round_as
from cnncalc.shapes import fmt_int, fmt_shape, parse_shape
from cnncalc.spec.yamlsafe import LineDict, LineList

RF_MISSING = ("receptive fields need cnncalc.analysis.rf, which this copy of cnncalc does not have; "
              "remove the rf questions or update cnncalc")


@dataclass
class NotFit:
    """A network or layer whose shapes cannot be inferred (the slides' 'it does not fit!')."""
    error: SpecError

    @property
    def reason(self) -> str:
        return self.error.message


@dataclass
class Expected:
    value: Any              # Shape, int, bool, or NotFit
    arithmetic: str = ""
    also: tuple = ()        # (value, what it is): another common convention, also accepted


@dataclass
class Outcome:
    question: Question
    passed: bool
    expected: str = ""       # the exact value, formatted (never shown with --hide-expected)
    arithmetic: str = ""     # how it is computed (never shown with --hide-expected)
    note: str = ""           # about the form of the answer only ("not answered"): always safe

    @property
    def status(self) -> str:
        return "pass" if self.passed else "fail"

    def to_dict(self, hide_expected: bool = False) -> dict:
        q = self.question
        d = {"id": q.id, "question": q.label, "quantity": q.quantity, "answer": q.answer_text,
             "status": self.status, "line": q.line}
        if self.note:
            d["note"] = self.note
        if not hide_expected:
            d["expected"] = self.expected
            d["arithmetic"] = self.arithmetic
        return d


@dataclass
class CheckRun:
    file: str
    title: str | None
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(o.passed for o in self.outcomes)

    @property
    def failed(self) -> int:
        return len(self.outcomes) - self.passed

    @property
    def exit_code(self) -> int:
        return 0 if self.failed == 0 else 1

    def to_dict(self, hide_expected: bool = False) -> dict:
        return {"file": self.file, "title": self.title, "total": len(self.outcomes), "passed": self.passed,
                "failed": self.failed, "expected_hidden": hide_expected,
                "results": [o.to_dict(hide_expected) for o in self.outcomes]}


# ------------------------------------------------------------------------------ networks
class Grader:
    """Grades the questions of one answer file; networks are loaded once and shared."""

    def __init__(self, answers: AnswerFile, rounding: str | None = None):
        self.answers = answers
        # the command line's --rounding: the spec-wide rule of every network this grader builds
        # (a layer's own 'rounding:' still wins); None keeps each spec's own rule
        self.rounding = rounding
        self._graphs: dict = {}
        self._reports: dict = {}

    # -- which network, which layer ---------------------------------------------------------
    def _spec_ref(self, q: Question):
        ref = q.spec if q.spec is not None else (None if isinstance(q.layer, dict) else self.answers.spec)
        seen = set()
        while isinstance(ref, str) and ref in self.answers.specs and ref not in seen:
            seen.add(ref)
            ref = self.answers.specs[ref]
        return ref

    def graph(self, q: Question) -> Graph:
        ref = self._spec_ref(q)
        if isinstance(q.layer, dict):
            key = ("layer", id(q.layer), id(ref))
            if key not in self._graphs:
                self._graphs[key] = self._override(self._standalone(q, ref))
            return self._graphs[key]
        if ref is None:
            raise SpecError("this question names no network", file=q.file, line=q.line,
                            hint="add 'spec: alexnet' (a zoo name, a path or an inline spec) to the "
                                 "question or at the top of the file")
        key = ("spec", ref if isinstance(ref, str) else id(ref), str(q.input))
        if key not in self._graphs:
            self._graphs[key] = self._override(self._load(ref, q))
        return self._graphs[key]

    def _override(self, graph: Graph) -> Graph:
        if self.rounding is not None and graph.rounding != self.rounding:
            graph.rounding = self.rounding
            graph.inferred = False
        return graph

    def _load(self, ref, q: Question) -> Graph:
        from cnncalc.spec.loader import build_graph, load_spec

        if isinstance(ref, dict):
            graph = build_graph(ref, q.file)  # inline spec: errors point into the answer file
        elif isinstance(ref, str):
            where = resolve_spec_ref(ref, self.answers, q.file, q.line)
            try:
                graph = load_spec(where.path if where.path is not None else where.zoo)
            except SpecError as e:
                if where.outside:  # never echo the content of a file outside the answer's folder
                    raise SpecError(f"the spec {where.path} (outside the answer file's folder) is not "
                                    f"usable; details are hidden", file=q.file, line=q.line,
                                    hint=f"run 'cnncalc summarize {where.path}' to see why") from None
                if e.file is None:
                    e.located(file=q.file, line=q.line)
                raise
        else:
            raise SpecError(f"'spec' is a zoo name, a path or an inline spec, got {ref!r}", file=q.file,
                            line=q.line)
        if q.input is not None:
            try:
                graph.input_shape = parse_shape(q.input)
            except ValueError as e:
                raise SpecError(str(e), file=q.file, line=q.line) from None
        return graph

    def _standalone(self, q: Question, ref) -> Graph:
        """``layer: {input: 32x32x3, conv: 10, kernel: 5, pad: 2}`` → a one-layer spec."""
        from cnncalc.spec.loader import build_graph

        layer = q.layer
        item = LineDict({k: v for k, v in layer.items() if k != "input"})
        item.line = getattr(layer, "line", q.line)
        item.key_lines = dict(getattr(layer, "key_lines", {}))
        doc = LineDict({"input": layer.get("input", q.input), "layers": LineList([item])})
        doc.line, doc.key_lines = item.line, {"input": item.line, "layers": item.line}
        doc["layers"].line, doc["layers"].item_lines = item.line, [item.line]
        return build_graph(doc, q.file)

    def report(self, q: Question) -> Report | NotFit:
        graph = self.graph(q)
        key = (id(graph), q.batch, q.dtype)
        if key not in self._reports:
            try:
                self._reports[key] = analyze_graph(graph, batch=q.batch, dtype=q.dtype)
            except SpecError as e:
                self._reports[key] = NotFit(e)
        return self._reports[key]

    def node_name(self, q: Question, graph: Graph) -> str | None:
        if isinstance(q.layer, dict):
            return graph.layers[-1].name
        if q.layer is None:
            return None
        name = str(q.layer)
        if name in graph.nodes:
            return name
        folded = {n.lower(): n for n in graph.nodes}
        if name.lower() in folded:  # the slides write CONV1, the spec conv1
            return folded[name.lower()]
        raise SpecError(f"{graph.name} has no layer named {name!r}", file=q.file, line=q.layer_line or q.line,
                        hint=suggest(name, [n for n in graph.nodes if n != "input"], "layer"))

    # -- expected values ---------------------------------------------------------------------
    def expected(self, q: Question) -> Expected:
        if q.quantity == "require":
            qty = q.answer[0]  # about the whole network, or about 'layer:' when the item names one
            return self._value(q, qty, layer=q.layer)
        return self._value(q, q.quantity, layer=q.layer)

    def _value(self, q: Question, qty: str, layer) -> Expected:
        graph = self.graph(q)
        report = self.report(q)
        if isinstance(report, NotFit):
            if qty == "fits":
                return Expected(False, _not_fit_text(report))
            if isinstance(q.layer, dict) or q.quantity in ("shape", "require"):
                return Expected(report, _not_fit_text(report))
            raise report.error  # a spec of the course that does not work: the file is bad
        if qty == "fits":
            return Expected(True, "every layer's window fits its input")
        name = self.node_name(q, graph) if layer is not None else None
        if name is None:
            return self._network(q, qty, graph, report)
        if name == "input":
            if qty != "shape":
                raise SpecError(f"the input has no {QUANTITIES[qty]}", file=q.file, line=q.line)
            return Expected(graph.input_shape, "the spec's input")
        return self._layer(q, qty, graph.nodes[name].layer, report[name], graph, name)

    def _layer(self, q, qty, layer, stats, graph, name) -> Expected:
        if qty == "shape":
            return Expected(stats.shape, "; ".join(layer.explain_shape()) or f"{layer.kind} keeps the shape")
        if qty == "params":
            n = stats.params if q.bias else stats.weights
            text = layer.explain_params(q.bias) or f"a {layer.kind} layer has no parameters"
            return Expected(n, text)
        if qty == "weights":
            return Expected(stats.weights, layer.explain_params(False) or f"a {layer.kind} layer has no weights")
        if qty == "biases":
            return Expected(stats.biases, f"one per {'filter' if isinstance(layer, Conv) else 'unit'}"
                            if stats.biases else f"this {layer.kind} layer has no biases")
        if qty in ("weights_per_filter", "params_per_filter"):
            if not isinstance(layer, Conv) or layer.connections is not None:
                raise SpecError(f"{qty} is asked of a convolution; {name} is a {layer.kind} layer",
                                file=q.file, line=q.line)
            k = "*".join(map(str, layer.kernel))
            per = layer.in_channels // layer.groups
            if qty == "weights_per_filter":
                return Expected(layer.fan_in, f"{k}*{per} = {fmt_int(layer.fan_in)}")
            nb = 1 if stats.biases and q.bias else 0
            return Expected(layer.fan_in + nb, f"{k}*{per}{' + 1' if nb else ''} = {fmt_int(layer.fan_in + nb)}")
        if qty in ("macs", "flops"):
            m = layer.explain_macs() or "no multiply-accumulates"
            if q.batch > 1 and layer.macs():
                m += f" per image, *{q.batch} = {fmt_int(stats.macs)}"
            if qty == "flops":
                return Expected(stats.flops, f"2 * MACs; MACs: {m}")
            return Expected(stats.macs, m)
        if qty in ("memory", "memory_bytes"):
            b = f"{q.batch}*" if q.batch > 1 else ""
            text = f"{b}{'*'.join(map(str, stats.shape))} = {fmt_int(stats.activations)}"
            if layer.view:
                text += " (a view of its input)"
            if qty == "memory":
                return Expected(stats.activations, text)
            return Expected(stats.activation_bytes, _bytes_text(text, stats.activation_bytes, q.dtype))
        if qty in ("rf", "rf_stride"):
            return self._rf(q, qty, graph, name)
        raise AssertionError(qty)  # pragma: no cover - answers.py admits only QUANTITIES

    def _network(self, q, qty, graph: Graph, report: Report) -> Expected:
        t = report.totals
        rows = report.layers
        if qty == "shape":
            outs = graph.outputs
            if len(outs) != 1:
                raise SpecError(f"{graph.name} has {len(outs)} outputs ({', '.join(outs)})", file=q.file,
                                line=q.line, hint="name the layer: 'layer: <name>'")
            last = graph.nodes[outs[0]]
            notes = "; ".join(last.layer.explain_shape()) if last.layer else ""
            return Expected(last.shape, f"output of {last.name}" + (f": {notes}" if notes else ""))
        if qty == "params":
            key = "params" if q.bias else "weights"
            n = t["trainable"] if q.bias else t["weights"]
            return Expected(n, _sum_text([(r.name, getattr(r, key)) for r in rows], n))
        if qty in ("weights", "biases", "macs"):
            return Expected(t[qty], _sum_text([(r.name, getattr(r, qty)) for r in rows], t[qty]))
        if qty == "flops":
            return Expected(t["flops"], f"2 * {fmt_int(t['macs'])} MACs = {fmt_int(t['flops'])}")
        if qty in ("memory", "memory_bytes"):
            n = t["input"] + t["activations"]
            text = (f"input {fmt_int(t['input'])} + the outputs of {sum(not r.view for r in rows)} layers "
                    f"{fmt_int(t['activations'])} = {fmt_int(n)}" + (f" (batch {q.batch})" if q.batch > 1 else ""))
            alone = "without the input"   # the other convention (CONVENTIONS)
            if qty == "memory":
                return Expected(n, text, also=((t["activations"], alone),))
            nbytes, size = n * DTYPES[q.dtype], DTYPES[q.dtype]
            return Expected(nbytes, _bytes_text(text, nbytes, q.dtype), also=((t["activations"] * size, alone),))
        if qty in ("rf", "rf_stride"):
            outs = graph.outputs
            if len(outs) != 1:
                raise SpecError(f"{graph.name} has {len(outs)} outputs", file=q.file, line=q.line,
                                hint="name the layer: 'layer: <name>'")
            return self._rf(q, qty, graph, outs[0])
        if qty in ("weights_per_filter", "params_per_filter"):
            raise SpecError(f"{qty} is a question about one layer", file=q.file, line=q.line,
                            hint="add 'layer: <name>'")
        raise AssertionError(qty)  # pragma: no cover

    def _rf(self, q, qty, graph: Graph, name: str) -> Expected:
        try:
            rf_mod = importlib.import_module("cnncalc.analysis.rf")
        except ImportError:
            raise SpecError(RF_MISSING, file=q.file, line=q.line) from None
        return rf_expected(rf_mod, graph, name, qty)

    # -- grading -------------------------------------------------------------------------------
    def grade(self, q: Question) -> Outcome:
        exp = self.expected(q)
        if q.quantity == "require":
            return self._constraint(q, exp)
        shown = _fmt_value(exp.value)
        try:
            ans = parse_answer(q.quantity, q.answer, q.answer_text)
        except ValueError as e:
            return Outcome(q, False, shown, exp.arithmetic, note=str(e))
        if isinstance(exp.value, NotFit) or exp.value is False:
            ok = ans is False
        elif q.quantity == "fits":
            ok = ans is exp.value
        elif ans is False:  # "does not fit" for something that fits
            ok = False
        elif isinstance(exp.value, tuple) or isinstance(ans, tuple):
            ok = isinstance(ans, tuple) and isinstance(exp.value, tuple) and ans == exp.value
        else:
            # the answer as written, and (for bytes) 'MB' read as 2^20 B; the expected value,
            # and another common convention of the same quantity
            readings = [ans] + ([alt] if q.quantity == "memory_bytes" and isinstance(q.answer_text, str)
                                and (alt := binary_reading(q.answer_text)) is not None else [])
            ok = any(a.matches(v) for a in readings for v in [exp.value, *(v for v, _ in exp.also)])
            if not ans.exact:
                unit = "B" if q.quantity == "memory_bytes" and not _binary(q, ans) else \
                    ("iB" if q.quantity == "memory_bytes" else "")
                shown += f" ≈ {round_as(exp.value, ans, binary=_binary(q, ans))}{unit}"   # as the answer rounds
        return Outcome(q, ok, shown, exp.arithmetic + "".join(f"; {what}, {fmt_int(v)} also passes"
                                                              for v, what in exp.also))

    def _constraint(self, q: Question, exp: Expected) -> Outcome:
        qty, op, bound = q.answer
        if isinstance(exp.value, NotFit):
            return Outcome(q, False, "the network does not work", exp.arithmetic)
        actual = exp.value
        if qty == "shape":
            ok = tuple(actual) == tuple(bound)
            return Outcome(q, ok, f"output = {fmt_shape(actual)}", exp.arithmetic)
        if op == "=":
            ok = bound.matches(actual)
        else:
            ok = {"≤": operator.le, "≥": operator.ge, "<": operator.lt, ">": operator.gt}[op](actual, bound.value)
        return Outcome(q, ok, f"{qty} = {fmt_int(actual)}", exp.arithmetic)


def rf_expected(rf_mod, graph: Graph, name: str, qty: str) -> Expected:
    """Receptive field size r or stride S of ``name`` via cnncalc.analysis.rf (see its docstring):
    one number when every axis agrees, else a tuple per axis (H, W)."""
    info = rf_mod.receptive_fields(graph)[name]
    per_axis = info.r if qty == "rf" else info.S
    per_axis = tuple(int(v) if isinstance(v, Fraction) and v.denominator == 1 else v for v in per_axis)
    value = per_axis[0] if len(set(per_axis)) == 1 else per_axis
    text = "; ".join(map(str, info.explain)) if getattr(info, "explain", None) else ""
    if info.is_global:
        text = (text + "; " if text else "") + "the layer sees its whole input"
    return Expected(value, text or f"{'r' if qty == 'rf' else 'S'} = {value}")


def _binary(q: Question, ans: Quantity) -> bool:
    return q.quantity == "memory_bytes" and "i" in q.answer_text


def _bytes_text(elements_text: str, nbytes: int, dtype: str) -> str:
    return (f"({elements_text}) elements * {DTYPES[dtype]} B ({dtype}) = {fmt_int(nbytes)} B "
            f"= {nbytes / 1e6:,.2f} MB = {nbytes / 2**20:,.2f} MiB")


def _sum_text(items: list[tuple[str, int]], total: int, limit: int = 8) -> str:
    items = [(n, v) for n, v in items if v]
    if not items:
        return "no layer has any"
    parts = [f"{fmt_int(v)} ({n})" for n, v in items]
    if len(parts) > limit:
        parts = parts[:limit - 2] + [f"… {len(parts) - limit + 1} more …", parts[-1]]
    return f"{' + '.join(parts)} = {fmt_int(total)}"


def _fmt_value(v) -> str:
    if isinstance(v, NotFit):
        return "does not fit"
    if isinstance(v, bool):
        return "yes, it fits" if v else "no, it does not fit"
    if isinstance(v, tuple):
        return fmt_shape(v)
    if isinstance(v, int):
        return fmt_int(v)
    return str(v)


def _not_fit_text(nf: NotFit) -> str:
    return nf.reason


def run_check(path: str | Path, allow_outside=(), rounding: str | None = None) -> CheckRun:
    """Grade every question of an answer file (bad file → SpecError, exit 2).

    ``allow_outside``: folders besides the answer file's own that its ``spec:`` may name;
    ``rounding``: ``exact``, ``floor`` or ``ceil`` overrides the rule of every network it names."""
    answers = load_answers(path, allow_outside)
    grader = Grader(answers, rounding)
    run = CheckRun(file=str(path), title=answers.title)
    for q in answers.questions:
        run.outcomes.append(grader.grade(q))
    return run
