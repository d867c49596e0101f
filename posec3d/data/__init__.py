"""Annotation files, pipeline transforms, heatmaps (numpy and torch), datasets and samplers."""
