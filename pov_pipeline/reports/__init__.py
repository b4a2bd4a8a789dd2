"""Evaluation report: a self-contained HTML file and a Markdown headline (no Dagster import)."""

from pov_pipeline.reports.html import headline_markdown, render_report

__all__ = ["headline_markdown", "render_report"]
