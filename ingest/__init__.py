"""Collect the X/Twitter API v2 sampled stream and build an hourly archive from it."""
