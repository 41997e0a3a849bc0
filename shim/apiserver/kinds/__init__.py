"""The served kinds: defaulting, validation and create/update preparation, one strategy per kind.

Submodules are imported by name (`shim.apiserver.kinds.pods`, ...) and never from here, so that
`shim.apiserver.registry` can import `kinds.meta` without a cycle.
"""
