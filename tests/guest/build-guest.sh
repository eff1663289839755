#!/bin/bash
# Builds the small test guest the integration tests boot (a Debian cloud
# kernel, a busybox initramfs, and an ext4 root with the host's real
# qemu-guest-agent) and caches it outside the build tree.
#
# Usage: tests/guest/build-guest.sh
# Prints the cache directory as the last line of stdout; progress goes to
# stderr. The directory holds vmlinuz, initrd.img, root.qcow2, data.qcow2 and
# guest.env (KEY='value' lines, sourceable by sh). Treat it as read-only: copy
# the images before booting them.
#
# Environment:
#   STILLPOINT_GUEST_CACHE  cache root (default ~/.cache/stillpoint/guest)
#
# The entry is named by a hash of everything that goes into it (this script,
# the files under tests/guest/{initramfs,rootfs,data}, the kernel package
# version, the guest agent and busybox binaries and libraries), so a cached
# entry is reused until an input changes. Builds happen in a temporary
# directory renamed into place, under a lock, so concurrent or killed runs
# never leave a half-built entry.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly HERE
readonly SELF=$HERE/${BASH_SOURCE[0]##*/}
readonly CACHE_ROOT=${STILLPOINT_GUEST_CACHE:-$HOME/.cache/stillpoint/guest}
readonly DEB_DIR=$CACHE_ROOT/debs

readonly KERNEL_META_PACKAGE=linux-image-cloud-amd64
# No modules.dep in the initramfs: insmod order is dependency order.
readonly VIRTIO_MODULES="virtio_ring virtio virtio_pci_legacy_dev \
virtio_pci_modern_dev virtio_pci virtio_blk virtio_console"
readonly ROOT_SIZE=256M
readonly DATA_SIZE=128M
readonly ROOT_SERIAL=sp-root
readonly DATA_SERIAL=sp-data
readonly DATA_MOUNT=/data
readonly HOOK_LOG=/var/log/fsfreeze-hook.log
readonly QGA_PORT=org.qemu.guest_agent.0
# pci=noacpi: setting up the ACPI PCI interrupt links takes about 0.9 s under
# TCG when virtio_pci probes its devices. nomsi: without ACPI the kernel has no
# MSI domain for the root bus and warns (with a stack trace) on every device;
# the virtio devices then share legacy INTx lines, which is fine here.
readonly KERNEL_APPEND="console=ttyS0 root=/dev/vda rw quiet panic=-1 pci=noacpi,nomsi"

log() { printf 'build-guest: %s\n' "$*" >&2; }
die() {
    log "error: $*"
    exit 1
}

# Prints the installed version of Debian package $1, or fails with a hint.
installed_version() {
    local status
    status=$(dpkg-query -W -f='${db:Status-Abbrev}|${Version}' "$1" 2>/dev/null) || status=
    [[ $status == ii* ]] ||
        die "package $1 is not installed; run scripts/setup.sh (as root) first"
    printf '%s\n' "${status#*|}"
}

check_host_tools() {
    local tool
    for tool in dpkg-deb apt-get apt-cache mke2fs qemu-img cpio gzip flock \
        sha256sum ldd; do
        command -v "$tool" >/dev/null ||
            die "$tool not found; run scripts/setup.sh (as root) first"
    done
    [[ -x /usr/sbin/qemu-ga ]] ||
        die "/usr/sbin/qemu-ga missing; run scripts/setup.sh (as root) first"
    [[ -x /bin/busybox ]] ||
        die "/bin/busybox missing; run scripts/setup.sh (as root) first"
    installed_version busybox-static >/dev/null
    installed_version qemu-guest-agent >/dev/null
}

# Prints the files qemu-ga needs at run time: itself, every shared library
# ldd lists and the dynamic loader.
agent_files() {
    echo /usr/sbin/qemu-ga
    ldd /usr/sbin/qemu-ga | awk '
        $2 == "=>" && $3 ~ /^\// { print $3; next }
        $1 ~ /^\// { print $1 }'
}

# Prints a stamp of the apt package lists: the kernel resolution below is
# redone only when they change.
apt_lists_stamp() {
    find /var/lib/apt/lists -maxdepth 1 -type f -name '*Packages*' \
        -printf '%f %s %T@\n' 2>/dev/null | sort | sha256sum | cut -c1-32
}

# Prints "<package> <version>" of the kernel that the meta package depends on.
query_kernel_package() {
    local name version
    name=$(apt-cache depends "$KERNEL_META_PACKAGE" 2>/dev/null |
        awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
    [[ -n $name ]] || return 1
    version=$(apt-cache show --no-all-versions "$name" 2>/dev/null |
        awk '$1 == "Version:" { print $2; exit }')
    [[ -n $version ]] || return 1
    printf '%s %s\n' "$name" "$version"
}

# Resolves the kernel package through apt, remembering the answer per state
# of the apt lists (apt-cache takes about a second here, too slow for the
# cached path). Runs in a subshell: the lock it may take ends with it.
resolve_kernel_package() {
    local memo_dir=$CACHE_ROOT/kernel-resolved memo resolved
    memo=$memo_dir/$(apt_lists_stamp)
    if [[ -s $memo ]]; then
        cat "$memo"
        return
    fi
    # Serialize with other runs: apt-get update must not run twice at once.
    mkdir -p "$memo_dir"
    exec 9>"$CACHE_ROOT/.lock"
    flock -w 900 9 || die "timed out waiting for $CACHE_ROOT/.lock"
    memo=$memo_dir/$(apt_lists_stamp)
    if [[ -s $memo ]]; then
        cat "$memo"
        return
    fi
    if ! resolved=$(query_kernel_package); then
        log "apt does not know $KERNEL_META_PACKAGE; running apt-get update"
        apt-get update >&2 ||
            die "apt-get update failed; run scripts/setup.sh (as root) first"
        memo=$memo_dir/$(apt_lists_stamp)
        resolved=$(query_kernel_package) ||
            die "cannot resolve the package $KERNEL_META_PACKAGE depends on"
    fi
    printf '%s\n' "$resolved" >"$memo.tmp.$$"
    mv -f "$memo.tmp.$$" "$memo"
    printf '%s\n' "$resolved"
}

# Prints the hash naming the cache entry. $1: kernel "<package> <version>".
input_hash() {
    local file
    {
        printf 'kernel %s\n' "$1"
        printf 'busybox-static %s\n' "$(installed_version busybox-static)"
        printf 'qemu-guest-agent %s\n' "$(installed_version qemu-guest-agent)"
        (cd "$HERE" && find initramfs rootfs data -type f -print0 | sort -z |
            xargs -0 stat -c '%A %n') | sed -E 's/^...(.)...... /mode \1 /'
        for file in "$SELF" /bin/busybox $(agent_files); do
            printf '%s %s\n' "$file" "$(sha256sum <"$file" | cut -c1-64)"
        done
        (cd "$HERE" && find initramfs rootfs data -type f -print0 | sort -z |
            xargs -0 sha256sum)
    } | sha256sum | cut -c1-16
}

# Prints the path of the kernel .deb in $DEB_DIR, downloading it if needed.
fetch_kernel_deb() {
    local name=$1 version=$2 deb
    deb=$DEB_DIR/${name}_${version//:/%3a}_amd64.deb
    if [[ ! -s $deb ]]; then
        log "downloading $name $version"
        local dl
        dl=$(mktemp -d "$DEB_DIR/.download.XXXXXX")
        if ! (cd "$dl" && apt-get download "$name=$version" >&2); then
            log "download failed; running apt-get update and retrying"
            if ! apt-get update >&2 ||
                ! (cd "$dl" && apt-get download "$name=$version" >&2); then
                die "cannot download $name $version (apt-get update needs root)"
            fi
        fi
        mv -f "$dl"/*.deb "$deb"
        rm -rf "$dl"
        # Kernels that apt no longer resolves to are not needed any more.
        find "$DEB_DIR" -maxdepth 1 -name 'linux-image-*.deb' ! -path "$deb" -delete
    fi
    printf '%s\n' "$deb"
}

# Unpacks the kernel .deb $1 into $2/kernel; copies vmlinuz and the virtio
# modules to $2/vmlinuz and $2/initramfs/lib/modules.
unpack_kernel() {
    local deb=$1 out=$2 kdir release module file
    kdir=$out/kernel
    dpkg-deb -x "$deb" "$kdir"
    release=$(basename "$(find "$kdir/lib/modules" -mindepth 1 -maxdepth 1 -type d)")
    cp "$kdir/boot/vmlinuz-$release" "$out/vmlinuz"
    mkdir -p "$out/initramfs/lib/modules"
    for module in $VIRTIO_MODULES; do
        file=$(find "$kdir/lib/modules/$release" -name "$module.ko" -print -quit)
        [[ -n $file ]] || die "kernel $release has no module $module.ko"
        cp "$file" "$out/initramfs/lib/modules/"
    done
    rm -rf "$kdir"
    printf '%s\n' "$release"
}

build_initrd() {
    local out=$1 dir=$1/initramfs
    mkdir -p "$dir"/{bin,dev,etc,proc,sys,newroot}
    cp /bin/busybox "$dir/bin/busybox"
    ln -s busybox "$dir/bin/sh"
    install -m 0755 "$HERE/initramfs/init" "$dir/init"
    cat >"$dir/etc/initramfs.conf" <<EOF
MODULES='$VIRTIO_MODULES'
ROOT_SERIAL='$ROOT_SERIAL'
EOF
    (cd "$dir" && find . -print0 | LC_ALL=C sort -z |
        cpio --quiet -o -0 -H newc -R 0:0) | gzip -6 >"$out/initrd.img"
    rm -rf "$dir"
}

build_root_tree() {
    local dir=$1 path file
    mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,lib64,dev,proc,sys,run,root} \
        "$dir"/{tmp,var/log,etc/stillpoint,"${DATA_MOUNT#/}"}
    chmod 1777 "$dir/tmp"
    ln -s ../run "$dir/var/run"
    ln -s /proc/mounts "$dir/etc/mtab"
    cp /bin/busybox "$dir/bin/busybox"
    for path in $(/bin/busybox --list-full | grep /); do
        [[ -e $dir/$path || -L $dir/$path ]] && continue
        mkdir -p "$dir/$(dirname "$path")"
        ln -s /bin/busybox "$dir/$path"
    done
    for file in $(agent_files); do
        mkdir -p "$dir/$(dirname "$file")"
        cp -L "$file" "$dir/$file"
    done
    cp -a "$HERE/rootfs/." "$dir/"
    cat >"$dir/etc/stillpoint/guest.conf" <<EOF
ROOT_SERIAL='$ROOT_SERIAL'
DATA_SERIAL='$DATA_SERIAL'
DATA_MOUNT='$DATA_MOUNT'
HOOK_LOG='$HOOK_LOG'
QGA_PORT='$QGA_PORT'
EOF
}

# Makes $1.qcow2 from directory $2 as an ext4 file system of size $3 and
# label $4.
make_image() {
    local image=$1 dir=$2 size=$3 label=$4
    mke2fs -q -F -t ext4 -L "$label" -E root_owner=0:0 -d "$dir" \
        "$image.raw" "$size" >&2
    qemu-img convert -f raw -O qcow2 "$image.raw" "$image.qcow2" >&2
    rm -f "$image.raw"
}

# Writes KEY='value' lines; values never contain a single quote.
write_env() {
    local key value
    while (($#)); do
        key=$1 value=$2
        shift 2
        [[ $value != *\'* ]] || die "guest.env value of $key contains a quote"
        printf "%s='%s'\n" "$key" "$value"
    done
}

build_entry() {
    local out=$1 kernel=$2 deb release qga_version
    deb=$(fetch_kernel_deb "${kernel% *}" "${kernel#* }")
    log "unpacking $(basename "$deb")"
    release=$(unpack_kernel "$deb" "$out")
    log "building initrd.img"
    build_initrd "$out"
    log "building root.qcow2 and data.qcow2"
    build_root_tree "$out/rootfs"
    make_image "$out/root" "$out/rootfs" "$ROOT_SIZE" "$ROOT_SERIAL"
    rm -rf "$out/rootfs"
    mkdir "$out/datafs"
    cp -a "$HERE/data/." "$out/datafs/"
    make_image "$out/data" "$out/datafs" "$DATA_SIZE" "$DATA_SERIAL"
    rm -rf "$out/datafs"
    qga_version=$(/usr/sbin/qemu-ga -V | awk '{ print $4; exit }')
    {
        echo "# Test guest built by tests/guest/build-guest.sh. Do not edit."
        write_env \
            GUEST_KERNEL "$FINAL_DIR/vmlinuz" \
            GUEST_INITRD "$FINAL_DIR/initrd.img" \
            GUEST_APPEND "$KERNEL_APPEND" \
            GUEST_ROOT_IMAGE "$FINAL_DIR/root.qcow2" \
            GUEST_DATA_IMAGE "$FINAL_DIR/data.qcow2" \
            GUEST_ROOT_SERIAL "$ROOT_SERIAL" \
            GUEST_DATA_SERIAL "$DATA_SERIAL" \
            GUEST_DATA_MOUNT "$DATA_MOUNT" \
            GUEST_HOOK_LOG "$HOOK_LOG" \
            GUEST_QGA_PORT "$QGA_PORT" \
            GUEST_QGA_VERSION "$qga_version" \
            GUEST_QGA_PACKAGE_VERSION "$(installed_version qemu-guest-agent)" \
            GUEST_KERNEL_RELEASE "$release" \
            GUEST_KERNEL_PACKAGE "$kernel"
    } >"$out/guest.env"
}

main() {
    check_host_tools
    local kernel hash
    kernel=$(resolve_kernel_package)
    hash=$(input_hash "$kernel")
    FINAL_DIR=$CACHE_ROOT/$hash
    if [[ -f $FINAL_DIR/guest.env ]]; then
        printf '%s\n' "$FINAL_DIR"
        return
    fi

    mkdir -p "$CACHE_ROOT" "$DEB_DIR"
    exec 9>"$CACHE_ROOT/.lock"
    if ! flock -n 9; then
        log "another build holds $CACHE_ROOT/.lock; waiting"
        flock -w 900 9 || die "timed out waiting for $CACHE_ROOT/.lock"
    fi
    if [[ -f $FINAL_DIR/guest.env ]]; then # built by a concurrent run
        printf '%s\n' "$FINAL_DIR"
        return
    fi
    # Whoever holds the lock is the only builder: leftovers are from killed runs.
    rm -rf "$CACHE_ROOT"/.build.* "$DEB_DIR"/.download.*
    local start=$SECONDS
    BUILD_DIR=$(mktemp -d "$CACHE_ROOT/.build.XXXXXX")
    trap 'rm -rf "$BUILD_DIR"' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    log "building $FINAL_DIR (kernel $kernel)"
    build_entry "$BUILD_DIR" "$kernel"
    chmod 0755 "$BUILD_DIR"
    rm -rf "$FINAL_DIR" # only ever an incomplete entry someone tampered with
    mv -T "$BUILD_DIR" "$FINAL_DIR"
    trap - EXIT INT TERM
    log "built in $((SECONDS - start)) s"
    printf '%s\n' "$FINAL_DIR"
}

main "$@"
