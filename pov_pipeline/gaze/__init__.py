"""Gaze processing: screen geometry, preprocessing, event detection, quality, AOIs and transitions.

The modules are imported individually (``from pov_pipeline.gaze import detection``) so that each
stays light and independent; this package file deliberately imports nothing.
"""
