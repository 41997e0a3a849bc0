"""The one small async Kubernetes client every component uses (only the API server touches the store)."""

from shim.client.api import ApiClient, ApiException, Resource
from shim.client.config import ClusterAccess, load_kubeconfig
from shim.client.informer import Informer

__all__ = ["ApiClient", "ApiException", "ClusterAccess", "Informer", "Resource", "load_kubeconfig"]
