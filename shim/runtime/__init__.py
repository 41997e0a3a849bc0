"""Container runtimes behind one interface (`base.Runtime`): Podman for real pods, a fake for scale tests."""
