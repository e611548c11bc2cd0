"""The Kubernetes clusters lab 05 runs agent homes on, one module per kind of cluster: `kind` (a Docker engine) and `native` (a control plane built here, kwok's nodes)."""
