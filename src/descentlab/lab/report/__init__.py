"""The report: a self-contained HTML page plus CSV/JSON, rendered from the store."""

from descentlab.lab.report.page import write_report

__all__ = ["write_report"]
