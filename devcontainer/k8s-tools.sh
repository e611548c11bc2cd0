#!/usr/bin/env bash
# Puts kubectl, kind and helm at the pinned versions into /opt/k8s-tools
# (devcontainer/Dockerfile, stage k8s-tools). Upstream it runs on the
# workspace base and downloads each release binary, checked against the
# checksum its project publishes. A tool already there at the pinned version
# is kept: that is how the local run's stand-in image brings them, built from
# Go modules, where no download can be reached (see devcontainer/README.md).
set -euo pipefail

: "${KIND_VERSION:?}" "${KUBECTL_VERSION:?}" "${HELM_VERSION:?}"
out=/opt/k8s-tools
mkdir -p "$out"
arch="${TARGETARCH:-$(dpkg --print-architecture)}"

# has VERSION TOOL ARGS...: TOOL is in $out and ARGS make it print VERSION.
has() { [[ -x "$out/$2" ]] && "$out/$2" "${@:3}" 2>/dev/null | grep -F -- "$1" >/dev/null; }
work="$(mktemp -d)"
cd "$work"

if has "v${KUBECTL_VERSION}" kubectl version --client; then
    echo "kubectl v${KUBECTL_VERSION}: in the image"
else
    url="https://dl.k8s.io/release/v${KUBECTL_VERSION}/bin/linux/${arch}/kubectl"
    curl -fsSLo kubectl "$url"
    echo "$(curl -fsSL "${url}.sha256")  kubectl" | sha256sum -c -
    install -m 0755 kubectl "$out/kubectl"
fi

if has "v${KIND_VERSION}" kind version; then
    echo "kind v${KIND_VERSION}: in the image"
else
    url="https://github.com/kubernetes-sigs/kind/releases/download/v${KIND_VERSION}/kind-linux-${arch}"
    curl -fsSLo kind "$url"
    echo "$(curl -fsSL "${url}.sha256sum" | cut -d ' ' -f 1)  kind" | sha256sum -c -
    install -m 0755 kind "$out/kind"
fi

if has "v${HELM_VERSION}" helm version --short; then
    echo "helm v${HELM_VERSION}: in the image"
else
    tgz="helm-v${HELM_VERSION}-linux-${arch}.tar.gz"
    curl -fsSLO "https://get.helm.sh/${tgz}"
    echo "$(curl -fsSL "https://get.helm.sh/${tgz}.sha256sum" | cut -d ' ' -f 1)  ${tgz}" | sha256sum -c -
    tar -xzf "$tgz" "linux-${arch}/helm"
    install -m 0755 "linux-${arch}/helm" "$out/helm"
fi

cd /
rm -rf "$work"
