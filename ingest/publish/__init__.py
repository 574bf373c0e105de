"""Word out about the vault: the IDs, reports and manifests on OSF, and the day's mail."""
