"""`render_html_report(results, assets) -> str`: one self-contained HTML page from a report's results.

`results` is the content of the report folder's results.json (a dict; {} for a folder without one,
such as a `gradcam` folder). `assets` holds what results.json does not: the PNGs to inline, the
gallery, the Grad-CAM details, the phenomena checks and the provenance lines. The function reads
no file and has no side effect, so a test can render any dict.

Sections, in the order a reader asks: summary cards, phenomena checks (reproduce), the paper's
tables, the adaptive evaluation and its checks, plots, the gallery, Grad-CAM, per-class accuracy,
protocol and provenance. A section without data is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defendr_cli.core.evaluation.html.media import gallery_section, gradcam_section, plots_section
from defendr_cli.core.evaluation.html.page import esc, page
from defendr_cli.core.evaluation.html.provenance import provenance_section
from defendr_cli.core.evaluation.html.sections import (adaptive_section, cards_section, paper_tables_section,
                                                       per_class_section, phenomena_section)
from defendr_cli.core.evaluation.html.summary import model_summaries, page_lede

NAV = [("summary", "Summary"), ("phenomena", "Phenomena"), ("paper-tables", "Tables 1-6"),
       ("adaptive", "Adaptive"), ("plots", "Plots"), ("gallery", "Gallery"), ("gradcam", "Grad-CAM"),
       ("per-class", "Per class"), ("provenance", "Provenance")]


@dataclass
class ReportAssets:
    """Everything beside results.json that the page shows.

    images: PNG bytes by path relative to the report folder; gallery: gallery/gallery.json's content;
    gradcams: (folder prefix of its figures, e.g. 'gradcam/' or '', gradcam.json's content);
    phenomena: phenomena.json's checks; provenance: {'command', 'overrides', 'versions', 'rendered'};
    extra_tables: table dicts (results.json's form) shown after the paper's tables.
    """

    images: dict[str, bytes] = field(default_factory=dict)
    gallery: dict | None = None
    gradcams: list[tuple[str, dict]] = field(default_factory=list)
    phenomena: list[dict] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    extra_tables: list[dict] = field(default_factory=list)


def _title(results: dict, assets: ReportAssets) -> str:
    if results.get("name"):
        return f"Defendr report: {results['name']}"
    if assets.gradcams:
        details = assets.gradcams[0][1]
        return f"Defendr Grad-CAM: {details.get('model')} on {details.get('adv_set')}"
    return "Defendr report"


def _header(results: dict, title: str, lede: str) -> str:
    data = (results.get("transfer") or {}).get("data") or {}
    facts = []
    if data:
        facts.append(f"clean cache {Path(str(data.get('path', ''))).name} ({data.get('num_classes')} classes, "
                     f"{data.get('test_count')} test images, {data.get('image_size')} px)")
    if results.get("created"):
        facts.append(f"created {results['created']}")
    line = f'<p class="muted small">{esc(" · ".join(facts))}</p>' if facts else ""
    return f"<header><h1>{esc(title)}</h1>{line}<p class=\"lede\">{esc(lede)}</p></header>"


def render_html_report(results: dict, assets: ReportAssets | None = None) -> str:
    """The whole page (a str, UTF-8 when written); every string from `results` and `assets` is escaped."""
    assets = assets or ReportAssets()
    summaries = model_summaries(results)
    title = _title(results, assets)
    lede = page_lede(summaries) if summaries else ""
    sections = {
        "summary": cards_section(summaries),
        "phenomena": phenomena_section(assets.phenomena),
        "paper-tables": paper_tables_section(results, assets.extra_tables),
        "adaptive": adaptive_section(results),
        "plots": plots_section(results, assets.images),
        "gallery": gallery_section(assets.gallery, assets.images),
        "gradcam": gradcam_section(assets.gradcams, assets.images),
        "per-class": per_class_section(results),
        "provenance": provenance_section(results, assets.provenance),
    }
    nav = [(anchor, label) for anchor, label in NAV if sections[anchor]]
    body = "\n".join(html for html in sections.values() if html)
    return page(title, _header(results, title, lede), nav, body)
