#!/usr/bin/env bash
# A Debian bookworm base image built from the machine's own Debian mirror, for machines
# that cannot pull images (tooling.md): debootstrap minbase, the mirror's suites as apt
# sources, no apt caches; imported as localhost/debian:bookworm (or $1).
set -euo pipefail
IMAGE=${1:-localhost/debian:bookworm}

# The mirror the host's apt uses (deb822 URIs: or one-line deb), else Debian's own.
MIRROR=$( (grep -rhoE '^(URIs:[[:space:]]*|deb[[:space:]]+)[^[:space:]]+/debian/?([[:space:]]|$)' \
             /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null || true) | awk 'NR == 1 {print $NF}')
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY=${MIRROR%/debian*}/debian-security

ROOTFS=$(mktemp -d /tmp/gridgov-debian-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
echo "debootstrap bookworm from $MIRROR"
debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >/dev/null
cat > "$ROOTFS/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $SECURITY bookworm-security main
SOURCES
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | podman import --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
echo "imported $IMAGE"
