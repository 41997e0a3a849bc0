"""The service proxy (kube-proxy's role): programs nftables so Services reach their ready endpoints.

`rules` compiles Services, EndpointSlices and the node into one nftables ruleset (pure functions); `kernel`
applies it atomically and keeps the service ranges local; `proxy` runs it on the shared informers.
"""
