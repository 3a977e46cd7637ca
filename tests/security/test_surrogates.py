"""A lone surrogate ("\\ud800" in a YAML double-quoted string) in a student's id or name, or in
a layer name, cannot be encoded as UTF-8: it made the whole class's gradebook exit 70 (the
variant hash encoded the id) and would have stopped every JSON output. Found by the
hostile-folder fuzz generator (tests/fuzz_outputs.py)."""
import json

from conftest import ROOT  # noqa: E402

SHEET = ROOT / "examples" / "homework" / "QUESTIONS.yaml"


def test_a_surrogate_id_is_one_student_not_the_class(cli, tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "a.yaml").write_text('sheet: cnn-homework-2\nid: "s\\ud83d1"\nstudent: "A\\udfff"\n'
                                 "answers:\n  alexnet-conv1: {shape: 55x55x96}\n")
    (subs / "b.yaml").write_text("sheet: cnn-homework-2\nid: s2\nstudent: Bob\nanswers:\n  alexnet-conv1: {shape: 55x55x96}\n")
    for fmt in ("plain", "csv", "markdown", "junit", "json"):
        res = cli("check", "--key", SHEET, subs, "--format", fmt)
        assert res.exit_code in (0, 1), (fmt, res.output[-500:])
        assert "Bob" in res.output
    data = json.loads(cli("check", "--key", SHEET, subs, "--format", "json").output)
    assert "A\udfff" in json.dumps(data, ensure_ascii=False, default=str).encode("utf-8", "surrogatepass").decode(
        "utf-8", "surrogatepass")
    plain = cli("check", "--key", SHEET, subs, "--format", "plain").output
    assert "A\\udfff" in plain


def test_a_surrogate_layer_name_in_json_and_tables(cli, tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text('input: 8x8x1\nlayers:\n  - {conv: 2, kernel: 3, name: "c\\ud800"}\n')
    out = cli("summarize", p, "--format", "json").output
    assert json.loads(out)["layers"][0]["name"] == "c\ud800"
    assert "c\\ud800" in cli("summarize", p, "--format", "plain").output
