"""Validation of the estimators against known truths (Monte Carlo on the lean DGP)."""
