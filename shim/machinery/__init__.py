"""Shared API machinery (kube's apimachinery): selectors, quantities, resource identifiers, time formats.

Imported by the API server and every component alike; it imports nothing from `shim.apiserver`,
`shim.kubelet` or `aiohttp.web`, so a component never loads the server to parse a selector.
"""
