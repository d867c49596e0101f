"""Poses from video: decoding, pose estimators, person tracking."""
