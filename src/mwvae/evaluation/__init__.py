"""Metrics and figures for trained models."""
