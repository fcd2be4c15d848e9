"""The report's image sections: accuracy-vs-eps plots, the gallery of adversarial test images and
the Grad-CAM pairs. Images come as PNG bytes keyed by their path in the report folder
('accuracy-vs-eps.png', 'gallery/row12-clean.png', 'gradcam/gradcam-dunet.png') and are inlined
as data: URIs; a missing image is named in the text instead of drawn broken.
"""

from __future__ import annotations

from defendr_cli.core.evaluation.html.page import asset_key, esc, png_uri
from defendr_cli.core.evaluation.html.sections import section

FIGURE_CAPTIONS = {
    "accuracy-vs-eps.png": "Accuracy vs eps, transfer protocol (eps 0 = clean).",
    "adaptive-accuracy-vs-eps.png": "Accuracy vs eps, adaptive evaluation (robust: worst case per image).",
    "adaptive-vs-transfer.png": "Transfer vs adaptive accuracy at the same eps.",
    "confusion.png": "Figure 15. Predictions on clean images (rows) vs on their adversarial copies (columns).",
}


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def image(images: dict[str, bytes], key: str, alt: str) -> str:
    """An <img> with the PNG inlined (its pixel size as width/height), or a visible note naming the missing file."""
    data = images.get(key)
    if data is None:
        return f'<span class="badge warn">missing image {esc(key)}</span>'
    width, height = png_size(data)
    return f'<img src="{png_uri(data)}" width="{width}" height="{height}" alt="{esc(alt)}">'


def plots_section(results: dict, images: dict[str, bytes]) -> str:
    """Every figure of results.json's 'figures', accuracy-vs-eps plots first."""
    names = list(results.get("figures") or [])
    names.sort(key=lambda n: (n == "confusion.png", list(FIGURE_CAPTIONS).index(n) if n in FIGURE_CAPTIONS else 9))
    if not names:
        return ""
    figures = []
    for name in names:
        key = asset_key("", name)
        width, height = png_size(images[key]) if key in images else (1, 1)
        wide = ' class="wide"' if width > 1.6 * height else ""
        figures.append(f"<figure{wide}>{image(images, key, FIGURE_CAPTIONS.get(name, name))}"
                       f"<figcaption>{esc(FIGURE_CAPTIONS.get(name, name))}</figcaption></figure>")
    return section("plots", "Accuracy vs eps and other plots", '<div class="figs">' + "\n".join(figures) + "</div>")


def _mark(pred: str, true: str) -> str:
    ok = pred == true
    return f'<span class="{"ok" if ok else "bad"}">{"&#10003;" if ok else "&#10007;"}</span> {esc(pred)}'


def _shot(gallery: dict, index: int, entry: dict, images: dict[str, bytes]) -> str:
    true = str(entry.get("true", ""))
    cells = "".join(f"<div>{image(images, asset_key('gallery/', entry.get(kind)), label)}{esc(label)}</div>"
                    for kind, label in (("clean", "clean"), ("adv", "adversarial"),
                                        ("perturbation", "perturbation, amplified")))
    rows = []
    for model in gallery.get("models") or []:
        clean, adv = model["clean_pred"][index], model["adv_pred"][index]
        rows.append(f"<tr><td>{esc(model['name'])}</td><td>{_mark(clean, true)}</td><td>{_mark(adv, true)}</td></tr>")
    scale = entry.get("perturbation_max")
    scale_text = f" · max |adv − clean| = {255 * scale:.1f}/255" if isinstance(scale, (int, float)) else ""
    return (f'<div class="shot"><div class="pics"><div class="triple">{cells}</div><p class="small"><b>true: '
            f'{esc(true)}</b><br>test row {esc(entry.get("row"))}{esc(scale_text)}</p></div>'
            '<div class="scroll"><table><thead><tr><th>model</th><th>prediction on clean</th>'
            "<th>on adversarial</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table></div></div>")


def gallery_section(gallery: dict | None, images: dict[str, bytes]) -> str:
    """A few test images of the primary cached set: clean, adversarial, amplified perturbation, and what
    every model predicts on each (gallery/gallery.json, written by the evaluate stage)."""
    if not gallery or not gallery.get("images"):
        return ""
    shots = "\n".join(_shot(gallery, i, entry, images) for i, entry in enumerate(gallery["images"]))
    intro = (f"Test images of <code>{esc(gallery.get('set'))}</code> ({esc(gallery.get('attack'))}, eps "
             f"{esc(gallery.get('eps_label'))}, made on <code>{esc(gallery.get('source_model'))}</code>): the images "
             "most models get right when clean and wrong when attacked come first. The perturbation is stretched "
             "to the full range (grey = unchanged). These are the transfer protocol's images; the adaptive "
             "attacks make their own per model.")
    return section("gallery", "What the adversarial images look like", f'<div class="gallery">{shots}</div>', intro)


def _gradcam_block(details: dict, base: str, images: dict[str, bytes]) -> str:
    parts = [f"<h3>{esc(details.get('model'))} on {esc(details.get('adv_set'))}</h3>",
             f'<p class="small muted">{esc(details.get("count"))} images ({esc(details.get("fooled_available"))} '
             f"correct-then-fooled available, selection '{esc(details.get('select'))}'). Columns: clean image, "
             "its heat map, the adversarial image, its heat map, and their difference (adversarial minus clean; "
             "red: more attention under attack).</p>"]
    for target in details.get("targets") or []:
        key = asset_key(base, target.get("figure"))
        caption = (f"Grad-CAM {target.get('label')}: mean |difference| of the maps "
                   f"{float(target.get('mean_abs_difference', 0.0)):.3f} (maps in [0, 1])")
        parts.append(f"<figure>{image(images, key, caption)}<figcaption>{esc(caption)}</figcaption></figure>")
        parts.append(_predictions_table(details, target))
    return "\n".join(parts)


def _predictions_table(details: dict, target: dict) -> str:
    """Test row, true class and the predictions on the clean and adversarial image (names in full)."""
    rows, true = details.get("rows") or [], details.get("true") or []
    clean, adv = target.get("clean_pred") or [], target.get("adv_pred") or []
    lines = [f"<tr><td class=\"num\">{esc(r)}</td><td>{esc(t)}</td><td>{_mark(str(c), str(t))}</td>"
             f"<td>{_mark(str(a), str(t))}</td></tr>" for r, t, c, a in zip(rows, true, clean, adv)]
    if not lines:
        return ""
    return ('<div class="scroll"><table><thead><tr><th>Test row</th><th>True class</th><th>On clean</th>'
            "<th>On adversarial</th></tr></thead><tbody>" + "".join(lines) + "</tbody></table></div>")


def gradcam_section(gradcams: list[tuple[str, dict]], images: dict[str, bytes]) -> str:
    """Grad-CAM pairs: (folder prefix inside the report, e.g. 'gradcam/' or '', gradcam.json content)."""
    if not gradcams:
        return ""
    body = "\n".join(_gradcam_block(details, base, images) for base, details in gradcams)
    return section("gradcam", "Where the model looks: Grad-CAM, clean vs adversarial", body,
                   "The paper's Figures 12-14: images the model got right and the attack fooled come first.")
