"""mt: train, evaluate and compare neural machine translation models."""
