"""Evaluation: the paper's transfer protocol, adaptive white-box attacks, sanity checks, reports.

Entry points (plain functions with explicit arguments; `defendr evaluate` and `defendr reproduce`
call them):

    subjects.load_eval_model(workspace, ref, device=, defense=None) -> EvalModel
    subjects.ensemble_of([EvalModel, ...]) -> EvalModel
    transfer.run_transfer(models, data_path, adv_paths, runtime=, cache_dir=, seed=, ...) -> dict
    adaptive.run_adaptive(models, data_path, runtime=, eps_values=, steps=, restarts=, eot=, subset=, ...) -> dict
    report.write_report(folder, name=, transfer=, adaptive=, settings=) -> ReportFiles

Modules: metrics (accuracy, per-class, confusion, 50% mixing), predictions (run once, cache),
tables (plain-data tables -> CSV / Markdown), sanity (pass/fail checks), plots (PNG figures).
"""
