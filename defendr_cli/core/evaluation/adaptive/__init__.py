"""The adaptive white-box evaluation: an attack suite through the whole defense, per model and eps."""
