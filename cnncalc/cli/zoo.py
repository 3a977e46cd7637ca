"""``cnncalc zoo`` (the shipped specs) and ``cnncalc compare`` (published tables vs. exact numbers)."""
from __future__ import annotations

import click

from cnncalc.cli.common import fail, format_option
from cnncalc.report.render import Column, TableView, emit_json, render
from cnncalc.shapes import fmt_int, fmt_shape

STATUS_STYLE = {"match": "match", "MISMATCH": "MISMATCH", "known discrepancy": "known discrepancy",
                "STALE": "STALE"}


def _short(text: str, width: int = 70) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


# ------------------------------------------------------------------------------------- zoo
@click.command()
@format_option()
def zoo(fmt):
    """List the shipped specs: input, parameters, MACs, source and published tables.

    \b
    Examples:
      cnncalc zoo
      cnncalc zoo --format json
      cnncalc summarize googlenet        # any name listed here works from any folder
      cnncalc compare googlenet          # its published tables, row by row
    """
    from cnncalc.api import analyze
    from cnncalc.compare import load_table, table_ids
    from cnncalc.errors import CnnCalcError
    from cnncalc.spec.loader import zoo_names

    tables: dict[str, list[str]] = {}
    for tid in table_ids():
        for s in load_table(tid).specs:
            tables.setdefault(s, []).append(tid)
    rows, broken = [], []
    for name in zoo_names():
        try:
            rep = analyze(name)
        except CnnCalcError as e:
            broken.append(name)
            rows.append({"name": name, "title": "", "input": "", "params": None, "macs": None,
                         "tables": "", "source": f"error: {e}"})
            continue
        rows.append({"name": name, "title": rep.name, "input": list(rep.input_shape),
                     "output": list(rep.layers[-1].shape) if rep.layers else list(rep.input_shape),
                     "layers": len(rep.layers), "params": rep.totals["params"], "macs": rep.totals["macs"],
                     "tables": tables.get(name, []), "source": rep.source or ""})
    if fmt == "json":
        emit_json({"specs": rows})
    else:
        for r in rows:
            r["tables_text"] = " ".join(r["tables"]) if isinstance(r["tables"], list) else r["tables"]
        cols = [Column("name", "Spec", "left"), Column("title", "Network", "left", drop=3),
                Column("input", "Input", fmt=lambda v: fmt_shape(tuple(v)) if v else ""),
                Column("params", "Params", fmt=lambda v: fmt_int(v) if v is not None else "—"),
                Column("macs", "MACs", fmt=lambda v: fmt_int(v) if v is not None else "—"),
                Column("tables_text", "Published tables", "left", drop=4),
                Column("source", "Source", "left", fmt=_short, style="dim", drop=5)]
        if fmt == "csv":  # CSV writes raw values: keep the input readable
            for r in rows:
                r["input"] = "x".join(map(str, r["input"])) if r["input"] else ""
        render(TableView(title=f"cnncalc zoo — {len(rows)} specs", columns=cols, rows=rows,
                         notes=[f"{n} does not load" for n in broken]), fmt)
    if broken:
        click.get_current_context().exit(2)


# ------------------------------------------------------------------------------------- compare
@click.command()
@click.argument("refs", nargs=-1, metavar="[SPEC] [TABLE]")
@click.option("--all", "all_tables", is_flag=True, help="Compare every shipped table.")
@click.option("--explain", is_flag=True, help="Show the arithmetic of every row, not only of the rows that differ.")
@format_option()
def compare(refs, all_tables, explain, fmt):
    """Compare a published table with the exact numbers of a spec, row by row.

    \b
    TABLE is a shipped table id (see `cnncalc zoo`) or a CSV file; with only a TABLE,
    the spec named in its '# spec:' header is used. With only a SPEC, every shipped
    table of that spec is compared. Values match at the precision they were printed
    (138M = 138,000,000 ± 500,000).

    \b
    Rows whose note starts with 'discrepancy:' are published values known to disagree
    with their own layers: they are shown as such, with the exact value and the
    arithmetic, and do not fail the command. Exit status 1 means an unexpected mismatch.

    \b
    Examples:
      cnncalc compare vgg-table2
      cnncalc compare googlenet-table1
      cnncalc compare vgg16 my-table.csv
      cnncalc compare --all
    """
    from cnncalc.compare import compare_table, is_table_ref, load_table, table_ids

    jobs: list[tuple[object, str | None]] = []  # (table, spec override)
    if all_tables:
        if refs:
            fail("--all takes no SPEC or TABLE")
        jobs = [(load_table(t), None) for t in table_ids()]
    elif len(refs) == 2:
        jobs = [(load_table(refs[1]), refs[0])]
    elif len(refs) == 1:
        ref = refs[0]
        if is_table_ref(ref):
            jobs = [(load_table(ref), None)]
        else:
            from cnncalc.errors import SpecError
            from cnncalc.spec.loader import resolve_spec

            try:
                resolve_spec(ref)
            except SpecError:
                import difflib

                close = difflib.get_close_matches(ref, table_ids() + _zoo(), n=3)
                fail(f"{ref!r} is neither a table (file or shipped table id) nor a spec"
                     + (f"\n  hint: did you mean {', '.join(close)}?" if close
                        else "\n  hint: `cnncalc zoo` lists the specs and their tables"))
            stem = ref[:-5] if ref.endswith(".yaml") else ref
            jobs = [(t, None) for t in (load_table(i) for i in table_ids()) if stem in t.specs]
            if not jobs:
                fail(f"no shipped table compares {ref!r}; give a table: cnncalc compare {ref} TABLE.csv")
    else:
        fail("give a TABLE, a SPEC and a TABLE, or --all (see cnncalc compare --help)")

    cache: dict = {}
    results = [compare_table(t, spec, _cache=cache) for t, spec in jobs]
    ok = all(r.ok for r in results)
    if fmt == "json":
        emit_json({"tables": [r.to_dict() for r in results], "ok": ok,
                   "counts": _overall(results)})
    elif fmt == "csv":
        import csv
        import sys

        from cnncalc.escape import csv_cell  # (a table's layer names and notes: never a formula)

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["table", "spec", "layer", "quantity", "published", "cnncalc", "exact", "status", "note"])
        for res in results:
            for r in res.results:
                ex = fmt_shape(r.exact) if isinstance(r.exact, tuple) else r.exact_text().replace(",", "")
                w.writerow([csv_cell(c) for c in (res.table.id, r.spec, r.row.layer, r.row.quantity, r.row.published,
                                                  r.printed, ex, r.status, r.row.note)])
    else:
        for i, res in enumerate(results):
            if i:
                click.echo("")
            render(_view(res, explain), fmt)
        if len(results) > 1:
            c = _overall(results)
            click.echo(f"\n{len(results)} tables, {c['rows']} rows: {c['match']} match, "
                       f"{c['known_discrepancy']} known discrepancies, {c['mismatch']} unexpected mismatches"
                       + (f", {c['stale']} stale" if c["stale"] else ""))
    if not ok:
        click.get_current_context().exit(1)


def _zoo() -> list[str]:
    from cnncalc.spec.loader import zoo_names

    return zoo_names()


def _overall(results) -> dict:
    keys = ("rows", "match", "known_discrepancy", "mismatch", "stale")
    return {k: sum(r.to_dict()["counts"][k] for r in results) for k in keys}


def _view(res, explain: bool) -> TableView:
    t = res.table
    multi = len({r.spec for r in res.results}) > 1
    rows = []
    for r in res.results:
        rows.append({"spec": r.spec, "layer": r.row.layer, "quantity": r.row.quantity,
                     "published": r.row.published, "printed": r.printed, "exact": r.exact_text(),
                     "status": r.status, "note": r.row.note})
    cols = ([Column("spec", "Spec", "left")] if multi else []) + [
        Column("layer", "Layer", "left"), Column("quantity", "Quantity", "left"),
        Column("published", "Published"), Column("printed", "cnncalc", drop=2),
        Column("exact", "Exact"), Column("status", "Status", "left"),
        Column("note", "Note", "left", fmt=lambda v: _short(v, 60), style="dim", drop=3)]
    sections = []
    for r in res.results:
        if r.status == "match" and not explain:
            continue
        head = f"{r.spec + ': ' if multi else ''}{r.row.layer} {r.row.quantity} — {r.status}"
        items = [("published", r.row.published),
                 ("exact", f"{r.exact_text()} (the table would print {r.printed})")]
        if r.row.note:
            items.append(("note", r.row.note))
        for j, a in enumerate(r.arithmetic):
            items.append(("arithmetic" if j == 0 else "", a))
        sections.append((head, items))
    title = f"{t.id}: {t.spec or ', '.join(t.specs)}" if not multi else f"{t.id}: {', '.join(t.specs)}"
    return TableView(title=title, columns=cols, rows=rows, sections=sections,
                     notes=[res.summary()], caption=t.source)
