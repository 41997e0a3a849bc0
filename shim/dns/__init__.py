"""Cluster DNS: answers `<service>.<namespace>.svc.<domain>` and the rest of the Kubernetes DNS specification
from the shared informers' caches, forwards every other name to the host's resolvers, and keeps the
`kube-dns` Service pointing at itself."""

from shim.dns.component import ClusterDns, DnsConfig

__all__ = ["ClusterDns", "DnsConfig"]
