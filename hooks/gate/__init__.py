"""The gate, in the order a run takes it: the plan (:mod:`.plan`), the target each event
tests (:mod:`.targets`), the run in workers (:mod:`.evaluate`), the verdict
(:mod:`.decision`); :mod:`.summary` holds the run's state and collaborators.

May import: :mod:`hooks.core`, :mod:`hooks.aws`, :mod:`hooks.process`, :mod:`hooks.suites`
(the registry's catalog only: suite code runs in workers).
"""

__all__ = ["decision", "evaluate", "plan", "summary", "targets"]
