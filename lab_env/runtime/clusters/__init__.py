"""The Kubernetes clusters lab 05 runs agent homes on, one module per kind of cluster.

`kind` needs a Docker engine; `native` is a control plane built here with kwok's nodes.
"""
