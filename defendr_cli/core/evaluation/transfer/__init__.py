"""The paper's transfer protocol: cached adversarial test sets against every model."""
