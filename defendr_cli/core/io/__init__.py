"""Files on disk: HDF5 helpers, clean caches, adversarial sets, checkpoint payloads, the artefact catalog."""
