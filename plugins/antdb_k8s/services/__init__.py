"""Services: the one layer that combines hook calls into cluster facts and actions.

Operators, sensors and the UI call these; only `hooks` talk to Kubernetes or AntDB, and
only `core` decides. Nothing here imports a hook module at import time, so a DAG file
that imports an operator never loads the Kubernetes or PostgreSQL client.
"""
