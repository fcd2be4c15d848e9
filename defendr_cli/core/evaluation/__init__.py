"""Evaluation: the paper's transfer protocol, adaptive white-box attacks, sanity checks, reports.

Entry points (plain functions with explicit arguments; core/stages/evaluate.py calls them):

    subjects.load_eval_model(workspace, ref, device=, defense=None) -> EvalModel
    subjects.ensemble_of([EvalModel, ...]) -> EvalModel
    transfer.run_transfer(models, data_path, adv_paths, runtime=, cache_dir=, seed=, ...) -> TransferResult
    adaptive_suite.run_adaptive_suite(models, data_path, runtime=, eps_values=, plan=SuitePlan(...), ...) -> AdaptiveResult
    report.write_report(folder, name=, transfer=, adaptive=, settings=) -> ReportFiles

Modules: metrics (accuracy, per-class, confusion, 50% mixing), predictions (run once, cache),
tables (plain-data tables -> CSV / Markdown), sanity and suite_checks (pass/warn/fail checks), masking
(gradient-masking checks), suite (the AutoAttack-style cascade), ensemble_attack (the members'-loss
route), adaptive_partial (per-model results saved for --resume), plots (PNG figures).
"""
