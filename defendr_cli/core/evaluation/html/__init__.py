"""report.html: one self-contained page per report folder (evaluate, gradcam, reproduce).

    render_html_report(results, assets) -> str    pure: results.json's dict + ReportAssets -> HTML
    write_html_report(folder, command=...) -> Path  reads the folder, writes folder/report.html atomically
    write_gallery(folder, models, data_path, adv_path, runtime) -> Path | None
                                                   gallery/ images + gallery.json for the page
"""
