"""Evaluation: the paper's transfer protocol, the adaptive white-box suite, its sanity checks, reports.

Entry points (plain functions with explicit arguments; core/stages/evaluate.py calls them):

    subjects.load_eval_model(workspace, ref, device=, defense=None) -> EvalModel
    subjects.ensemble_of([EvalModel, ...]) -> EvalModel
    transfer.run.run_transfer(models, data_path, adv_paths, runtime=, cache_dir=, seed=, ...) -> TransferResult
    adaptive.run.run_adaptive_suite(models, data_path, AdaptiveConfig(eps_values=, plan=SuitePlan(...)), runtime=)
        -> AdaptiveResult
    report.folder.write_report(folder, name=, transfer=, adaptive=, settings=) -> ReportFiles

Layout, one concept per module:

    subjects, selection      what is evaluated (models, defenses, ensembles; which sets)
    predictions, sharded     a model's predictions over a split, cached on disk; split over ranks
    metrics                  accuracy, per-class, confusion, the 50% mixing
    jsonable                 result values as plain JSON
    checks                   the one Check type and the sanity/masking table (`model_checks`)
    transfer/                inputs (sets and models checked, cache keys), run, results
    adaptive/                plan (suites, SuitePlan), seeds (SeedPlan), eps, subset, cascade
                             (AutoAttack-style), ensemble_route (members' loss), pgd_sweep,
                             partial (rows saved for --resume), run, results
    report/                  table (Table), transfer_tables, adaptive_tables, plots, figures,
                             markdown, folder (results.json, CSVs, PNGs, report.md)
"""
