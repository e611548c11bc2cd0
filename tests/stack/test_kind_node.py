"""The kind cluster built here: its config asks only for images the node carries, on this machine's cgroups.

Pure logic: the cluster itself runs in tests/runtime/test_kind_cluster.py (opt-in, LAB_ENV_KIND=1).
"""

from __future__ import annotations

import json

from lab_env.core.versions import pins
from lab_env.runtime.clusters import kind
from lab_env.stack.images import kind_node
from lab_env.stack.images.catalog import LOCAL_REPO


def _patches(config: dict) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in map(json.loads, config["kubeadmConfigPatches"])}


def test_the_config_has_one_control_plane_and_the_workers_asked_for_all_on_the_local_node_image():
    config = kind.local_config(3, "agent-homes")
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane", "worker", "worker", "worker"]
    assert {node["image"] for node in config["nodes"]} == {kind_node.node_ref()}
    assert kind_node.node_ref().startswith(LOCAL_REPO + "/")
    assert config["networking"]["apiServerAddress"] == "127.0.0.1"


def test_every_image_kubeadm_names_is_one_the_node_carries():
    """kubeadm derives its images from imageRepository and the tags patched in; each must be preloaded."""
    cluster = _patches(kind.local_config(1, "x"))["ClusterConfiguration"]
    repo, k8s = cluster["imageRepository"], pins().kubernetes["version"]
    wanted = {f"{repo}/{name}:v{k8s}" for name in ("kube-apiserver", "kube-controller-manager", "kube-scheduler")}
    wanted |= {f"{repo}/kube-proxy:v{k8s}", f"{repo}/etcd:{cluster['etcd']['local']['imageTag']}"}
    wanted.add(f"{repo}/coredns:{cluster['dns']['imageTag']}")
    assert wanted <= set(kind_node.component_refs().values())


def test_the_kubelet_is_let_run_on_a_cgroup_v1_host():
    assert _patches(kind.local_config(0, "x"))["KubeletConfiguration"]["failCgroupV1"] is False


def test_the_cni_manifest_is_templated_by_kind_and_runs_podnet_from_the_bakery():
    manifest = kind_node.default_cni()
    # kind fills in the pod subnet only when the manifest carries its marker.
    assert manifest.startswith("# would you kindly template this file")
    assert "{{ .PodSubnet }}" in manifest
    assert f"image: {kind_node.component_refs()['podnet']}" in manifest
    assert "@PODNET_IMAGE@" not in manifest


def test_the_nodes_runc_is_the_capability_wrapper_over_debians_runc():
    wrapper = kind_node._runc_wrapper()
    assert wrapper.startswith("#!/usr/bin/python3 -I\n")
    assert 'RUNC = "/usr/sbin/runc"' in wrapper


def test_the_sandbox_image_the_node_configures_is_the_pause_image_it_carries():
    dockerfile = kind_node.NODE_DOCKERFILE.format(debian="d", k8s="1", pause=kind_node.component_refs()["pause"])
    assert f'sandbox_image = "{kind_node.component_refs()["pause"]}"' in dockerfile


def test_the_nodes_containerd_clamps_oom_score_adj_since_no_process_here_may_lower_it():
    """Without CAP_SYS_RESOURCE, a pod sandbox asking for oom_score_adj -998 fails to start at all."""
    dockerfile = kind_node.NODE_DOCKERFILE.format(debian="d", k8s="1", pause="p")
    assert "s/restrict_oom_score_adj = false/restrict_oom_score_adj = true/" in dockerfile
    # and the build fails if kind's config no longer has the line to flip
    assert "grep -q 'restrict_oom_score_adj = true'" in dockerfile
