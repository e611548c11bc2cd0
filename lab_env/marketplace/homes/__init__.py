"""Agent homes (lab 05): one declarative spec of the marketplace's agents
(spec.py), rendered into the homes they can live in: the real Dapr CLI's
multi-app run here (native.py) and Kubernetes (kube.py)."""
