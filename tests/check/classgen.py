"""A class of 30 for the gradebook tests: names of every length a real roster has, a roster,
and submissions of the shipped example sheet (examples/homework/QUESTIONS.yaml).

Each student answers from their own variant's solution key (``--template --solutions``),
then makes the mistakes picked for them; two students on the roster hand nothing in, one
submission copies another's file (its 'variant:' kept), and one is from a student not on the
roster. Only the *display* of the gradebook is tested with this class: the tests that check
grades compute the right answers by hand.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

HOMEWORK = Path(__file__).resolve().parents[2] / "examples" / "homework"

NAMES = [
    "Ada Lovelace", "Bob Stone", "Eve Moneypenny", "Li Na", "Maximilian Oyelaran-Whitfield",
    "Zoë Ångström", "Jean-Baptiste Delacroix", "Priya Raghunathan", "O'Brien Kelly", "Chen Xiaoming",
    "Fatima Al-Zahra", "Nguyen Van An", "Siobhán Ní Bhriain", "Kwame Mensah", "Ingrid Løvdal",
    "Alexandros Papadopoulos", "Yuki Tanaka", "Carlos Eduardo Rodrigues", "Amara Okafor", "Tom Li",
    "Margaret Hamilton", "Grace Hopper", "Alan Turing", "Kurt Gödel", "Emmy Noether",
    "Srinivasa Ramanujan", "Hedy Lamarr", "Katherine Johnson", "Dorothy Vaughan", "Mary Jackson",
]
# the mistakes each student makes (by question id → wrong answer), cycled over the class
MISTAKES = [
    {}, {"alexnet-conv1.shape": "217x217x96"}, {"stride-3": "yes", "vgg16.memory": "24M"},
    {"alexnet-conv1.weights_per_filter": "121"}, {"rf-7x7": "13", "alexnet-pool1": "26x26x96"},
    {"my-conv.params": "1"}, {"vgg16.params": "138,000,000"}, {},
]


def make_class(dest: Path, n: int = 30) -> dict:
    """Write QUESTIONS.yaml, design_net.yaml, roster.csv and submissions/ into ``dest``; return
    what was written: {"roster": [(id, name)], "absent": [ids], "copy": (id, copied id),
    "stranger": (id, name)}."""
    from cnncalc.check.quiz import render_template
    from cnncalc.check.sheet import Sheet

    for f in ("QUESTIONS.yaml", "design_net.yaml"):
        shutil.copy(HOMEWORK / f, dest / f)
    sheet = Sheet(dest / "QUESTIONS.yaml")
    roster = [(f"s{2001 + i}", NAMES[i % len(NAMES)]) for i in range(n)]
    (dest / "roster.csv").write_text("id,name\n" + "".join(f'{sid},"{name}"\n' for sid, name in roster),
                                     encoding="utf-8")
    subs = dest / "submissions"
    subs.mkdir()
    absent = [roster[7][0], roster[19][0]]
    texts = {}
    for i, (sid, name) in enumerate(roster):
        if sid in absent:
            continue
        text = render_template(sheet.variant(sid), filled=True)
        text = text.replace("\nid:", f"\nid: {sid}", 1).replace("\nstudent:", f'\nstudent: "{name}"', 1)
        for qid, wrong in MISTAKES[i % len(MISTAKES)].items():
            text = re.sub(rf"^(  {re.escape(qid)}:) [^#\n]*?(\s+#|$)", rf"\1 {wrong}\2", text, count=1, flags=re.M)
        texts[sid] = text
        (subs / f"{sid}.yaml").write_text(text, encoding="utf-8")
    # a copy of student 1's file under student 2's id and name, student 1's variant kept
    src, dst = roster[1], roster[2]
    copied = re.sub(r"^variant: .*\n", "", texts[src[0]], flags=re.M)
    copied = copied.replace(f"\nid: {src[0]}", f"\nid: {dst[0]}\nvariant: {src[0]}", 1)
    copied = copied.replace(f'student: "{src[1]}"', f'student: "{dst[1]}"', 1)
    (subs / f"{dst[0]}.yaml").write_text(copied, encoding="utf-8")
    stranger = ("s9999", "Walter Unlisted")
    text = render_template(sheet.variant(stranger[0]), filled=True)
    text = text.replace("\nid:", f"\nid: {stranger[0]}", 1).replace("\nstudent:", f"\nstudent: {stranger[1]}", 1)
    (subs / "late-add.yaml").write_text(text, encoding="utf-8")
    return {"roster": roster, "absent": absent, "copy": (dst[0], src[0]), "stranger": stranger}
