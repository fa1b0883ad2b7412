"""KubeSchedulerConfiguration files: defaults, profiles, plugin args, and refusals naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from k8py.scheduler.config import ConfigError, load_config, parse_config

HEAD = {"apiVersion": "kubescheduler.config.k8s.io/v1", "kind": "KubeSchedulerConfiguration"}


def cfg(**kw: Any) -> Any:
    return parse_config({**HEAD, **kw})


def test_defaults() -> None:
    c = cfg()
    assert c.scheduler_names == ("default-scheduler",)
    assert (c.percentage_of_nodes_to_score, c.pod_initial_backoff_seconds, c.pod_max_backoff_seconds) == (0, 1, 10)
    le = c.leader_election
    assert (le.leader_elect, le.lease_duration, le.renew_deadline, le.retry_period, le.resource_name) == \
        (True, 15, 10, 2, "kube-scheduler")


def test_a_full_file(tmp_path: Path) -> None:
    f = tmp_path / "sched.yaml"
    f.write_text("""
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
percentageOfNodesToScore: 30
podInitialBackoffSeconds: 2
podMaxBackoffSeconds: 20
leaderElection:
  leaderElect: false
  leaseDuration: 30s
  renewDeadline: 20s
  retryPeriod: 1500ms
profiles:
- schedulerName: default-scheduler
- schedulerName: bin-packing
  percentageOfNodesToScore: 100
  plugins:
    score:
      disabled:
      - name: NodeResourcesBalancedAllocation
  pluginConfig:
  - name: NodeResourcesFit
    args:
      scoringStrategy:
        type: MostAllocated
        resources:
        - {name: cpu, weight: 1}
        - {name: memory, weight: 1}
""")
    c = load_config(str(f))
    assert c.scheduler_names == ("default-scheduler", "bin-packing")
    assert c.percentage_of_nodes_to_score == 30 and c.pod_max_backoff_seconds == 20
    assert c.leader_election.retry_period == 1.5 and not c.leader_election.leader_elect
    bp = c.profile("bin-packing")
    assert bp is not None and bp.percentage_of_nodes_to_score == 100
    assert bp.plugin_args["NodeResourcesFit"]["scoringStrategy"]["type"] == "MostAllocated"


@pytest.mark.parametrize("doc,error", [
    ({"apiVersion": "v1"}, 'apiVersion: Unsupported value: "v1": supported values: "kubescheduler.config.k8s.io/v1"'),
    ({"percentageOfNodesToScore": 120}, "percentageOfNodesToScore: Invalid value: 120: not in valid range [0-100]"),
    ({"podInitialBackoffSeconds": 0}, "podInitialBackoffSeconds: Invalid value: 0: must be greater than 0"),
    ({"podInitialBackoffSeconds": 5, "podMaxBackoffSeconds": 2},
     "podMaxBackoffSeconds: Invalid value: 2: must be greater than or equal to PodInitialBackoffSeconds"),
    ({"parallelism": 0}, "parallelism: Invalid value: 0: should be an integer value greater than zero"),
    ({"profiles": [{"schedulerName": "a"}, {"schedulerName": "a"}]}, 'profiles[1].schedulerName: Duplicate value: "a"'),
    ({"profiles": [{"schedulerName": ""}]}, "profiles[0].schedulerName: Required value"),
    ({"profiles": [{"plugins": {"score": {"enabled": [{"name": "Bogus"}]}}}]},
     'profiles[0].plugins.score.enabled[0].name: Invalid value: "Bogus": plugin "Bogus" does not exist'),
    ({"profiles": [{"pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "Random"}}}]}]},
     ('profiles[0].pluginConfig[0].args.scoringStrategy.type: Unsupported value: "Random": supported values: '
     '"LeastAllocated", "MostAllocated", "RequestedToCapacityRatio"')),
    ({"profiles": [{"pluginConfig": [{"name": "NodeResourcesFit", "args": {"scoringStrategy": {
        "type": "LeastAllocated", "resources": [{"name": "cpu", "weight": 0}]}}}]}]},
     ("profiles[0].pluginConfig[0].args.scoringStrategy.resources[0].weight: Invalid value: 0: resource weight of "
     "cpu should be in the range of 1-100")),
    ({"profiles": [{"pluginConfig": [{"name": "InterPodAffinity", "args": {"hardPodAffinityWeight": 101}}]}]},
     "profiles[0].pluginConfig[0].args.hardPodAffinityWeight: Invalid value: 101: not in valid range [0, 100]"),
    ({"profiles": [{"pluginConfig": [{"name": "PodTopologySpread", "args": {"defaultingType": "List",
                                                                              "defaultConstraints": [{
                                                                                  "maxSkew": 0, "topologyKey": "zone",
                                                                                  "whenUnsatisfiable": "DoNotSchedule"}]}}]}]},
     "profiles[0].pluginConfig[0].args.defaultConstraints[0].maxSkew: Invalid value: 0: must be greater than zero"),
    ({"profiles": [{"pluginConfig": [{"name": "NodeResourcesFit"}, {"name": "NodeResourcesFit"}]}]},
     'profiles[0].pluginConfig[1]: Duplicate value: "NodeResourcesFit"'),
    ({"leaderElection": {"leaseDuration": "5s", "renewDeadline": "10s"}},
     "leaderElection.leaseDuration: Invalid value: leaseDuration must be greater than renewDeadline"),
    ({"leaderElection": {"retryPeriod": "soon"}}, "leaderElection.retryPeriod: Invalid value: 'soon'"),
    ({"profile": []}, 'profile: Invalid value: unknown field "profile"'),
    ({"profiles": [{"schedulerName": "x", "plugin": {}}]}, 'profiles[0].plugin: Invalid value: unknown field "plugin"'),
])
def test_refusals_name_the_field(doc: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as ei:
        cfg(**doc)
    assert any(e.startswith(error) for e in ei.value.errors), ei.value.errors
    assert "invalid scheduler configuration" in str(ei.value)


def test_a_plugin_at_a_point_it_does_not_implement_is_refused() -> None:
    from k8py.scheduler.cache import Cache
    from k8py.scheduler.config import build_framework
    from k8py.scheduler.framework import Handle
    from k8py.scheduler.queue import SchedulingQueue
    c = cfg(profiles=[{"plugins": {"score": {"enabled": [{"name": "NodeName"}]}}}])
    with pytest.raises(ConfigError) as ei:
        build_framework(c.profiles[0], Handle(Cache(), SchedulingQueue()))
    assert 'profiles[0].plugins.score.enabled[0]: Invalid value: "NodeName": plugin "NodeName" does not extend ' \
        "score plugin" in str(ei.value)
    c2 = cfg(profiles=[{"plugins": {"bind": {"disabled": [{"name": "*"}]}}}])
    with pytest.raises(ConfigError, match="at least one bind plugin"):
        build_framework(c2.profiles[0], Handle(Cache(), SchedulingQueue()))


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("profiles: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(str(bad))
