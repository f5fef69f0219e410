"""The API users the test cluster's clients authenticate as, named once for every test that
matches requests by user (faults, RBAC, request counts)."""

AIRFLOW = "system:serviceaccount:airflow:airflow-worker"    # the package's tasks (include/rbac)
OPERATOR = "system:serviceaccount:pgo:postgres-operator"    # the real postgres-operator's pod
