"""Homework checking: compare the answers in an answer file with the exact numbers.

An answer file (``ANSWERS.yaml``) is YAML. The instructor writes the questions; the
students fill in the answers; ``cnncalc check ANSWERS.yaml`` (or CI) grades them::

    title: Homework 2 — sizes of CNN layers
    spec: alexnet                  # the network of the questions below: a zoo name, a path
                                   # (relative to this file) or an inline spec mapping
    specs:                         # optional: more networks, by short name
      two7: {input: 31x31x1, layers: [{conv: 1, kernel: 7, stride: 2}, {conv: 1, kernel: 7}]}
    questions:
      - id: conv1-shape            # optional (default q1, q2, …)
        text: Output volume of CONV1          # optional
        layer: conv1               # a layer of the spec (case-insensitive: CONV1 works)
        shape: 55x55x96            # ← the answer
      - layer: conv1
        params: 35K                # at the precision written: 34,944 passes, 36K fails
        weights_per_filter: 363    # several answers in one item → q2.params, q2.weights_per_filter
      - layer: {input: 32x32x3, conv: 10, kernel: 5, pad: 2}   # a standalone layer
        shape: 32x32x10
        params: 760
      - layer: {input: 7x7x1, conv: 1, kernel: 3, stride: 3}
        fits: no                   # yes / no ("does not fit" is also accepted as a shape)
      - spec: vgg16                # no 'layer': a question about the whole network
        params: 138M
        memory: 15.2M              # input + every layer's output, in elements (the outputs
                                   # alone also pass: both conventions are common)
        memory_bytes: 61 MB        # MB = 10^6 B (2^20 B also passes), MiB = 2^20 B; 'batch:' and
                                   # 'dtype:' apply
      - spec: two7
        rf: 19                     # receptive field size r of the output (or of 'layer:')
        rf_stride: 2               # its stride (jump) S
      - spec: my_net.yaml          # "design a network that …": requirements
        require:
          - params <= 1,000,000
          - rf >= 100
          - macs <= 600M
          - output = 1x1x10

Answer keys: ``shape`` (alias ``output``), ``params`` (``bias: false`` on the item counts
weights only), ``weights``, ``biases``, ``weights_per_filter`` (``fan_in``),
``params_per_filter``, ``macs``, ``flops`` (= 2 × MACs), ``memory`` (elements; of a layer:
its output; of a network: input + all outputs), ``memory_bytes``, ``rf``, ``rf_stride``,
``fits``. Options on an item or at the top: ``batch``, ``dtype``, ``bias``; on an item:
``id``, ``text``, ``spec``, ``layer``, ``input`` (override the spec's input).

Answers are read the way students write them: ``55x55x96``, ``[55, 55, 96]``, ``34848``,
``34,848``, ``35K``, ``138M``, ``1.8e9``, ``3.2M``, ``61 MB``. An exact integer must be exact;
a rounded one matches when the exact value rounds to it at the precision written
(``35K`` = 35,000 ± 500). An empty answer is "not answered" (a fail).
Requirements: ``<= >= < > =`` (or ``≤ ≥``) against ``params weights biases macs flops memory
memory_bytes rf rf_stride output``; bounds of ``≤``/``≥`` are taken at face value (``1M`` =
1,000,000), ``=`` matches at the precision written.

YAML note: inside ``{...}`` a comma separates fields, so quote ``'34,848'`` there (block
style ``params: 34,848`` needs no quotes).

Grading a class (``cnncalc check --key QUESTIONS.yaml SUBMISSION…``): the question sheet
(``cnncalc.check.sheet``: the format above with the answers left blank, plus ``sheet:``,
``seed:``, ``points:`` and ``visibility:``, and per-student ``{choose: […]}`` /
``{range: [lo, hi]}`` values, see ``cnncalc.check.variants``) is the authority; submissions
(``cnncalc.check.submission``) carry only the student's ``id:`` and answers by question id;
a roster (``cnncalc.check.roster``) lists the class; ``cnncalc.check.gradebook`` grades them
with the variant assigned to each student and looks across the class (missing students,
copies); ``cnncalc.check.views`` draws the gradebook and writes the LMS, Gradescope, JUnit
and feedback formats, every name encoded for its reader (``cnncalc.check.encode``)::

    from cnncalc.check import Sheet, grade_all
    book = grade_all(Sheet("QUESTIONS.yaml"), ["submissions/ada.yaml", "submissions/bob.yaml"])
    [(g.name, g.sid, g.score, g.points, g.status, g.flags) for g in book.graded]

Python API::

    from cnncalc.check import run_check, pytest_cases
    run = run_check("ANSWERS.yaml"); run.passed, run.failed

    @pytest.mark.parametrize("case", pytest_cases("ANSWERS.yaml"))
    def test_homework(case):
        case.check()
"""
from __future__ import annotations

from cnncalc.check.answers import (AnswerFile, Question, load_answers, parse_answer, parse_answers,
                                   parse_constraint, parse_number)
from cnncalc.check.cases import Case, pytest_cases
from cnncalc.check.grade import CheckRun, Grader, Outcome, run_check


def __getattr__(name):
    """Sheets and gradebooks are imported when first used (``check ANSWERS.yaml`` needs neither)."""
    if name in ("Sheet", "SheetVariant"):
        from cnncalc.check import sheet
        return getattr(sheet, name)
    if name in ("grade_all", "Gradebook", "Graded"):
        from cnncalc.check import gradebook
        return getattr(gradebook, name)
    raise AttributeError(name)


__all__ = ["AnswerFile", "Question", "load_answers", "parse_answers", "parse_answer", "parse_number",
           "parse_constraint", "Case", "pytest_cases", "CheckRun", "Grader", "Outcome", "run_check",
           "Sheet", "SheetVariant", "grade_all", "Gradebook", "Graded"]
