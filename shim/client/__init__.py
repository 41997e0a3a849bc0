"""The one small async Kubernetes client every component uses (only the API server touches the store)."""

from shim.client.api import ApiClient, ApiException, Resource
from shim.client.config import ClusterAccess, load_kubeconfig
from shim.client.indexer import object_key
from shim.client.informer import SharedInformer
from shim.client.informers import SharedInformerFactory

__all__ = [
    "ApiClient",
    "ApiException",
    "ClusterAccess",
    "Resource",
    "SharedInformer",
    "SharedInformerFactory",
    "load_kubeconfig",
    "object_key",
]
