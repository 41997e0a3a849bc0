"""The served kinds, one strategy per kind: defaults, validation, admission, Table columns and printer, field
selectors, subresources, short names and categories (kube's `registry/<group>/<kind>/strategy.go` + printers).

Submodules are imported by name (`shim.apiserver.kinds.pods`, ...) and never from here, so that
`shim.apiserver.registry` can import `kinds.meta` without a cycle.
"""
