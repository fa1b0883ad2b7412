"""k8py's scheduler (kube-scheduler): a scheduling queue, a cache of nodes and assumed pods, a
plugin framework with profiles from a ``KubeSchedulerConfiguration``, and the in-tree plugins.
(Hollow nodes for scale work are the node agent's: :mod:`k8py.kubelet.hollow`.)

Run it in-process against any API server::

    from k8py.scheduler import Scheduler, load_config
    sched = Scheduler(client, load_config("scheduler.yaml"))   # config optional
    await sched.run(stop_event)
"""

from k8py.scheduler.config import (
    ConfigError,
    Profile,
    SchedulerConfiguration,
    default_config,
    load_config,
    parse_config,
)
from k8py.scheduler.scheduler import Scheduler, SchedulerMetrics

__all__ = [
    "ConfigError",
    "Profile",
    "Scheduler",
    "SchedulerConfiguration",
    "SchedulerMetrics",
    "default_config",
    "load_config",
    "parse_config",
]
