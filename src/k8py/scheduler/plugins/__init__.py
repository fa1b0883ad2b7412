"""The in-tree plugins: one module per plugin, each with ``NAME`` and a ``new(args, handle)``
factory. :data:`REGISTRY` maps names to factories; :data:`VALIDATORS` maps names to their
args validators (``validate_args(args, path) -> list[str]`` of field errors)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from k8py.scheduler.framework import PluginFactory
from k8py.scheduler.plugins import (
    balancedallocation,
    defaultbinder,
    defaultpreemption,
    imagelocality,
    interpodaffinity,
    nodeaffinity,
    nodename,
    nodeports,
    noderesourcesfit,
    nodeunschedulable,
    podtopologyspread,
    prioritysort,
    schedulinggates,
    tainttoleration,
    volumebinding,
    volumerestrictions,
    volumezone,
)

__all__ = ["REGISTRY", "VALIDATORS"]

REGISTRY: dict[str, PluginFactory] = {
    schedulinggates.NAME: schedulinggates.new,
    prioritysort.NAME: prioritysort.new,
    nodeunschedulable.NAME: nodeunschedulable.new,
    nodename.NAME: nodename.new,
    tainttoleration.NAME: tainttoleration.new,
    nodeaffinity.NAME: nodeaffinity.new,
    nodeports.NAME: nodeports.new,
    noderesourcesfit.NAME: noderesourcesfit.new,
    volumerestrictions.NAME: volumerestrictions.new,
    volumebinding.NAME: volumebinding.new,
    volumezone.NAME: volumezone.new,
    podtopologyspread.NAME: podtopologyspread.new,
    interpodaffinity.NAME: interpodaffinity.new,
    defaultpreemption.NAME: defaultpreemption.new,
    balancedallocation.NAME: balancedallocation.new,
    imagelocality.NAME: imagelocality.new,
    defaultbinder.NAME: defaultbinder.new,
}

VALIDATORS: dict[str, Callable[[Mapping[str, Any], str], list[str]]] = {
    noderesourcesfit.NAME: noderesourcesfit.validate_args,
    podtopologyspread.NAME: podtopologyspread.validate_args,
    interpodaffinity.NAME: interpodaffinity.validate_args,
    defaultpreemption.NAME: defaultpreemption.validate_args,
    volumebinding.NAME: volumebinding.validate_args,
}
