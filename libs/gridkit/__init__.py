"""gridkit: the plumbing every gridgov service shares.

One way to do each thing: configuration, the web app, the database and its
migrations, events with their outbox and inbox, the bus, auth and metrics.
"""
