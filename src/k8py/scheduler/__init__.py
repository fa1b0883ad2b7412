"""k8py's scheduler (kube-scheduler): a scheduling queue, a cache of nodes and assumed pods, a
plugin framework with profiles from a ``KubeSchedulerConfiguration``, the in-tree plugins, and
hollow nodes for scale work.

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
from k8py.scheduler.hollow import FakeRuntime, HollowNodes, HollowNodeSpec, node_specs
from k8py.scheduler.scheduler import Scheduler, SchedulerMetrics

__all__ = [
    "ConfigError",
    "FakeRuntime",
    "HollowNodeSpec",
    "HollowNodes",
    "Profile",
    "Scheduler",
    "SchedulerConfiguration",
    "SchedulerMetrics",
    "default_config",
    "load_config",
    "node_specs",
    "parse_config",
]
