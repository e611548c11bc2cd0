"""Starting apps with their sidecars and talking to them: sidecar apps, workers, actors, workflows, Kafka, load, mTLS planes, clusters."""
