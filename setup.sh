#!/usr/bin/env bash
# txtop set-up for Debian/Ubuntu, run as root. Safe to run again: it only does what is missing.
#
#   ./setup.sh [TXTOP ARGS...]   set up, then start the dashboard (the demo when given no args)
#   ./setup.sh test [PYTEST ARGS...]
#                                set up, then run ruff, mypy, the import contracts and the whole test suite
#   ./setup.sh --no-start        set up only
#   ./setup.sh --pick-headers UNAME_R ARCH FILE
#                                print the kernel headers package to install, chosen from FILE
#                                (the output of `apt-cache search linux-headers`); no root needed
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
VENV="$REPO/.venv"
SYS_PYTHON=/usr/bin/python3
LAUNCHER=/usr/local/bin/txtop
STAMP="$VENV/.txtop-install-stamp"
# A distro kernel version: 6.1.0-47, 6.12.115+deb12, 6.8.0-45 (Ubuntu).
VER_RE='[0-9]+\.[0-9]+\.[0-9]+(-[0-9]+)?(\+[A-Za-z0-9.~]+)?'

REQUIRED_PKGS=(python3 python3-venv python3-bpfcc bpfcc-tools bpftrace iproute2 ethtool tmux gcc libc6-dev procps)
# Only for `./setup.sh test`: a real Prometheus and promtool for tests/test_exporter.py;
# iperf3, the real TCP/UDP client of the identity lab tests (its debconf default starts no daemon).
TEST_PKGS=(prometheus iperf3)

say() { printf '[txtop] %s\n' "$*"; }
warn() { printf '[txtop] warning: %s\n' "$*" >&2; }
die() {
    printf '[txtop] error: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- kernel headers package choice

# The header flavours worth having for kernel release $1 on dpkg architecture $2, best first:
# the kernel's own flavour (cloud-amd64, amd64, rt-amd64, generic, aws, ...), then, for kernels
# the distro does not know (custom VM kernels), cloud, plain and Ubuntu's generic headers.
header_flavours() {
    local release=$1 arch=$2 ver rest
    ver=$(grep -oE "^$VER_RE" <<<"$release" || true)
    rest=${release#"$ver"}
    rest=${rest#-}
    local seen=" " f
    for f in "$rest" "cloud-$arch" "$arch" generic; do
        [ -n "$f" ] || continue
        case "$seen" in *" $f "*) continue ;; esac
        seen="$seen$f "
        printf '%s\n' "$f"
    done
}

regex_escape() {
    local s=${1//./\\.}
    printf '%s\n' "${s//+/\\+}"
}

# pick_headers UNAME_R ARCH FILE: print the package name, or fail when the list has none.
# linux-headers-UNAME_R when listed; else, for the first flavour with any versioned package,
# the newest one of the running kernel's major.minor series, or the newest of all.
pick_headers() {
    local release=$1 arch=$2 list=$3 names flavour cands same series
    [[ $release =~ ^[A-Za-z0-9._+~-]+$ ]] || die "bad kernel release: $release"
    [[ $arch =~ ^[a-z0-9]+$ ]] || die "bad architecture: $arch"
    if [ ! -r "$list" ] || [ -d "$list" ]; then
        die "cannot read: $list"
    fi
    names=$(awk '$1 ~ /^linux-headers-/ {print $1}' "$list")
    if grep -qxF -- "linux-headers-$release" <<<"$names"; then
        printf 'linux-headers-%s\n' "$release"
        return 0
    fi
    series=$(grep -oE '^[0-9]+\.[0-9]+' <<<"$release" || true)
    while IFS= read -r flavour; do
        cands=$(grep -E "^linux-headers-$VER_RE-$(regex_escape "$flavour")\$" <<<"$names" || true)
        [ -n "$cands" ] || continue
        if [ -n "$series" ]; then
            same=$(grep -F "linux-headers-$series." <<<"$cands" || true)
            [ -n "$same" ] && cands=$same
        fi
        sort -V <<<"$cands" | tail -n 1
        return 0
    done < <(header_flavours "$release" "$arch")
    return 1
}

# True when headers usable for this kernel are installed: the kernel's own, or any distro
# flavour from header_flavours with its common part (Debian -common, Ubuntu unsuffixed).
headers_installed() {
    local release=$1 arch=$2 flavour dir ver
    [ -e "/lib/modules/$release/build/include" ] && return 0
    [ -d "/usr/src/linux-headers-$release" ] && return 0
    [ -e /sys/kernel/kheaders.tar.xz ] && return 0
    while IFS= read -r flavour; do
        for dir in /usr/src/linux-headers-*-"$flavour"; do
            [ -d "$dir" ] || continue
            ver=${dir#/usr/src/linux-headers-}
            ver=${ver%-"$flavour"}
            [[ $ver =~ ^$VER_RE$ ]] || continue
            if [ -d "/usr/src/linux-headers-$ver-common" ] || [ -d "/usr/src/linux-headers-$ver" ]; then
                return 0
            fi
        done
    done < <(header_flavours "$release" "$arch")
    return 1
}

# ---------------------------------------------------------------- packages

APT_UPDATED=0
apt_update_once() {
    [ "$APT_UPDATED" = 1 ] && return 0
    say "apt-get update"
    apt-get -q -o DPkg::Lock::Timeout=300 update >/dev/null
    APT_UPDATED=1
}

apt_install() {
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get -y -q -o DPkg::Lock::Timeout=300 -o Dpkg::Use-Pty=0 \
        install --no-install-recommends "$@" >/dev/null
}

is_installed() {
    local status
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null) || return 1
    [[ $status == ii* ]]
}

apt_lists_present() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }

install_packages() {
    local missing=() p
    for p in "${REQUIRED_PKGS[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_update_once
        apt_install "${missing[@]}"
    fi
    # Optional: the set-up goes on without them. Each entry lists alternatives (Debian, Ubuntu).
    install_optional bpftool "bpftool" "linux-tools-common linux-tools-$(uname -r)"
    install_optional rsvg-convert "librsvg2-bin"
}

# The test tier's packages. Debian's prometheus package enables and may start a service
# listening on all addresses (:9090); the tests start their own on 127.0.0.1, so a service
# this set-up just brought in is stopped and disabled (one the user already had is left alone).
install_test_packages() {
    local missing=() p
    for p in "${TEST_PKGS[@]}"; do
        is_installed "$p" || missing+=("$p")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    apt_update_once
    apt_install "${missing[@]}"
    if [[ " ${missing[*]} " == *" prometheus "* ]]; then
        if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now prometheus.service >/dev/null 2>&1 || true
        elif [ -x /etc/init.d/prometheus ]; then
            /etc/init.d/prometheus stop >/dev/null 2>&1 || true
        fi
    fi
}

# install_optional COMMAND "PKGS" ["PKGS"...]: the first set of packages that installs wins.
install_optional() {
    local cmd=$1 alt
    shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    for alt in "$@"; do
        is_installed "${alt%% *}" && return 0
    done
    apt_lists_present || apt_update_once
    for alt in "$@"; do
        # shellcheck disable=SC2086  # $alt is a space-separated list of package names
        if apt_install $alt 2>/dev/null; then
            return 0
        fi
    done
    warn "optional '$cmd' not installed (tried: $*); carrying on without it"
}

install_headers() {
    local release arch pkg list
    release=$(uname -r)
    arch=$(dpkg --print-architecture)
    if headers_installed "$release" "$arch"; then
        return 0
    fi
    apt_update_once
    list=$(mktemp)
    apt-cache search linux-headers >"$list"
    if ! pkg=$(pick_headers "$release" "$arch" "$list"); then
        rm -f "$list"
        warn "no kernel headers package fits $release/$arch: BPF probes will be unavailable"
        return 0
    fi
    rm -f "$list"
    if [ "$pkg" != "linux-headers-$release" ]; then
        say "no headers package for kernel $release; using $pkg (txtop merges it at run time)"
    fi
    apt_install "$pkg" || warn "could not install $pkg: BPF probes will be unavailable"
}

mount_tracefs() {
    local dir=/sys/kernel/tracing
    [ -d "$dir" ] || return 0
    if [ -z "$(ls -A "$dir" 2>/dev/null)" ]; then
        say "mounting tracefs at $dir"
        mount -t tracefs nodev "$dir" || warn "could not mount tracefs at $dir"
    fi
}

# ---------------------------------------------------------------- virtualenv and launcher

venv_usable() {
    [ -x "$VENV/bin/python" ] && [ -f "$VENV/pyvenv.cfg" ] || return 1
    grep -qE '^include-system-site-packages *= *true' "$VENV/pyvenv.cfg" || return 1
    [ "$(readlink -f "$VENV/bin/python")" = "$(readlink -f "$SYS_PYTHON")" ] || return 1
    # A venv copied from another checkout keeps that checkout's paths in its scripts.
    if [ -f "$STAMP" ] && [ "$(sed -n 2p "$STAMP")" != "$VENV" ]; then
        return 1
    fi
}

ensure_venv() {
    if [ -e "$VENV" ] && ! venv_usable; then
        say "recreating $VENV (other Python, no system site packages, or moved)"
        rm -rf -- "$VENV"
    fi
    if [ ! -e "$VENV" ]; then
        say "creating $VENV"
        "$SYS_PYTHON" -m venv --system-site-packages "$VENV"
    fi
    "$VENV/bin/python" -c 'import bcc' 2>/dev/null ||
        die "$VENV cannot import bcc: is python3-bpfcc installed for $SYS_PYTHON?"
    local want
    want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"$'\n'"$VENV"
    if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$want" ]; then
        say "pip install -e '.[test]'"
        (cd "$REPO" && PIP_NO_INPUT=1 "$VENV/bin/python" -m pip install \
            --disable-pip-version-check -q -e '.[test]')
        printf '%s\n' "$want" >"$STAMP"
    fi
}

install_launcher() {
    local want tmp
    want=$(printf '#!/bin/sh\n# Written by %s/setup.sh\nexec '"'"'%s'"'"' "$@"' "$REPO" "$VENV/bin/txtop")
    if [ -f "$LAUNCHER" ] && [ "$(cat "$LAUNCHER")" = "$want" ] &&
        [ "$(stat -c %a "$LAUNCHER")" = 755 ]; then
        return 0
    fi
    say "writing $LAUNCHER"
    mkdir -p "$(dirname "$LAUNCHER")"
    tmp=$(mktemp "$LAUNCHER.XXXXXX")
    printf '%s\n' "$want" >"$tmp"
    chmod 0755 "$tmp"
    mv -f -- "$tmp" "$LAUNCHER"
}

set_up() {
    case "$REPO" in
        *"'"* | *$'\n'*) die "the checkout's path must not contain quotes or newlines: $REPO" ;;
    esac
    say "setting up in $REPO"
    install_packages
    install_headers
    mount_tracefs
    ensure_venv
    install_launcher
    say "set-up done in ${SECONDS}s"
}

# ---------------------------------------------------------------- actions

run_tests() {
    cd "$REPO"
    local lint_rc=0 rc=0
    say "ruff check ."
    "$VENV/bin/ruff" check . || lint_rc=$?
    say "mypy and import-layer contracts (scripts/static_checks.py)"
    "$VENV/bin/python" scripts/static_checks.py || lint_rc=$?
    say "pytest -q -ra $*"
    "$VENV/bin/python" -m pytest -q -ra "$@" || rc=$?
    if [ "$lint_rc" -ne 0 ]; then
        say "static checks found problems (see above)"
        [ "$rc" -ne 0 ] || rc=1
    fi
    exit "$rc"
}

start() {
    local help
    if ! help=$("$VENV/bin/txtop" --help 2>&1); then
        printf '%s\n' "$help" | tail -n 5 >&2
        die "txtop does not start (see above)"
    fi
    if [ $# -eq 0 ] && [[ $help == *--demo* ]]; then
        set -- --demo
    fi
    say "starting: txtop $*"
    exec "$VENV/bin/txtop" "$@"
}

main() {
    if [ "${1-}" = --pick-headers ]; then
        [ $# -eq 4 ] || die "usage: $0 --pick-headers UNAME_R ARCH FILE"
        pick_headers "$2" "$3" "$4"
        return
    fi
    if [ "$(id -u)" -ne 0 ]; then
        printf '[txtop] error: run as root (sudo %s)\n' "$0" >&2
        exit 2
    fi
    case "${1-}" in
        test)
            shift
            set_up
            install_test_packages
            run_tests "$@"
            ;;
        --no-start)
            set_up
            ;;
        *)
            set_up
            start "$@"
            ;;
    esac
}

main "$@"
