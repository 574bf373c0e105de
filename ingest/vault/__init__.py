"""The vault's integrity: day manifests, copies on replicas, scrub and restore."""
