"""PDF signing: layout of the first revision, deferred signing and backends.

Knows pyHanko; never imports Flask or the ORM.
"""
