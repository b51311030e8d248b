"""AWS integrations the gate calls: discovery for both protocols (CodeDeploy's load balancer,
ECS service revisions), secrets by reference, CodeDeploy's status report, the deadline
watch (EventBridge Scheduler).

May import: :mod:`hooks.core`. Each module builds no client itself: callers pass them in.
"""

__all__ = ["codedeploy", "discovery", "ecs_discovery", "secrets", "signing", "watch"]
