#!/bin/sh
# Builds the .deb and installs, removes and purges it in a throw-away
# copy-on-write view of this machine (overlayfs over / in a private mount
# namespace, then chroot), so the maintainer scripts run for real without
# changing the host. Needs root, cargo-deb, unshare and overlayfs.
# Usage: debian/check-package.sh [--release]   (default: the faster dev build)
set -eu
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--release" ]; then
    deb=$(cargo deb 2>/dev/null | tail -n 1)
else
    deb=$(cargo deb --profile dev --no-strip 2>/dev/null | tail -n 1)
fi
[ -f "$deb" ] || { echo "cargo deb did not produce a package" >&2; exit 1; }
echo "package: $deb"
dpkg -c "$deb" | awk '{print $6}' | grep -E 'usr/bin/smsgate$|smsgate.service$|sysusers.d/smsgate.conf$|70-smsgate.rules$|etc/smsgate/smsgate.toml$'

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/upper" "$tmp/work" "$tmp/root"
cp "$deb" "$tmp/upper/smsgate.deb"

unshare --mount --propagation private sh -eu -c '
tmp=$1
mount -t overlay overlay -o "lowerdir=/,upperdir=$tmp/upper,workdir=$tmp/work" "$tmp/root"
mount --bind /proc "$tmp/root/proc"
mount --bind /dev "$tmp/root/dev"
chroot "$tmp/root" sh -eu -c "
    dpkg -i /smsgate.deb
    getent passwd smsgate
    id -nG smsgate | grep -qw dialout
    test \"\$(stat -c %U:%G:%a /etc/smsgate/smsgate.toml)\" = root:smsgate:640
    smsgate run --check-config --config /etc/smsgate/smsgate.toml
    smsgate udev-rules | cmp - /lib/udev/rules.d/70-smsgate.rules
    dpkg -r smsgate
    dpkg --purge smsgate
    test ! -e /etc/smsgate/smsgate.toml
"
' sh "$tmp"
echo "package check: install, configure, remove and purge all passed"
