"""Test helpers for report.html: read its tables with html.parser, and open it in headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]

# Injected at the top of <head> of a copy of the page: records script errors and console.error calls,
# then after load checks that every image decoded and that clicking a header sorts, and writes a
# JSON marker into the DOM that --dump-dom prints.
HARNESS = """<script>
window.__errors = [];
window.addEventListener('error', function (e) { window.__errors.push(String(e.message || e.type)); }, true);
(function () { var original = console.error; console.error = function () {
  window.__errors.push(Array.prototype.join.call(arguments, ' ')); original.apply(console, arguments); }; })();
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  var sorted = null, table = document.getElementById('adaptive-suite');
  if (table) {
    var th = table.tHead.rows[0].cells[0]; th.click(); th.click();
    sorted = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[0].textContent; });
  }
  var marker = document.createElement('pre'); marker.id = 'harness-result';
  marker.textContent = JSON.stringify({errors: window.__errors, images: images.length, broken: broken,
                                       sorted: sorted, arrow: th ? th.getAttribute('data-dir') : null});
  document.body.appendChild(marker);
});
</script>"""


class TableReader(HTMLParser):
    """tables[id] = {'columns': [header texts], 'rows': [[(text, data-v or None), ...], ...]}."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, dict] = {}
        self.current: dict | None = None
        self.cell: list | None = None
        self.images: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag in ("a", "link", "script") and (attrs.get("href") or attrs.get("src")):
            self.links.append(attrs.get("href") or attrs.get("src"))
        if tag == "table":
            self.current = {"columns": [], "rows": []}
            self.tables[attrs.get("id", f"table{len(self.tables)}")] = self.current
        elif tag == "tr" and self.current is not None:
            self.current["rows"].append([])
        elif tag in ("td", "th") and self.current is not None:
            self.cell = [tag, "", attrs.get("data-v")]

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1] += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.current is not None:
            kind, text, value = self.cell
            if kind == "th":
                self.current["columns"].append(text.strip())
            else:
                self.current["rows"][-1].append((text.strip(), value))
            self.cell = None
        elif tag == "table":
            self.current = None


def read_tables(page: str) -> TableReader:
    reader = TableReader()
    reader.feed(page)
    for table in reader.tables.values():
        table["rows"] = [r for r in table["rows"] if r]  # the header row has no <td>
    return reader


def find_browser() -> str | None:
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def run_browser(browser: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout)


def probe_page(browser: str, page: Path, work: Path) -> dict:
    """Load a copy of `page` with HARNESS injected; return the harness's JSON (errors, images, broken, sorted)."""
    text = page.read_text(encoding="utf-8")
    copy = work / "probe.html"
    copy.write_text(text.replace("<head>", "<head>" + HARNESS, 1), encoding="utf-8")
    done = run_browser(browser, "--virtual-time-budget=10000", "--dump-dom", copy.resolve().as_uri())
    start = done.stdout.find('<pre id="harness-result">')
    if start < 0:
        raise AssertionError(f"the harness wrote no result; browser stderr: {done.stderr[-2000:]}")
    body = done.stdout[start + len('<pre id="harness-result">'):]
    return json.loads(_unescape(body[: body.index("</pre>")]))


def _unescape(text: str) -> str:
    return text.replace("&quot;", '"').replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
