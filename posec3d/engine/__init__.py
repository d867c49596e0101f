"""Configs, the training loop, evaluation and metrics, distributed setup, logging and plots."""
