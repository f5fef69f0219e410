"""Registers the run-note listener with Airflow.

Plugins are discovered by file, and plugins/.airflowignore keeps discovery out of antdb_k8s/
(see there why), so the registration lives here, beside the package, and imports from it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from antdb_k8s.listeners.run_notes import RunNotes


class AntDBRunNotesPlugin(AirflowPlugin):
    name = "antdb_run_notes"
    listeners = [RunNotes()]
