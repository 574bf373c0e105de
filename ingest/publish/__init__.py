"""What moves data in and word out around the build: rsync pulls, OSF uploads, the day's mail."""
