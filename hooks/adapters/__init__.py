"""The protocol adapters, on top: the Lambda handlers; the CodeDeploy hook (report exactly
once, by callback); Amazon ECS native lifecycle hooks (the verdict is the return value);
the Step Functions hand-off, shards and conclusion; the fail-safe.

May import: every folder but :mod:`hooks.cli`.
"""

__all__ = ["conclusion", "ecs", "failsafe", "handlers", "hook", "stepfunctions"]
