"""The ground floor, with no Dapr and no labs in it.

Paths, versions, the profile, ports, processes and their registry, probes
and the one wait.
"""
