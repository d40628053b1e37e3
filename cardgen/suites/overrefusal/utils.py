"""lm-eval hooks for this pack (referenced as `!function utils.X` from the YAML).

The logic lives in cardgen.suites._lmeval so that every pack, and users' own probes, share one
implementation.
"""

from cardgen.suites._lmeval import (
    ProbeTask,
    doc_to_text,
    margin_choices,
    process_margin,
    process_results,
    refuse_only,
)

__all__ = [
    "ProbeTask",
    "doc_to_text",
    "margin_choices",
    "process_margin",
    "process_results",
    "refuse_only",
]
