"""Contracts between gridgov's services: the events one service publishes and others obey.

A producer's declarations live here when another part of the platform must
rely on them without importing the producer (the kit, for one, obeys
identity's account events in every service). A module per producer; the
producer's own ``events.py`` re-exports it.
"""
