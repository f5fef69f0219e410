"""Integration tests: the product against the test Kubernetes API and real database servers."""
