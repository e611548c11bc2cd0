"""kind's node image, built here: a stand-in for kindest/node, which cannot be pulled.

    ref = build(engine)    # localhost/lab-env/kind-node:v1.36.3, kept when its inputs are unchanged

What it reproduces of kindest/node, and how:
- kind's own base files (the entrypoint that fixes cgroups and mounts, the
  kubelet and containerd units, containerd's CRI config, sysctls), read from
  the sigs.k8s.io/kind module at the pinned version, never copied into this
  repository;
- Debian bookworm's systemd and node tools, its runc and CNI plugins; the
  containerd kind's release carries, built from its Go module;
- kubelet, kubeadm and kubectl at [kubernetes] version, and /kind/version;
- every image kubeadm and kind start, already in the node's containerd
  (imported without unpacking, pinned, as kind's node builder does):
  kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, etcd,
  CoreDNS, pause and metrics-server (for the HPA), each one binary on the bakery's Debian base, named
  localhost/lab-env/<name> (the cluster config points kubeadm there).

What differs:
- no kindnetd (its module does not resolve through the proxy) and no
  local-path provisioner: /kind/manifests/default-cni.yaml is podnet, a
  DaemonSet of our own (podnet.sh) that writes each node's ptp CNI config for
  its pod CIDR and routes the other nodes' pod CIDRs to them; no
  NetworkPolicy, no StorageClass;
- runc is wrapped (runc_wrapper.py) to drop the capabilities this machine's
  bounding set lacks, so privileged pods start; for the same reason (no
  CAP_SYS_RESOURCE, so no process here may lower an oom_score_adj) containerd
  clamps each container's oom_score_adj to its own (restrict_oom_score_adj,
  as kind sets it for rootless nodes): without it every pod sandbox failed
  with "can't get final child's PID from pipe"; the cluster config lets the
  kubelet run on a cgroup v1 host (failCgroupV1: false);
- etcd is the native cluster's 3.6.16 (kubeadm 1.36 names 3.6.8) and CoreDNS
  v1.14.7 (kubeadm names v1.14.2, not on the proxy).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

from lab_env.core.paths import cache_dir, logs_dir
from lab_env.core.progress_bar import run_with_progress
from lab_env.core.versions import pins
from lab_env.errors import LabEnvError
from lab_env.stack import runc_wrapper
from lab_env.stack.engine import Engine
from lab_env.stack.images.catalog import LOCAL_REPO
from lab_env.stack.provision import kind_build
from lab_env.stack.provision.gobuild import download_module
from lab_env.stack.provision.prereqs import require_go

LABEL = "org.lab-env.recipe"
FILES = Path(__file__).parent / "kind_node_files"
BUILDER = "lab-env-kind-node-build"
READY_TIMEOUT_S = 120.0  # a safety net: containerd answers in a second or two

# One binary per image on the bakery's Debian base, as kubeadm's static pods and add-ons run them.
COMPONENT_DOCKERFILE = """\
FROM {debian}
{install}COPY {binary} /usr/local/bin/{binary}
{entrypoint}"""
COMPONENTS = {
    # name: (binary, tag, Debian packages, entrypoint)
    "kube-apiserver": ("kube-apiserver", "v{k8s}", "", None),
    "kube-controller-manager": ("kube-controller-manager", "v{k8s}", "", None),
    "kube-scheduler": ("kube-scheduler", "v{k8s}", "", None),
    # kube-proxy programs the node's iptables (Debian's nft backend, as the node's own).
    "kube-proxy": ("kube-proxy", "v{k8s}", "iptables conntrack nftables", None),
    "etcd": ("etcd", "{etcd}", "", None),
    "coredns": ("coredns", "v{coredns}", "", "/usr/local/bin/coredns"),
    # The HPA's metrics: the native cluster's metrics-server build (upstream's image runs it as its entrypoint).
    "metrics-server": ("metrics-server", "v{metrics_server}", "", "/usr/local/bin/metrics-server"),
    # podnet: the CNI DaemonSet (podnet.sh) with kubectl to read the nodes' pod CIDRs.
    "podnet": ("kubectl", "v{k8s}", "iproute2 iptables", "/usr/local/bin/podnet.sh"),
}
PAUSE_DOCKERFILE = """\
FROM scratch
COPY pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
"""

NODE_DOCKERFILE = """\
FROM {debian}
RUN apt-get update -qq \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
      systemd conntrack iptables nftables iproute2 ethtool util-linux mount kmod libseccomp2 pigz \\
      bash ca-certificates curl jq procps runc containernetworking-plugins python3 \\
 && rm -rf /var/lib/apt/lists/* \\
 && find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
      /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
      /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && echo ReadKMsg=no >> /etc/systemd/journald.conf \\
 && ln -sf "$(command -v systemd || echo /lib/systemd/systemd)" /sbin/init \\
 && python3 -I -c "import json, pathlib, typing"
COPY kind/usr/local/bin/ /usr/local/bin/
COPY kind/kind/ /kind/
COPY kind/etc/ /etc/
COPY bin/containerd bin/ctr bin/containerd-shim-runc-v2 /usr/local/bin/
COPY bin/kubelet bin/kubeadm bin/kubectl /usr/bin/
COPY runc /usr/local/sbin/runc
COPY default-cni.yaml /kind/manifests/default-cni.yaml
RUN chmod 0755 /usr/local/bin/* /kind/bin/* /usr/local/sbin/runc \\
 && mkdir -p /opt/cni/bin /etc/kubernetes/manifests \\
 && ln -s /usr/lib/cni/* /opt/cni/bin/ \\
 && ctr oci spec \\
      | jq '.hooks.createContainer += [{{"path": "/kind/bin/mount-product-files.sh"}}] | del(.process.rlimits)' \\
      > /etc/containerd/cri-base.json \\
 && sed -i 's#sandbox_image = .*#sandbox_image = "{pause}"#' /etc/containerd/config.toml \\
 && grep -q '{pause}' /etc/containerd/config.toml \\
 && sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml \\
 && grep -q 'restrict_oom_score_adj = true' /etc/containerd/config.toml \\
 && echo v{k8s} > /kind/version \\
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
 && systemctl mask systemd-binfmt.service
ENV container=docker
STOPSIGNAL SIGRTMIN+3
ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]
"""
NODE_ENTRYPOINT = '["/usr/local/bin/entrypoint", "/sbin/init"]'


def _versions() -> dict[str, str]:
    p = pins()
    return {
        "k8s": p.kubernetes["version"],
        "etcd": p.kubernetes["etcd"],
        "metrics_server": p.kubernetes["metrics_server"],
        "coredns": p.kind_node["coredns"],
        "pause": p.kind_node["pause"],
        "kind": p.kind_node["kind"],
    }


def node_ref() -> str:
    return f"{LOCAL_REPO}/kind-node:v{_versions()['k8s']}"


def component_refs() -> dict[str, str]:
    """name -> local reference of each image preloaded into the node."""
    v = _versions()
    refs = {name: f"{LOCAL_REPO}/{name}:{tag.format(**v)}" for name, (_, tag, _, _) in COMPONENTS.items()}
    refs["pause"] = f"{LOCAL_REPO}/pause:{v['pause']}"
    return refs


def work_dir() -> Path:
    return cache_dir() / "images" / "kind-node"


def _log(name: str) -> Path:
    return logs_dir() / f"image-kind-node-{name}.log"


def _kind_files() -> Path:
    """kind's base-image files, from the sigs.k8s.io/kind module at the pinned version."""
    return download_module(
        require_go(), "sigs.k8s.io/kind", f"v{_versions()['kind']}", kind_build.kube.BUILD_MODULE
    ) / ("images/base/files")


def digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def recipe_label(engine: Engine, ref: str) -> str | None:
    done = engine.docker("image", "inspect", "--format", '{{index .Config.Labels "' + LABEL + '"}}', ref)
    return done.stdout.strip() if done.returncode == 0 else None


def build_image(engine: Engine, context: Path, ref: str, label: str, what: str) -> None:
    steps = sum(1 for line in (context / "Dockerfile").read_text().splitlines() if line[:1].isalpha())
    run_with_progress(
        ["docker", "build", "--force-rm", "--label", f"{LABEL}={label}", "-t", ref, str(context)],
        f"image {what}",
        _log(what),
        total=steps,
        counts=lambda line: line.startswith("Step "),
        env={"DOCKER_HOST": engine.host, "DOCKER_BUILDKIT": "0"},
        fix=f"see {_log(what)}",
    )


def _components(engine: Engine, debian: str, binaries: Path) -> tuple[list[str], str]:
    """Build each component image unless current; returns their refs and a digest of them all."""
    refs = component_refs()
    digests = []
    for name, (binary, _tag, packages, entrypoint) in COMPONENTS.items():
        context = work_dir() / name
        shutil.rmtree(context, ignore_errors=True)
        context.mkdir(parents=True)
        install = (
            f"RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "
            f"--no-install-recommends {packages} && rm -rf /var/lib/apt/lists/*\n"
            if packages
            else ""
        )
        dockerfile = COMPONENT_DOCKERFILE.format(
            debian=debian,
            install=install,
            binary=binary,
            entrypoint=f'ENTRYPOINT ["{entrypoint}"]\n' if entrypoint else "",
        )
        if name == "podnet":
            shutil.copy2(FILES / "podnet.sh", context / "podnet.sh")
            dockerfile += "COPY podnet.sh /usr/local/bin/podnet.sh\nRUN chmod 0755 /usr/local/bin/podnet.sh\n"
        (context / "Dockerfile").write_text(dockerfile)
        shutil.copy2(binaries / binary, context / binary)
        extra = (FILES / "podnet.sh").read_bytes() if name == "podnet" else b""
        label = digest(dockerfile.encode(), file_digest(binaries / binary), extra, image_id(engine, debian).encode())
        if recipe_label(engine, refs[name]) != label:
            build_image(engine, context, refs[name], label, name)
        digests.append(label)
    context = work_dir() / "pause"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(PAUSE_DOCKERFILE)
    shutil.copy2(binaries / "pause", context / "pause")
    label = digest(PAUSE_DOCKERFILE.encode(), file_digest(binaries / "pause"))
    if recipe_label(engine, refs["pause"]) != label:
        build_image(engine, context, refs["pause"], label, "pause")
    digests.append(label)
    return list(refs.values()), digest(*(d.encode() for d in digests))


def image_id(engine: Engine, ref: str) -> str:
    done = engine.docker("image", "inspect", "--format", "{{.Id}}", ref)
    if done.returncode != 0:
        raise LabEnvError(f"image {ref} is not built", "run `lab-env images build debian`")
    return done.stdout.strip()


def default_cni() -> str:
    """The podnet manifest kind applies as the cluster's CNI ({{ .PodSubnet }} filled by kind)."""
    return (FILES / "podnet.yaml").read_text().replace("@PODNET_IMAGE@", component_refs()["podnet"])


def _runc_wrapper() -> str:
    source = Path(runc_wrapper.__file__).read_text()
    return "#!/usr/bin/python3 -I\n" + source


def build(engine: Engine, debian: str) -> str:
    """The node image's reference, built (binaries, component images, node, preload) unless current."""
    binaries = kind_build.build()
    refs, components = _components(engine, debian, binaries)
    v = _versions()
    pause = component_refs()["pause"]
    dockerfile = NODE_DOCKERFILE.format(debian=debian, k8s=v["k8s"], pause=pause)
    context = work_dir() / "node"
    shutil.rmtree(context, ignore_errors=True)
    (context / "bin").mkdir(parents=True)
    shutil.copytree(_kind_files(), context / "kind", copy_function=shutil.copy)
    for path in (context / "kind").rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    for name in ("containerd", "ctr", "containerd-shim-runc-v2", "kubelet", "kubeadm", "kubectl"):
        shutil.copy2(binaries / name, context / "bin" / name)
    (context / "runc").write_text(_runc_wrapper())
    (context / "default-cni.yaml").write_text(default_cni())
    (context / "Dockerfile").write_text(dockerfile)
    kind_text = b"".join(p.read_bytes() for p in sorted((context / "kind").rglob("*")) if p.is_file())
    label = digest(
        dockerfile.encode(),
        kind_text,
        _runc_wrapper().encode(),
        default_cni().encode(),
        components.encode(),
        image_id(engine, debian).encode(),
        *(file_digest(context / "bin" / n) for n in sorted(os.listdir(context / "bin"))),
    )
    ref = node_ref()
    if recipe_label(engine, ref) == label:
        return ref
    base = f"{LOCAL_REPO}/kind-node-base:v{v['k8s']}"
    build_image(engine, context, base, label, "node")
    _preload(engine, base, ref, refs, label)
    return ref


def _preload(engine: Engine, base: str, ref: str, refs: list[str], label: str) -> None:
    """Import the component images into the node's containerd, unpacked at first use, and commit."""
    tarball = work_dir() / "components.tar"
    engine.check("save", "-o", str(tarball), *refs, timeout=600)
    engine.docker("rm", "-f", BUILDER)
    engine.check(
        "run", "-d", "--name", BUILDER, "--privileged", "--tmpfs", "/run", "--tmpfs", "/tmp",
        "--entrypoint", "/usr/local/bin/containerd", base,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while engine.docker("exec", BUILDER, "ctr", "version").returncode != 0:
            if engine.docker("inspect", "--format", "{{.State.Running}}", BUILDER).stdout.strip() != "true":
                logs = engine.docker("logs", "--tail", "5", BUILDER)
                raise LabEnvError(
                    f"containerd in the node image exited: {(logs.stderr or logs.stdout).strip()[-200:]}",
                    f"see `docker logs {BUILDER}`",
                )
            if time.monotonic() > deadline:
                raise LabEnvError("containerd in the node image did not answer", f"see `docker logs {BUILDER}`")
            time.sleep(0.5)
        with open(tarball, "rb") as data:
            done = subprocess.run(
                ["docker", "exec", "-i", BUILDER, "ctr", "--namespace=k8s.io", "images", "import",
                 "--label=io.cri-containerd.pinned=pinned", "--all-platforms", "--no-unpack", "--digests", "-"],
                stdin=data, capture_output=True, text=True, check=False,
                env={**os.environ, "DOCKER_HOST": engine.host},
            )  # fmt: skip
        _log("preload").write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise LabEnvError(f"importing the images into the node failed: {done.stderr.strip()[-200:]}", "see the log")
        listed = engine.check("exec", BUILDER, "ctr", "--namespace=k8s.io", "images", "list", "-q")
        missing = [r for r in refs if r not in listed.split()]
        if missing:
            raise LabEnvError(f"the node's containerd lacks {missing[0]} after the import", f"see {_log('preload')}")
        engine.check("stop", "--time", "30", BUILDER, timeout=60)
        engine.check(
            "commit", "--change", f"ENTRYPOINT {NODE_ENTRYPOINT}", "--change", 'CMD []',
            "--change", f"LABEL {LABEL}={label}", BUILDER, ref, timeout=600,
        )  # fmt: skip
    finally:
        engine.docker("rm", "-f", BUILDER)
        tarball.unlink(missing_ok=True)
    engine.docker("rmi", base)
