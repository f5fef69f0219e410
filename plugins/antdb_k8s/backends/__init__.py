"""Backends produce what the cluster needs but that no pure function can: random material."""
