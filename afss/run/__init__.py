"""One command end to end: a YAML config (`afss.run.config`) and the runner (`afss.run.runner`).

Example:
    >>> from afss.run import load_config, run_pipeline
    >>> result = run_pipeline(load_config("demo"), "runs/demo")  # doctest: +SKIP
    >>> print(result.table)  # doctest: +SKIP
"""

from afss.run.config import RunConfig, default_yaml, load_config
from afss.run.runner import RunResult, run_pipeline

__all__ = ["RunConfig", "RunResult", "default_yaml", "load_config", "run_pipeline"]
