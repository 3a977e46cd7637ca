"""``cnncalc report``: one self-contained HTML file (inline CSS, JS and SVG; no network access).

The page holds the analysis as JSON (``<script type="application/json" id="cnncalc-data">``,
the object ``summarize --format json`` prints, plus receptive fields and published-table
comparisons) and renders: the totals and memory lines of ``summarize``, the layer graph,
the per-layer table (sortable, modules collapsible, a click shows that layer's arithmetic),
bar charts of memory / params / MACs per layer and the receptive-field growth (r and S).

Pure Python; the page's script only reads the embedded JSON. A hidden status element
(``#cnncalc-status``) says "ok" once the script ran, and ``window.onerror`` writes any error
into ``#cnncalc-errors`` and shows the status line, so a headless browser test can read both
from the DOM and a reader sees only errors.
"""
from __future__ import annotations

import json

from cnncalc.escape import json_script
from cnncalc.report.svg import escape  # (& < > escaped, characters XML forbids shown escaped)
from cnncalc.shapes import fmt_int, fmt_shape, from_json

CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,DejaVu Sans,sans-serif;margin:0;color:#1a1a1a;background:#fafafa}
header{background:#1f3b63;color:#fff;padding:14px 24px}
header h1{margin:0;font-size:22px}
header p{margin:6px 0 0;font-size:13px;color:#d5e1f2;max-width:1100px}
main{padding:8px 24px 40px;max-width:1500px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;margin:16px 0;padding:12px 16px}
h2{font-size:17px;margin:2px 0 10px}
h3{font-size:14px;margin:12px 0 6px}
table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 8px;border-bottom:1px solid #eee;white-space:nowrap}
th{background:#f0f3f7;text-align:left;position:sticky;top:0}
th.sortable{cursor:pointer;user-select:none}
th.sortable:hover{background:#e1e8f1}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.mono{font-family:DejaVu Sans Mono,Menlo,Consolas,monospace}
.kv td:first-child{color:#444;padding-right:18px}
.kv td:last-child{font-family:DejaVu Sans Mono,Menlo,Consolas,monospace;white-space:normal;min-width:24em}
#layers-wrap{max-height:640px;overflow:auto;border:1px solid #eee}
#layers tr.layer{cursor:pointer}
#layers tr.layer:hover{background:#f4f8ff}
#layers tr.sel{background:#fff3c4}
#layers tr.group{background:#f7f2e0;cursor:pointer;font-weight:600}
#layers tr.inner td:nth-child(2){padding-left:26px}
#layers tr.hidden{display:none}
#explain{white-space:pre-wrap;background:#f7f7f7;border:1px solid #e3e3e3;border-radius:4px;padding:8px 10px;
 font-family:DejaVu Sans Mono,Menlo,Consolas,monospace;font-size:12.5px;min-height:3em}
.graph-wrap{max-height:760px;overflow:auto;border:1px solid #eee;background:#fff}
.chart-wrap{overflow-x:auto}
.chart text{font-family:DejaVu Sans,sans-serif;font-size:11px;fill:#333}
.chart text.xl{font-size:10px;fill:#444}.chart text.muted-svg{font-size:10px;fill:#888}
.chart rect.bar:hover{opacity:.65}
.status-match{color:#16702e}.status-MISMATCH,.status-STALE{color:#b00020;font-weight:bold}
.status-known{color:#8a6d00}
.note{color:#666;white-space:normal;max-width:520px}
.muted{color:#666;font-size:12px}
button{font-size:12px;margin-right:6px}
"""

JS = r"""
(function(){
var errs=document.getElementById('cnncalc-errors');
window.onerror=function(msg,src,line,col,err){errs.textContent+=msg+' ('+line+':'+col+')\n';
  document.getElementById('cnncalc-status').textContent='error';
  document.getElementById('cnncalc-status-line').hidden=false;};
var D=JSON.parse(document.getElementById('cnncalc-data').textContent);
var S=D.summary, RF={};
(D.receptive_field||[]).forEach(function(f){RF[f.name]=f;});
function fmt(n){return n==null?'':String(n).replace(/\B(?=(\d{3})+(?!\d))/g,',');}
function shape(s,k){return k=='tokens'?s.join('x')+' tokens':k=='tensor'?'('+s.join(', ')+')':s.length==1?'['+s[0]+']':s.join('x');}
function one(v){return Array.isArray(v)?v.join('x'):(v==null?'':String(v));}
var tbody=document.querySelector('#layers tbody');
var cols=['index','name','description','shape','activations','params','macs','r','S'];
var rows=S.layers.map(function(l,i){var f=RF[l.name]||{};
  return {index:i+1,name:l.name,description:l.description,shape:l.shape,kind:l.kind,activations:l.activations,
    params:l.params,macs:l.macs,r:f.unknown?'?':f.r,S:f.unknown?'?':f.S,group:l.name.indexOf('/')>0?l.name.split('/')[0]:null,layer:l};});
var groups={};rows.forEach(function(r){if(r.group){(groups[r.group]=groups[r.group]||[]).push(r);}});
var collapsed={}, sortKey=null, sortDir=1;
function cell(tr,text,cls){var td=document.createElement('td');td.textContent=text;if(cls)td.className=cls;tr.appendChild(td);}
function layerRow(r,inner){var tr=document.createElement('tr');tr.className='layer'+(inner?' inner':'');
  tr.dataset.name=r.name;cell(tr,r.index,'num');cell(tr,r.name);cell(tr,r.description);
  cell(tr,shape(r.shape,r.kind),'num mono');cell(tr,fmt(r.activations),'num');cell(tr,fmt(r.params),'num');
  cell(tr,fmt(r.macs),'num');cell(tr,one(r.r),'num');cell(tr,one(r.S),'num');
  tr.addEventListener('click',function(){show(r.name,tr);});return tr;}
function groupRow(g,members){var tr=document.createElement('tr');tr.className='group';tr.dataset.group=g;
  var sum=function(k){return members.reduce(function(a,m){return a+(m.layer.view&&k=='activations'?0:m[k]);},0);};
  cell(tr,'');cell(tr,(collapsed[g]?'\u25b8 ':'\u25be ')+g+'  ('+members.length+' layers)');cell(tr,'module');
  cell(tr,shape(members[members.length-1].shape,members[members.length-1].kind),'num mono');cell(tr,fmt(sum('activations')),'num');
  cell(tr,fmt(sum('params')),'num');cell(tr,fmt(sum('macs')),'num');cell(tr,'');cell(tr,'');
  tr.addEventListener('click',function(){collapsed[g]=!collapsed[g];draw();});return tr;}
function draw(){tbody.textContent='';
  var inp=document.createElement('tr');inp.className='layer';cell(inp,0,'num');cell(inp,'input');cell(inp,'input');
  cell(inp,shape(S.input,S.input_kind),'num mono');cell(inp,fmt(S.totals.input),'num');cell(inp,'0','num');cell(inp,'0','num');
  cell(inp,'1','num');cell(inp,'1','num');tbody.appendChild(inp);
  if(sortKey){var sorted=rows.slice().sort(function(a,b){var x=a[sortKey],y=b[sortKey];
      if(Array.isArray(x))x=x.reduce(function(p,q){return p*q;},1);if(Array.isArray(y))y=y.reduce(function(p,q){return p*q;},1);
      if(x==null)x=-1;if(y==null)y=-1;return (x<y?-1:x>y?1:0)*sortDir;});
    sorted.forEach(function(r){tbody.appendChild(layerRow(r,false));});}
  else{var seen={};rows.forEach(function(r){if(!r.group){tbody.appendChild(layerRow(r,false));return;}
      if(!seen[r.group]){seen[r.group]=1;tbody.appendChild(groupRow(r.group,groups[r.group]));}
      if(!collapsed[r.group])tbody.appendChild(layerRow(r,true));});}
  document.querySelectorAll('#layers th.sortable').forEach(function(th){
    th.dataset.arrow=(th.dataset.key==sortKey)?(sortDir>0?' \u25b2':' \u25bc'):'';th.textContent=th.dataset.label+th.dataset.arrow;});}
document.querySelectorAll('#layers th.sortable').forEach(function(th){th.dataset.label=th.textContent;
  th.addEventListener('click',function(){var k=th.dataset.key,first=(k=='name'||k=='description'||k=='index')?1:-1;
    if(sortKey==k){if(sortDir==first)sortDir=-first;else{sortKey=null;sortDir=1;}}
    else{sortKey=k;sortDir=first;}draw();});});
document.getElementById('collapse-all').addEventListener('click',function(){Object.keys(groups).forEach(function(g){collapsed[g]=true;});sortKey=null;draw();});
document.getElementById('expand-all').addEventListener('click',function(){collapsed={};sortKey=null;draw();});
var ex=document.getElementById('explain');
function show(name,tr){document.querySelectorAll('#layers tr.sel').forEach(function(t){t.classList.remove('sel');});
  if(tr)tr.classList.add('sel');var l=null;S.layers.forEach(function(x){if(x.name==name)l=x;});if(!l)return;
  var out=[l.name+' ('+l.description+') \u2192 '+shape(l.shape,l.kind)];
  (l.explain||[]).forEach(function(e){out.push('    '+e);});
  var f=RF[name];if(f&&f.explain&&f.explain.length){out.push(f.unknown?'receptive field: unknown':'receptive field: r = '+one(f.r)+', S = '+one(f.S)+', P = '+one(f.P));
    f.explain.forEach(function(e){out.push('    '+e);});}
  ex.textContent=out.join('\n');
  document.querySelectorAll('.cnncalc-graph g.node rect').forEach(function(r){r.removeAttribute('stroke-width');});}
document.querySelectorAll('.cnncalc-graph g.node').forEach(function(g){g.style.cursor='pointer';
  g.addEventListener('click',function(){var n=g.dataset.name,tr=tbody.querySelector('tr[data-name="'+CSS.escape(n)+'"]');show(n,tr);
    if(tr)tr.scrollIntoView({block:'nearest'});});});
draw();
if(location.hash=='#selftest'){  // the browser test drives the page through real click events
  var out={};function click(el){el.dispatchEvent(new MouseEvent('click',{bubbles:true}));}
  var th=document.querySelector('#layers th[data-key="params"]');click(th);
  var first=tbody.querySelector('tr.layer:nth-child(2)');out.sorted_first=first?first.dataset.name:null;
  click(th);click(th);out.unsorted_first=(tbody.querySelector('tr.layer:nth-child(2)')||{dataset:{}}).dataset.name||null;
  var g=tbody.querySelector('tr.group');out.rows_before=tbody.querySelectorAll('tr').length;
  if(g){click(g);out.folded=g.dataset.group;}out.rows_after=tbody.querySelectorAll('tr').length;
  var lr=tbody.querySelectorAll('tr.layer');click(lr[lr.length-1]);out.explain=ex.textContent;
  var node=document.querySelector('.cnncalc-graph g.node[data-kind]:not([data-kind="input"])');
  if(node){click(node);out.graph_click=ex.textContent.split(' ')[0];out.graph_node=node.dataset.name;}
  document.getElementById('cnncalc-selftest').textContent=JSON.stringify(out);}
document.getElementById('cnncalc-status').textContent='ok';
})();
"""


#: layers drawn as columns of the per-layer charts, and boxes of the graph picture: past this a
#: page says it left them out (a 50,000-layer chain's pictures were 60 MB of SVG that no browser
#: lays out usefully, and most of the time `report` took). The table and the data keep every layer.
MAX_DRAWN = 5_000


def too_many_to_draw(what: str, n: int, hint: str) -> str:
    """The note a page shows instead of a picture of ``n`` items."""
    return (f"<p class=\"muted\" id=\"{escape(what.split()[0])}-left-out\">Not drawn: {escape(what)} of {n:,} "
            f"layers or boxes, over the {MAX_DRAWN:,} a page draws. {escape(hint)}</p>")


LABEL_CHARS = 22  # an axis label longer than this is cut (the column's tooltip has the full name)


def _escaper():
    """:func:`escape` with its results kept (a page's charts repeat every layer's name and type)."""
    done: dict[str, str] = {}

    def esc(s):
        r = done.get(s)
        if r is None:
            r = done[s] = escape(s)
        return r
    return esc


def _bar_chart(title: str, names: list[str], values: list[int], colour: str, unit: str = "",
               descriptions: list[str] | None = None, escape=escape) -> str:
    """A column chart, one column per layer in order: the y axis with ticks, the layer names
    under the columns (every k-th when they would collide), and a tooltip per column (its
    index, name, type and exact value). ``escape``: the text escaper (a memoised one, shared
    by a page's charts)."""
    n = max(len(values), 1)
    bw = max(2, min(32, 1100 // n))
    step = max(1, -(-12 // bw))  # label every step-th column: at least 12 px between labels
    longest = max((min(len(x), LABEL_CHARS) for x in names[::step]), default=1)
    left, top, h = 70, 22, 150
    bottom = int(longest * 6.2) + 22
    W, H = left + n * bw + 20, top + h + bottom
    vmax = max(values, default=0) or 1
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             f'viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}">',
             f'<text x="{left}" y="14" font-weight="bold">{escape(title)}</text>']
    for frac in (0, 0.5, 1):  # y axis: 0, half, the largest value, with grid lines
        y = top + h - frac * h
        parts.append(f'<line x1="{left - 3}" y1="{y:.1f}" x2="{W - 10}" y2="{y:.1f}" '
                     f'stroke="{"#999" if frac == 0 else "#e4e4e4"}"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f'{escape(_short(round(vmax * frac)))}</text>')
    for i, (name, v) in enumerate(zip(names, values)):
        bh = v / vmax * h
        x = left + i * bw
        desc = f" ({descriptions[i]})" if descriptions and descriptions[i] else ""
        en = escape(name)
        parts.append(f'<rect class="bar" x="{x}" y="{top + h - bh:.1f}" width="{max(bw - 1, 1)}" height="{bh:.1f}" '
                     f'fill="{colour}" data-name="{en.replace(chr(34), "&quot;")}"><title>{i + 1}. {en}{escape(desc)}: '
                     f'{fmt_int(v)}{unit}</title></rect>')
        if i % step == 0:
            cx, cy = x + bw / 2 + 4, top + h + 6
            label = name if len(name) <= LABEL_CHARS else "…" + name[-(LABEL_CHARS - 1):]  # the specific end
            parts.append(f'<text class="xl" x="{cx:.1f}" y="{cy}" text-anchor="end" '
                         f'transform="rotate(-90 {cx:.1f} {cy})">{escape(label)}<title>{en}</title></text>')
    every = "" if step == 1 else f", one named per {step} columns"
    parts.append(f'<text x="{W - 10}" y="{H - 4}" text-anchor="end" class="muted-svg">layers in order{every}; '
                 f'hover a column for its value</text></svg>')
    return "".join(parts)


def _short(v: int) -> str:
    for div, suffix in ((10**9, "G"), (10**6, "M"), (10**3, "K")):
        if v >= div:
            return f"{v / div:.3g}{suffix}"
    return str(v)


def _kv(rows: list[tuple[str, str]]) -> str:
    return "<table class=\"kv\">" + "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in rows) + "</table>"


def _num(v) -> int | None:
    if isinstance(v, list):
        v = max((x for x in v if isinstance(x, (int, float))), default=None)
    return int(v) if isinstance(v, (int, float)) else None


def build_html(summary: dict, *, sections: list[tuple[str, list[tuple[str, str]]]], graph_svg: str,
               rf: list[dict] | None, comparisons: list[dict], explain: dict[str, list[str]],
               timeline: str = "") -> str:
    """The page. ``summary`` is ``Report.to_dict()``; ``sections`` the totals and memory lines of
    summarize; ``rf`` the ``layers`` of ``receptive-field --format json`` (None when the input has
    no spatial axes); ``comparisons`` the ``to_dict()`` of each published-table comparison."""
    layers = summary["layers"]
    for row in layers:
        row["explain"] = explain.get(row["name"], [])
    data = {"summary": summary, "receptive_field": rf, "comparisons": comparisons}
    # (< > & U+2028 U+2029 as \\u escapes: the same JSON, and no "</script" or "<!--" in the page)
    blob = json_script(json.dumps(data, separators=(",", ":")))
    names = [r["name"] for r in layers]
    descs = [r.get("description", "") for r in layers]
    title = f"{summary['name']} — input {fmt_shape(from_json(summary['input'], summary.get('input_kind')))}"
    drawn = len(layers) <= MAX_DRAWN
    esc = _escaper()
    charts = [
        _bar_chart("Memory per layer (output elements)", names, [0 if r["view"] else r["activations"] for r in layers],
                   "#3f6fb5", " elements", descs, esc),
        _bar_chart("Parameters per layer", names, [r["params"] for r in layers], "#c7772a", " params", descs, esc),
        _bar_chart("MACs per layer", names, [r["macs"] for r in layers], "#7b4bb3", " MACs", descs, esc),
    ] if drawn else [too_many_to_draw("charts per layer", len(layers),
                                      "The table above has every layer's numbers (sortable).")]
    rf_html = ("<p class=\"muted\">No receptive fields: the input has no spatial axes, or they were left "
               "out (--no-rf).</p>")
    if rf and not drawn:
        rf_html = too_many_to_draw("receptive-field charts", len(layers),
                                   "The table above has every layer's r and S.")
    elif rf:
        shown = set(names)
        rfl = [f for f in rf if f["name"] in shown]
        rs = [_num(f["r"]) or 0 for f in rfl]
        ss = [_num(f["S"]) or 0 for f in rfl]
        rdesc = {r["name"]: r.get("description", "") for r in layers}
        rnames = [f["name"] for f in rfl]
        rd = [rdesc.get(x, "") for x in rnames]
        rf_html = (_bar_chart("Receptive field size r per layer (pixels)", rnames, rs, "#3d8b4a", " px", rd, esc)
                   + _bar_chart("Effective stride S per layer (pixels)", rnames, ss, "#8a6d00", " px", rd, esc)
                   + "<p class=\"muted\">Araujo, Norris &amp; Sim, Distill 2019; the values of every layer are in "
                     "the table's r and S columns (per axis where they differ).</p>")
    comp_html = ""
    for c in comparisons:
        body = "".join(
            f"<tr><td>{escape(r['layer'])}</td><td>{escape(r['quantity'])}</td><td class=\"num\">{escape(r['published'])}</td>"
            f"<td class=\"num\">{escape(r['printed'])}</td><td class=\"num\">{escape(r['exact_text'])}</td>"
            f"<td class=\"status-{escape(r['status'].split()[0])}\">{escape(r['status'])}</td>"
            f"<td class=\"note\">{escape(r['note'])}</td></tr>" for r in c["rows"])
        cnt = c["counts"]
        comp_html += (f"<h3>{escape(c['table'])}</h3><p class=\"muted\">{escape(c.get('source') or '')}</p>"
                      f"<table><thead><tr><th>Layer</th><th>Quantity</th><th class=\"num\">Published</th>"
                      f"<th class=\"num\">cnncalc</th><th class=\"num\">Exact</th><th>Status</th><th>Note</th></tr></thead>"
                      f"<tbody>{body}</tbody></table><p class=\"muted\">{cnt['rows']} rows: {cnt['match']} match, "
                      f"{cnt['known_discrepancy']} known discrepancies, {cnt['mismatch']} mismatches</p>")
    if not comp_html:
        comp_html = "<p class=\"muted\">No shipped published table covers this spec.</p>"
    t = summary["totals"]
    totals_html = "".join(f"<h3>{escape(h)}</h3>{_kv(items)}" for h, items in sections)
    head_cols = [("index", "#", True), ("name", "Layer", False), ("description", "Type", False),
                 ("shape", "Output shape", True), ("activations", "Memory (elements)", True),
                 ("params", "Params", True), ("macs", "MACs", True), ("r", "r", True), ("S", "S", True)]
    ths = "".join(f'<th class="sortable{" num" if num else ""}" data-key="{k}">{escape(lbl)}</th>'
                  for k, lbl, num in head_cols)
    total_row = (f"<tr><td></td><td><b>Total</b></td><td></td><td></td>"
                 f"<td class=\"num\" id=\"total-memory\">{fmt_int(t['activations'] + t['input'])}</td>"
                 f"<td class=\"num\" id=\"total-params\">{fmt_int(t['params'])}</td>"
                 f"<td class=\"num\" id=\"total-macs\">{fmt_int(t['macs'])}</td><td></td><td></td></tr>")
    source = f"<p>{escape(summary['source'])}</p>" if summary.get("source") else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<title>{escape(title)} — cnncalc report</title>
<style>{CSS}</style></head>
<body>
<header><h1>{escape(title)}</h1>{source}</header>
<main>
<p class="muted" id="cnncalc-status-line" hidden>Status: <span id="cnncalc-status">script did not run</span>
<span id="cnncalc-errors" style="color:#b00020;white-space:pre"></span></p>
<noscript><p class="muted">The table, its sorting and the arithmetic on click need JavaScript; the totals,
the graph and the charts are here without it.</p></noscript>
<pre id="cnncalc-selftest" hidden></pre>
<section id="totals"><h2>Totals</h2>
<table class="kv"><tr><td>layers (the table's rows 1 to {fmt_int(t['layers'])}; row 0 is the input)</td><td id="t-layers">{fmt_int(t['layers'])}</td></tr>
<tr><td>params</td><td id="t-params">{fmt_int(t['params'])}</td></tr>
<tr><td>MACs</td><td id="t-macs">{fmt_int(t['macs'])}</td></tr>
<tr><td>FLOPs = 2 × MACs</td><td id="t-flops">{fmt_int(t['flops'])}</td></tr>
<tr><td>activations (elements, without the input)</td><td id="t-activations">{fmt_int(t['activations'])}</td></tr>
</table>
{totals_html}</section>
<section id="layers-section"><h2>Layers</h2>
<p class="muted">Click a column header to sort (again: reverse, a third time: spec order); click a module row
to fold it; click a layer (here or in the graph) for its arithmetic.
<button id="collapse-all">fold all modules</button><button id="expand-all">unfold all</button></p>
<div id="explain">Click a layer to see the arithmetic behind its numbers.</div>
<div id="layers-wrap"><table id="layers"><thead><tr>{ths}</tr></thead><tbody></tbody><tfoot>{total_row}</tfoot></table></div>
</section>
<section id="graph"><h2>Graph</h2><div class="graph-wrap">{graph_svg}</div></section>
<section id="charts"><h2>Per layer</h2><div class="chart-wrap">{''.join(charts)}</div></section>
{f'<section id="timeline"><h2>Memory of one training step</h2><div class="chart-wrap">{timeline}</div></section>' if timeline else ''}
<section id="rf"><h2>Receptive-field growth</h2><div class="chart-wrap">{rf_html}</div></section>
<section id="compare"><h2>Published tables</h2>{comp_html}</section>
<p class="muted">Written by cnncalc; every number is computed from the spec. Self-contained: no network access.</p>
</main>
<script type="application/json" id="cnncalc-data">{blob}</script>
<script>{JS}</script>
</body></html>
"""
