"""What a run leaves behind: the JSON, JUnit and HTML reports and the evidence bundle in S3,
CloudWatch metrics, SNS notifications. Each is a reporter: its failure never changes a
verdict.

May import: :mod:`hooks.core`, :mod:`hooks.gate` (the run's summary).
"""

__all__ = ["html_report", "metrics", "notify", "reports"]
