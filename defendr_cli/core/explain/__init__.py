"""Explanations: Grad-CAM with hooks held by a context manager (gradcam), paired clean/adversarial
runs (paired.gradcam_pairs) and PNG grids (figures)."""
