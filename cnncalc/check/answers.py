"""Reading an answer file (the format is described in ``cnncalc.check``) and the answers in it.

Everything here is about *reading*: which questions a file asks, where each one is written
(line numbers come from the core's safe YAML loader) and what a student's answer means
(``55x55x96``, ``[55, 55, 96]``, ``34,848``, ``35K``, ``61 MB``, ``no``). Nothing is
computed here; ``cnncalc.check.grade`` does that with the analysis engine.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from cnncalc.errors import SpecError, short
from cnncalc.layers.base import suggest
from cnncalc.numbers import Quantity, parse_quantity
from cnncalc.shapes import Shape, parse_shape
from cnncalc.spec.yamlsafe import LineDict, LineList, load_yaml, read_text_file

# answer key → (canonical quantity, what it means); the canonical keys are the quantities
QUANTITIES = {
    "shape": "output shape",
    "params": "parameters",
    "weights": "weights (parameters without biases)",
    "biases": "biases",
    "weights_per_filter": "weights of one filter",
    "params_per_filter": "parameters of one filter (weights + 1 bias)",
    "macs": "multiply-accumulates",
    "flops": "FLOPs (2 × MACs)",
    "memory": "input + activations (elements)",          # of a layer: its output (see quantity_label)
    "memory_bytes": "input + activations (bytes)",
    "rf": "receptive field size r",
    "rf_stride": "receptive field stride (jump) S",
    "fits": "does it fit",
}
ALIASES = {
    "output": "shape", "output_shape": "shape", "parameters": "params", "params_no_bias": "weights",
    "fan_in": "weights_per_filter", "activations": "memory", "memory_elements": "memory",
    "mult_adds": "macs", "multiply_adds": "macs", "receptive_field": "rf", "jump": "rf_stride",
    "bytes": "memory_bytes",
}
OPTION_KEYS = {"id", "text", "question", "spec", "layer", "input", "batch", "dtype", "bias", "require"}
TOP_KEYS = {"title", "spec", "specs", "batch", "dtype", "bias", "questions", "require", "description",
            "course"}
OPERATORS = {"<=": "≤", "≤": "≤", ">=": "≥", "≥": "≥", "=": "=", "==": "=", "<": "<", ">": ">"}
CONSTRAINT_KEYS = ("params", "weights", "biases", "macs", "flops", "memory", "memory_bytes", "rf",
                   "rf_stride", "shape")
DOES_NOT_FIT = ("does not fit", "doesn't fit", "does not", "it does not fit", "it does not fit!",
                "not", "no", "false", "invalid", "error")


@dataclass
class Question:
    """One graded item: a quantity of a layer (or of a whole network) and the answer given."""
    id: str
    quantity: str              # a key of QUANTITIES, or "require"
    answer: Any                # as loaded from YAML (for "require": the constraint text)
    answer_text: str           # as written, for display
    line: int | None
    spec: Any = None           # a zoo name, a path, an inline mapping, or None (the file's spec)
    layer: Any = None          # a layer name, an inline layer mapping, or None (the whole network)
    input: Any = None
    batch: int = 1
    dtype: str = "float32"
    bias: bool = True
    text: str | None = None
    op: str = "="              # for constraints
    file: str | None = None
    layer_line: int | None = None
    item: int | None = None    # the number of its item in the file (1, 2, …): an item may ask several

    @property
    def label(self) -> str:
        """What is asked, in words: 'conv1: output shape', 'vgg16: parameters ≤ 1,000,000'."""
        if self.text:
            return self.text
        what = quantity_label(self)
        if isinstance(self.layer, dict):
            args = ", ".join(f"{k}: {v}" for k, v in self.layer.items() if k != "input")
            inp = self.layer.get("input", self.input)
            where = f"{{{args}}}" + (f" on {inp}" if inp is not None else "")
        elif self.layer is not None:
            where = str(self.layer)
        else:
            where = self.spec if isinstance(self.spec, str) else "the network"
        if self.quantity == "require":
            return f"{where} must have {self.answer_text}"
        return f"{where}: {what}"


def quantity_label(q: Question) -> str:
    """Exactly what a question grades, in the words ``summarize`` uses: a network's memory is
    its input + activations, a layer's is its output; parameters with or without biases."""
    if q.quantity in ("memory", "memory_bytes"):
        unit = "elements" if q.quantity == "memory" else "bytes"
        return f"input + activations ({unit})" if q.layer is None else f"the layer's output activations ({unit})"
    if q.quantity == "params":
        return "parameters (weights + biases)" if q.bias else "parameters without biases (weights only)"
    return QUANTITIES.get(q.quantity, q.quantity)


def item_labels(questions) -> list[str]:
    """Each question's number: its item's (1, 2, …), with a letter when the item asks several
    (7a, 7b) — the numbers the quiz and the gradebook use."""
    count: dict = {}
    for q in questions:
        count[q.item] = count.get(q.item, 0) + 1
    seen: dict = {}
    out = []
    for q in questions:
        k = seen[q.item] = seen.get(q.item, -1) + 1
        n = str(q.item) if q.item is not None else "?"
        out.append(n if count[q.item] == 1 else f"{n}{chr(97 + k)}" if k < 26 else f"{n}.{k + 1}")
    return out


# Quantities written in two common conventions: both are accepted (stated on every quiz)
CONVENTIONS = {
    "memory": "a network's memory is its input + activations; the activations alone also pass",
    "memory_bytes": "a network's memory is its input + activations (the activations alone also pass); "
                    "MB = 10^6 B, and MB read as 2^20 B also passes; MiB = 2^20 B",
}


@dataclass
class AnswerFile:
    path: str
    title: str | None
    questions: list[Question]
    specs: dict = field(default_factory=dict)   # named specs of the file
    spec: Any = None                            # the default spec
    base_dir: Path = Path(".")
    allow_outside: tuple = ()                   # folders outside base_dir that 'spec:' may name


@dataclass(frozen=True)
class SpecRef:
    """Where a ``spec:`` of an answer file points: a zoo name, or a file that ``check`` may read."""
    zoo: str | None = None
    path: Path | None = None
    outside: bool = False  # a file outside the answer file's folder (allowed by --allow-spec-outside)


def resolve_spec_ref(ref: str, answers: AnswerFile, file: str | None = None, line: int | None = None) -> SpecRef:
    """Confine a ``spec:`` string: a file under the answer file's folder (symlinks resolved),
    a zoo name, or a file under a folder given with ``--allow-spec-outside``.

    Students write answer files and instructors run ``check`` on them: a ``spec:`` naming
    ``../secret.yaml`` or ``/etc/passwd`` is refused without reading it, so nothing of
    another file can come back in a message.
    """
    from cnncalc.spec.loader import zoo_names

    if not isinstance(ref, str) or not ref.strip() or "\0" in ref or len(ref) > 1000:
        raise SpecError(f"'spec' is a zoo name, a file next to the answer file or an inline spec, "
                        f"got {short(ref)}", file=file, line=line)
    base = Path(answers.base_dir)
    try:
        base_real = base.resolve()
        cand = Path(ref) if Path(ref).is_absolute() else base / ref
        real = cand.resolve()
    except (OSError, RuntimeError, ValueError):
        raise SpecError(f"'spec' names a path that cannot be resolved: {short(ref)}", file=file, line=line) from None
    exists = real.exists()
    if exists and (real == base_real or base_real in real.parents):
        return SpecRef(path=cand)
    for d in answers.allow_outside:
        d_real = Path(d).resolve()
        if exists and (real == d_real or d_real in real.parents):
            return SpecRef(path=cand, outside=True)
    stem = ref[:-5] if ref.endswith(".yaml") else ref
    if "/" not in ref and "\\" not in ref and stem in zoo_names():
        return SpecRef(zoo=stem)
    if exists or Path(ref).is_absolute() or ".." in Path(ref).parts:
        raise SpecError(f"'spec' names {short(ref)}, which is outside the answer file's folder; "
                        f"check reads only zoo specs and files under {base}",
                        file=file, line=line,
                        hint="copy the spec next to the answer file, or (instructors) allow a folder "
                             "with --allow-spec-outside DIR")
    raise SpecError(f"'spec' names {short(ref)}: no such file next to the answer file and no zoo spec "
                    f"of that name", file=file, line=line,
                    hint=suggest(Path(ref).stem, zoo_names(), "zoo spec"))


def load_answers(path: str | Path, allow_outside=()) -> AnswerFile:
    """Read and validate an answer file; every problem is a SpecError with file:line (exit 2).

    ``allow_outside``: folders besides the answer file's own whose files ``spec:`` may name."""
    p = Path(path)
    text = read_text_file(p, "answer")
    answers = parse_answers(text, file=str(path), base_dir=p.parent)
    answers.allow_outside = tuple(Path(d) for d in allow_outside)
    return answers


def parse_answers(text: str, file: str = "<answers>", base_dir: Path | str = ".") -> AnswerFile:
    return answers_from_doc(load_yaml(text, file), text.splitlines(), file=file, base_dir=base_dir)


def answers_from_doc(doc, lines: list[str], file: str = "<answers>", base_dir: Path | str = ".") -> AnswerFile:
    """``parse_answers`` of an already-loaded document (``load_yaml`` output; ``lines`` are the
    file's text lines, used to keep the digits of float answers). Question sheets use it to
    read a sheet after drawing a student's variant into the document."""

    def err(msg, line=None, hint=None):
        return SpecError(msg, file=file, line=line, hint=hint)

    if not isinstance(doc, dict):
        raise err("an answer file is a mapping with a 'questions:' list (and usually a 'spec:')",
                  line=getattr(doc, "line", 1),
                  hint="start with 'spec: alexnet' and 'questions:' (see cnncalc check --help)")
    for key in doc:
        if key not in TOP_KEYS:
            raise err(f"unknown top-level field {key!r}", doc.line_of(key), suggest(key, TOP_KEYS))
    if "questions" not in doc and "require" not in doc:
        raise err("the answer file has no 'questions:' (nor 'require:')", 1,
                  "add a 'questions:' list, one '- ' item per question")
    specs = doc.get("specs") or {}
    if not isinstance(specs, dict):
        raise err("'specs' maps short names to specs (a zoo name, a path or an inline spec)",
                  doc.line_of("specs"))
    defaults = {
        "batch": _int_opt(doc.get("batch", 1), "batch", doc.line_of("batch"), file),
        "dtype": _dtype_opt(doc.get("dtype", "float32"), doc.line_of("dtype"), file),
        "bias": _bool_opt(doc.get("bias", True), "bias", doc.line_of("bias"), file),
    }
    questions: list[Question] = []
    items = doc.get("questions") or []
    if not isinstance(items, list):
        raise err("'questions' must be a list, one '- ' item per question", doc.line_of("questions"))
    item_lines = getattr(items, "item_lines", [None] * len(items))
    for n, (item, line) in enumerate(zip(items, item_lines), 1):
        questions += _read_item(item, n, line, defaults, lines, file)
    if "require" in doc:
        top = LineDict({"require": doc["require"], "id": "design"})
        top.line, top.key_lines = doc.line_of("require"), {"require": doc.line_of("require")}
        questions += _read_item(top, len(items) + 1, top.line, defaults, lines, file)
    if not questions:
        raise err("the answer file asks no questions", doc.line_of("questions"),
                  "each item needs an answer such as 'shape: 55x55x96' or 'params: 35K'")
    seen: dict[str, int | None] = {}
    for q in questions:
        if q.id in seen:
            raise err(f"two questions have the id {q.id!r} (the other is at line {seen[q.id]})", q.line,
                      "give each question its own 'id'")
        seen[q.id] = q.line
    return AnswerFile(path=file, title=_str_or_none(doc.get("title")), questions=questions,
                      specs=dict(specs), spec=doc.get("spec"), base_dir=Path(base_dir))


def _read_item(item, n: int, line, defaults: dict, lines: list[str], file) -> list[Question]:
    def err(msg, at=None, hint=None):
        return SpecError(msg, file=file, line=at or line, hint=hint)

    if not isinstance(item, dict):
        raise err("a question is a mapping like '- {layer: conv1, shape: 55x55x96}'",
                  hint="write 'layer:' (or 'spec:') and one answer key such as shape, params, macs")
    line = getattr(item, "line", None) or line
    answers = []
    for key, value in item.items():
        kline = item.line_of(key) if isinstance(item, LineDict) else line
        if key in OPTION_KEYS:
            continue
        if isinstance(key, int) and value is None:
            raise err(f"{key!r} is read as a key of its own: a comma inside {{...}} separates fields",
                      kline, "quote numbers written with commas, e.g. params: 'NN,NNN', or use "
                             "the block style (one 'key: value' per line)")
        canon = ALIASES.get(key, key)
        if canon not in QUANTITIES:
            known = list(QUANTITIES) + list(ALIASES) + sorted(OPTION_KEYS)
            raise err(f"unknown field {key!r} in a question", kline, suggest(str(key), known))
        answers.append((canon, value, kline, raw_text(item, key, value, lines)))
    qid = item.get("id")
    qid = str(qid) if qid is not None else f"q{n}"
    batch = _int_opt(item.get("batch", defaults["batch"]), "batch", item.line_of("batch"), file)
    dtype = _dtype_opt(item.get("dtype", defaults["dtype"]), item.line_of("dtype"), file)
    bias = _bool_opt(item.get("bias", defaults["bias"]), "bias", item.line_of("bias"), file)
    text = item.get("text", item.get("question"))
    layer = item.get("layer")
    if layer is not None and not isinstance(layer, (str, dict)):
        raise err(f"'layer' is a layer name (like conv1) or a layer written like "
                  f"{{input: 32x32x3, conv: 10, kernel: 5}}, got {layer!r}", item.line_of("layer"))
    if isinstance(layer, dict) and "input" not in layer and "input" not in item and item.get("spec") is None:
        raise err("a standalone layer needs its input shape", item.line_of("layer"),
                  "add 'input: 32x32x3' inside the layer mapping")
    common = dict(spec=item.get("spec"), layer=layer, input=item.get("input"), batch=batch, dtype=dtype,
                  bias=bias, text=_str_or_none(text), file=file, item=n,
                  layer_line=item.line_of("layer") if "layer" in item else None)
    out = []
    if "require" in item:
        for k, (ctext, cline) in enumerate(_constraints(item["require"], item.line_of("require"), file), 1):
            qty, op, value = parse_constraint(ctext, cline, file)
            cid = qid if len(answers) == 0 and _count(item["require"]) == 1 else f"{qid}.{k}"
            out.append(Question(id=cid, quantity="require", answer=(qty, op, value), answer_text=ctext,
                                line=cline, op=op, **common))
    if not answers and not out:
        raise err("this question has no answer to check",
                  hint="add an answer key such as shape: 55x55x96, params: 35K, macs: 105M, rf: 19, "
                       "fits: no, or a 'require:' list")
    for canon, value, kline, text_ in answers:
        aid = qid if len(answers) == 1 and not out else f"{qid}.{canon}"
        out.append(Question(id=aid, quantity=canon, answer=value, answer_text=text_, line=kline, **common))
    if text is not None and len(out) > 1:
        for q in out:
            q.text = f"{text} — {quantity_label(q)}" if q.quantity != "require" else f"{text} — {q.answer_text}"
    return out


def _count(req) -> int:
    return len(req) if isinstance(req, (list, dict)) else 1


def _constraints(req, line, file) -> list[tuple[str, int | None]]:
    """``require:`` as a list of 'params <= 1M' strings, a mapping {params: '<= 1M'}, or one string."""
    if isinstance(req, str):
        return [(req, line)]
    if isinstance(req, list):
        lines = getattr(req, "item_lines", [line] * len(req))
        out = []
        for r, ln in zip(req, lines):
            if not isinstance(r, str):
                raise SpecError(f"a requirement is written like 'params <= 1,000,000', got {r!r}",
                                file=file, line=ln)
            out.append((r, ln))
        return out
    if isinstance(req, dict):
        out = []
        for k, v in req.items():
            v = v if isinstance(v, str) else (",".join(map(str, v)) if isinstance(v, list) else str(v))
            v = v.strip()
            if not any(v.startswith(o) for o in OPERATORS):
                v = "= " + v
            out.append((f"{k} {v}", req.line_of(k) if isinstance(req, LineDict) else line))
        return out
    raise SpecError("'require' is a list of requirements like 'params <= 1,000,000'", file=file, line=line)


_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_ ]+?)\s*(<=|>=|==|=|<|>|≤|≥)\s*(.+?)\s*$")


def parse_constraint(text: str, line=None, file=None) -> tuple[str, str, Any]:
    """'params <= 1,000,000' → ('params', '≤', Quantity); 'output = 1x1x10' → ('shape', '=', (1, 1, 10))."""
    m = _CONSTRAINT_RE.match(text)
    if not m:
        raise SpecError(f"cannot read the requirement {text!r}", file=file, line=line,
                        hint="write it like 'params <= 1,000,000', 'rf >= 100', 'macs <= 600M' or "
                             "'output = 1x1x10'")
    name = m.group(1).strip().lower().replace(" ", "_")
    name = {"receptive_field": "rf", "parameters": "params", "output": "shape", "output_shape": "shape",
            "activations": "memory"}.get(name, ALIASES.get(name, name))
    if name not in CONSTRAINT_KEYS:
        raise SpecError(f"a requirement cannot be about {m.group(1).strip()!r}", file=file, line=line,
                        hint=f"use one of {', '.join(CONSTRAINT_KEYS)}")
    op = OPERATORS[m.group(2)]
    raw = m.group(3)
    try:
        if name == "shape":
            if op != "=":
                raise ValueError("a shape can only be required to be equal ('output = 1x1x10')")
            value = parse_shape(raw)
        else:
            value = parse_number(raw, bytes_=name == "memory_bytes")
    except ValueError as e:
        raise SpecError(f"requirement {text!r}: {e}", file=file, line=line) from None
    return name, op, value


# ------------------------------------------------------------------------------ answer values
def raw_text(item, key, value, lines: list[str]) -> str:
    """The answer as the student wrote it. YAML turns ``1.8e+9`` into a float and so loses the
    digits written; the line of the key still has them (used for the precision of the match)."""
    if isinstance(value, float) and isinstance(item, LineDict):
        ln = item.line_of(key)
        if ln and 0 < ln <= len(lines):
            m = re.search(rf"(?:^|[\s{{,]){re.escape(str(key))}\s*:\s*([^,#}}\]\s]+)", lines[ln - 1])
            if m:
                try:
                    if float(m.group(1)) == value:
                        return m.group(1)
                except ValueError:
                    pass
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(str, value)) + "]"
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


_BYTES_RE = re.compile(r"^(?P<num>.*?[\d.])\s*(?P<prefix>[kKMGT]?)(?P<bin>i?)(?:B|bytes?)\s*$")


def parse_number(text: Any, bytes_: bool = False, binary: bool = False) -> Quantity:
    """A count as people write it (see cnncalc.numbers); with ``bytes_``, also ``61 MB``,
    ``58.1 MiB``, ``60,950,432 B`` (MB = 10^6 B — or 2^20 B with ``binary`` —, MiB = 2^20 B)."""
    if bytes_ and isinstance(text, str):
        m = _BYTES_RE.match(text.strip())
        if m:
            return parse_quantity(m.group("num") + m.group("prefix").upper(),
                                  binary=bool(m.group("bin")) or binary)
    return parse_quantity(text)


def binary_reading(text: str) -> Quantity | None:
    """``58 MB`` read the other common way, with M = 2^20 (None if the text has no decimal
    prefix: ``58 MiB`` and ``60,950,432 B`` mean one thing only)."""
    m = _BYTES_RE.match(str(text).strip())
    if not m or not m.group("prefix") or m.group("bin"):
        return None
    return parse_number(text, bytes_=True, binary=True)


def parse_answer(quantity: str, answer: Any, text: str) -> Any:
    """The value a student's answer stands for: a Shape, a Quantity, or a bool (fits).

    Raises ValueError with a sentence that says how to write it (it never mentions the
    expected value, so it can be shown in graded runs)."""
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise ValueError("not answered")
    if quantity == "fits":
        return parse_fits(answer)
    if quantity == "shape":
        if isinstance(answer, str) and answer.strip().lower().rstrip("!.") in DOES_NOT_FIT:
            return False
        return parse_shape(answer)
    if isinstance(answer, str) and answer.strip().lower().rstrip("!.") in DOES_NOT_FIT:
        return False
    if quantity in ("rf", "rf_stride") and isinstance(answer, (list, tuple)):
        return parse_shape(answer)  # one value per axis (H, W)
    if isinstance(answer, float) and text:
        answer = text
    q = parse_number(answer, bytes_=quantity == "memory_bytes")
    if q.percent:
        raise ValueError(f"{text!r} is a percentage; give a count")
    return q


def parse_fits(answer: Any) -> bool:
    if isinstance(answer, bool):
        return answer
    s = str(answer).strip().lower().rstrip("!.")
    if s in ("yes", "true", "fits", "it fits", "y", "ok"):
        return True
    if s in DOES_NOT_FIT or s == "n":
        return False
    raise ValueError(f"{answer!r}: answer 'yes' or 'no'")


def _int_opt(v, name, line, file) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise SpecError(f"'{name}' must be a whole number ≥ 1, got {short(v)}", file=file, line=line)
    return v


def _bool_opt(v, name, line, file) -> bool:
    if not isinstance(v, bool):
        raise SpecError(f"'{name}' must be true or false, got {short(v)}", file=file, line=line)
    return v


def _dtype_opt(v, line, file) -> str:
    from cnncalc.analysis.report import DTYPES

    if not isinstance(v, str) or v not in DTYPES:
        raise SpecError(f"unknown dtype {short(v)}", file=file, line=line, hint=f"use one of {', '.join(DTYPES)}")
    return v


def _str_or_none(v) -> str | None:
    return None if v is None else " ".join(str(v).split())


__all__ = ["Question", "AnswerFile", "load_answers", "parse_answers", "answers_from_doc", "parse_answer", "parse_number",
           "parse_constraint", "parse_fits", "QUANTITIES", "CONVENTIONS", "quantity_label", "binary_reading", "item_labels",
           "Shape", "Fraction", "LineList"]
