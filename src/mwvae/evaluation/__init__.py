"""Metrics and figures for trained models: `suite.evaluate` runs them all."""
