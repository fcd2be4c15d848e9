"""Explanations: Grad-CAM with hooks held by a context manager (gradcam), paired clean/adversarial
runs (paired.run_gradcam) and PNG grids (figures)."""
