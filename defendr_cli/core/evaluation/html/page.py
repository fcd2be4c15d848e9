"""The page around the sections: escaping, data: URIs, the stylesheet (screen and print) and the sort script.

Everything a report page needs is inline: no font, script or stylesheet is fetched, so the file
opens offline and can be mailed or attached as it is. The only script sorts a table when its
header is clicked; without scripts every table is still there, in the order it was written.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any

STYLE = """
:root{--fg:#1d2330;--muted:#5b6475;--line:#d9dde5;--bg:#fff;--soft:#f4f6f9;
--pass:#1c7c3a;--pass-bg:#e3f4e8;--warn:#8a5a00;--warn-bg:#fff2d6;--fail:#a61b1b;--fail-bg:#fde4e4;--accent:#2456a6}
*{box-sizing:border-box}
body{margin:0;color:var(--fg);background:var(--bg);font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
"Helvetica Neue",Arial,sans-serif}
main{max-width:1180px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:20px;margin:40px 0 10px;padding-top:8px;border-top:2px solid var(--line)}
h3{font-size:16px;margin:22px 0 6px}p{margin:6px 0}.muted{color:var(--muted)}.small{font-size:13px}
a{color:var(--accent)}code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px}
pre{background:var(--soft);padding:10px 12px;border-radius:6px;overflow-x:auto;white-space:pre-wrap;overflow-wrap:anywhere}
nav.toc{margin:14px 0 6px;font-size:14px}nav.toc a{margin-right:14px;white-space:nowrap}
.lede{font-size:17px;margin:10px 0 4px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(250px,1fr));gap:12px;margin-top:12px}
.card{border:1px solid var(--line);border-left:5px solid var(--line);border-radius:8px;padding:10px 12px;
break-inside:avoid;page-break-inside:avoid}
.card.pass{border-left-color:var(--pass)}.card.warn{border-left-color:#d99a00}.card.fail{border-left-color:var(--fail)}
.card h3{margin:0 0 6px;font-size:16px;word-break:break-word}.card .kind{font-weight:normal;color:var(--muted);font-size:13px}
.metrics{display:grid;grid-template-columns:repeat(3,1fr);gap:4px;margin:6px 0}
.metric b{display:block;font-size:20px;line-height:1.2}.metric span{font-size:12px;color:var(--muted)}
.headline{font-size:14px;margin:6px 0 2px}
.badge{display:inline-block;padding:0 6px;border-radius:4px;font-size:12px;font-weight:600;white-space:nowrap}
.badge.pass{color:var(--pass);background:var(--pass-bg)}.badge.warn{color:var(--warn);background:var(--warn-bg)}
.badge.fail{color:var(--fail);background:var(--fail-bg)}
.scroll{overflow-x:auto;margin:8px 0}
table{border-collapse:collapse;font-size:13px;font-variant-numeric:tabular-nums}
th,td{border-bottom:1px solid var(--line);padding:4px 8px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;white-space:nowrap}
td.num{text-align:right;white-space:nowrap}
table.sortable th{cursor:pointer}table.sortable th:hover{background:#e7ebf2}
table.sortable th[data-dir=asc]::after{content:" \\25B2";font-size:10px}
table.sortable th[data-dir=desc]::after{content:" \\25BC";font-size:10px}
tr.warn td{background:var(--warn-bg)}tr.fail td{background:var(--fail-bg)}
caption{caption-side:bottom;text-align:left;color:var(--muted);font-size:12px;padding-top:4px;max-width:1100px}
.table-title{font-weight:600;margin:18px 0 2px}
ul.checks{padding-left:18px;margin:6px 0}ul.checks li{margin:3px 0}
figure{margin:12px 0;break-inside:avoid;page-break-inside:avoid}figcaption{color:var(--muted);font-size:13px}
figure img{max-width:100%;height:auto;border:1px solid var(--line)}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:8px 18px}.figs figure.wide{grid-column:1/-1}
.gallery{display:flex;flex-direction:column;gap:12px}
.shot{display:flex;flex-wrap:wrap;gap:8px 18px;align-items:flex-start;border:1px solid var(--line);border-radius:8px;
padding:10px;break-inside:avoid;page-break-inside:avoid}
.shot .pics{flex:0 0 380px}.triple{display:flex;gap:6px}.triple div{width:122px;text-align:center;font-size:11px;color:var(--muted)}
.triple img{width:120px;height:auto;image-rendering:pixelated;border:1px solid var(--line)}
.shot .scroll{flex:1 1 380px;margin:0}.shot table{width:100%;font-size:12px}.ok{color:var(--pass)}.bad{color:var(--fail)}
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:6px 0}dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0;word-break:break-word}
@media (max-width:700px){main{padding:12px}.metrics{grid-template-columns:repeat(3,1fr)}}
@media print{
body{font-size:11px}main{max-width:none;padding:0}nav.toc,.noprint{display:none}
h2{break-before:auto;break-after:avoid;page-break-after:avoid}h3,.table-title{break-after:avoid;page-break-after:avoid}
.scroll{overflow:visible}table{font-size:10px}th,td{padding:2px 5px}tr{break-inside:avoid;page-break-inside:avoid}
table.sortable th::after{content:none!important}
.card,.shot,figure{break-inside:avoid}a{color:inherit;text-decoration:none}
.badge,tr.warn td,tr.fail td,.card{-webkit-print-color-adjust:exact;print-color-adjust:exact}
figure img{max-height:24cm;width:auto}}
"""

# Sorts a table by the clicked header: numbers (data-v) before text, missing values last; click again reverses.
SORT_SCRIPT = """
(function(){function key(td){var v=td.getAttribute('data-v');if(v===null)v=td.textContent.trim();
if(v===''||v==='-')return null;var n=Number(v);return isNaN(n)?v.toLowerCase():n}
function cmp(a,b){if(a===b)return 0;if(a===null)return 1;if(b===null)return -1;
if(typeof a!==typeof b)return typeof a==='number'?-1:1;return a<b?-1:1}
document.querySelectorAll('table.sortable').forEach(function(t){var hs=t.tHead?t.tHead.rows[0].cells:[];
Array.prototype.forEach.call(hs,function(th,i){th.tabIndex=0;th.title='click to sort';function sort(){
var d=th.getAttribute('data-dir')==='asc'?'desc':'asc';Array.prototype.forEach.call(hs,function(h){h.removeAttribute('data-dir')});
th.setAttribute('data-dir',d);var b=t.tBodies[0],rows=Array.prototype.slice.call(b.rows);
rows.sort(function(x,y){var a=key(x.cells[i]),c=key(y.cells[i]);if(a===null||c===null)return cmp(a,c);
return d==='asc'?cmp(a,c):cmp(c,a)});rows.forEach(function(r){b.appendChild(r)})}
th.addEventListener('click',sort);th.addEventListener('keydown',function(e){if(e.key==='Enter')sort()})})})})();
"""


def esc(value: Any) -> str:
    """Any value as HTML text, quotes escaped (safe in element content and in attribute values)."""
    return html.escape("" if value is None else str(value), quote=True)


def asset_key(prefix: str, name: Any) -> str:
    """The key of an image in ReportAssets.images: its folder prefix ('', 'gallery/', 'gradcam/') and its
    base name (a name from a JSON file never points outside its folder)."""
    return prefix + str(name or "").replace("\\", "/").rsplit("/", 1)[-1]


def png_uri(data: bytes) -> str:
    """PNG bytes as a data: URI for an <img src>."""
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def percent(value: Any, digits: int = 2) -> str:
    """An accuracy in [0, 1] as a percentage text ('46.00'); '-' for None/NaN/non-numbers."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(float(value)):
        return "-"
    return f"{100 * float(value):.{digits}f}"


def number_attr(value: Any) -> str:
    """The exact value of a numeric cell for data-v (sorting, and tests that compare with results.json)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return ""
    return "" if math.isnan(float(value)) else repr(value)


def page(title: str, header: str, nav: list[tuple[str, str]], body: str) -> str:
    """The whole document: head (inline style), `header`, a table of contents, `body`, the sort script."""
    links = "".join(f'<a href="#{esc(anchor)}">{esc(label)}</a>' for anchor, label in nav)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body><main>\n{header}\n"
            f'<nav class="toc">{links}</nav>\n{body}\n</main>\n<script>{SORT_SCRIPT}</script>\n</body></html>\n')
