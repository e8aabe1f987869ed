"""Values overlays that switch on every optional path of the chart, for render tests."""

from __future__ import annotations

from typing import Any

EVERYTHING_ON: dict[str, Any] = {
    "imagePullSecrets": ["registry-credentials"],
    "gateway": {
        "routing": {"fallbackNamedModels": True},
        "batchApi": {"enabled": True},
        "probes": {"readyCapabilities": ["text", "vision"]},
    },
    "serving": {"huggingface": {"tokenSecret": {"name": "hf-token"}}},
    "redis": {"auth": {"existingSecret": "redis-auth"}},
    "observability": {
        "otel": {"endpoint": "http://otel-collector.observability.svc:4318"},
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus"}},
        "podMonitor": {"enabled": True},
        "prometheusRule": {"enabled": True},
        "grafanaDashboards": {"enabled": True},
    },
    "networkPolicy": {
        "gatewayIngressFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}
        ],
        "metricsFrom": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
        ],
    },
}

# name -> values overlay; each renders a valid manifest set.
SCENARIOS: dict[str, dict[str, Any]] = {
    "everything-on": EVERYTHING_ON,
    "redis-external-url": {
        "redis": {"mode": "external", "external": {"url": "redis://10.0.0.3:6379/0"}}
    },
    "redis-external-secret": {
        "redis": {"mode": "external", "external": {"urlSecret": {"name": "memorystore-url"}}}
    },
    "redis-ephemeral": {"redis": {"persistence": {"enabled": False}}},
    "model-cache-pvc": {
        "serving": {"modelCache": {"type": "pvc", "existingClaim": "gemma-weights"}}
    },
    "model-cache-emptydir": {"serving": {"modelCache": {"type": "emptyDir"}}},
    "no-autoscaling": {
        "gateway": {"autoscaling": {"enabled": False}},
        "serving": {"autoscaler": {"enabled": False}},
    },
    "gateway-only": {
        "serving": {"enabled": False},
        "gateway": {"upstreamUrl": "http://ray-serve.other.svc:8000"},
    },
    "no-network-policy": {"networkPolicy": {"enabled": False}},
    "batch-api-existing-claim": {
        "gateway": {"batchApi": {"enabled": True, "files": {"existingClaim": "batch-files"}}}
    },
    "batch-api-gateway-only": {
        "serving": {"enabled": False},
        "gateway": {
            "upstreamUrl": "http://ray-serve.other.svc:8000",
            "batchApi": {
                "enabled": True,
                "rayAddress": "ray://ray-head.other.svc:10001",
                "serveApp": "gemma",
                "image": {"repository": "registry.example/gemma-serving/ray-worker"},
            },
        },
    },
}
