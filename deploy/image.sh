#!/usr/bin/env bash
# The agent's OCI image, built without a container daemon or a base image from a registry:
# the decompute binary, the shared libraries it links (as ldd lists them) and the system's
# CA certificates (TLS to a PostgreSQL ledger), in an OCI image layout (umoci, a Debian
# package). Push it with skopeo:
#
#   cargo build --release && deploy/image.sh target/release/decompute target/oci 0.1.0
#   skopeo copy oci:target/oci:0.1.0 docker://registry.example/decompute:0.1.0
#
# NVML is not in the image: the NVIDIA container runtime puts the host's libnvidia-ml.so.1
# in the container on GPU nodes (the Helm chart's gpu.* values). deploy/Containerfile builds
# the same image where a registry with rust and debian images is at hand.
#
# It ends by running the image's own binary in its root filesystem (`chroot`, as root), so
# an image that cannot start is never left behind as if it were fine.
set -euo pipefail
bin=${1:-target/release/decompute}
out=${2:-target/oci}
tag=${3:-0.1.0}
[ -x "$bin" ] || { echo "deploy/image.sh: no binary at $bin; build it first (cargo build --release)" >&2; exit 1; }
if ! command -v umoci >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq umoci >/dev/null
    else
        echo "deploy/image.sh: umoci is needed (apt-get install umoci)" >&2
        exit 1
    fi
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$out"
umoci init --layout "$out"
umoci new --image "$out:$tag"
umoci unpack --rootless --image "$out:$tag" "$work/bundle" >/dev/null
root=$work/bundle/rootfs
install -D -m 0755 "$bin" "$root/usr/local/bin/decompute"
# The loader and every library the binary links, at the paths it looks for them.
for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
    install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
install -d -m 1777 "$root/tmp"
umoci repack --image "$out:$tag" "$work/bundle"
umoci config --image "$out:$tag" \
    --config.entrypoint /usr/local/bin/decompute \
    --config.cmd serve --config.cmd --listen --config.cmd 0.0.0.0:9875 \
    --config.exposedports 9875/tcp \
    --config.label org.opencontainers.image.title=decompute \
    --config.label "org.opencontainers.image.licenses=MIT OR Apache-2.0" \
    --config.label "org.opencontainers.image.version=$tag"
# Check what was written: unpacked afresh, its binary runs in its own root filesystem.
umoci unpack --rootless --image "$out:$tag" "$work/check" >/dev/null
if [ "$(id -u)" = 0 ]; then
    version=$(chroot "$work/check/rootfs" /usr/local/bin/decompute --version)
    echo "deploy/image.sh: $out:$tag runs: $version"
else
    echo "deploy/image.sh: $out:$tag written (not run: chroot needs root)"
fi
