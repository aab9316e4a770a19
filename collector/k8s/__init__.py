"""Endpoint source from the Kubernetes API: pods, namespaces, services and nodes watched with informer
semantics, feeding the same EndpointCache the lab feeds."""

from collector.k8s.endpoint_source import KubernetesEndpointSource, KubernetesError, load_api_client
from collector.k8s.informer import Informer

__all__ = ["Informer", "KubernetesEndpointSource", "KubernetesError", "load_api_client"]
