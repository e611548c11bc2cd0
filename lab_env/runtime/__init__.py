"""Starting apps with their sidecars and talking to them.

Sidecar apps, workers, actors, workflows, Kafka, load, mTLS planes and clusters.
"""
