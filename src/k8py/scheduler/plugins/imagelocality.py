"""ImageLocality: prefer nodes that already have the pod's images, weighted by image size and by
how widely the image is spread (an image on every node gives no node an edge)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from k8py.scheduler.framework import CycleState, Handle
from k8py.scheduler.nodeinfo import NodeInfo
from k8py.scheduler.types import MAX_NODE_SCORE, SKIP, PodInfo, Status

NAME = "ImageLocality"
MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


def calculate_priority(sum_scores: int, num_containers: int) -> int:
    max_threshold = MAX_CONTAINER_THRESHOLD * num_containers
    if sum_scores < MIN_THRESHOLD:
        sum_scores = MIN_THRESHOLD
    elif sum_scores > max_threshold:
        sum_scores = max_threshold
    return MAX_NODE_SCORE * (sum_scores - MIN_THRESHOLD) // (max_threshold - MIN_THRESHOLD)


class ImageLocality:
    NAME = NAME

    def __init__(self, args: Mapping[str, Any], handle: Handle) -> None:
        self.handle = handle

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        image_nodes = self.handle.cache.image_nodes
        if not pod.images or not any(img in image_nodes for img in pod.images):
            return SKIP  # no node has any of the images: every node scores the same
        return None

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
        cache = self.handle.cache
        total = cache.node_count or 1
        image_nodes = cache.image_nodes
        n_containers = len(pod.images)
        out = []
        for ni in nodes:
            s = 0
            images = ni.images
            if images:
                for img in pod.images:
                    size = images.get(img)
                    if size:
                        s += int(size * (image_nodes.get(img, 0) / total))
            out.append(calculate_priority(s, n_containers))
        return out

    def score(self, state: CycleState, pod: PodInfo, ni: NodeInfo) -> int:
        return self.score_nodes(state, pod, [ni])[0]


def new(args: Mapping[str, Any], handle: Handle) -> ImageLocality:
    return ImageLocality(args, handle)
