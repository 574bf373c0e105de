"""The primary pulls the secondaries' minute files (rsync over ssh) and tracks reachability."""
