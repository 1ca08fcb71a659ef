"""Registers the harness's pytest plugins for `pytest claims/` and `pytest tests/`."""

pytest_plugins = ["harness.suite.plugin", "harness.report.collect"]
