"""Controllers: each reconciles desired vs actual state through the API, like kube-controller-manager's."""
