#!/usr/bin/env bash
# Installs the system packages FlashGrad links against, only when some are missing; safe to rerun.
set -euo pipefail
packages=(libopenblas-dev liblapacke-dev pkg-config)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "Installing ${missing[*]}"
    sudo_prefix=""
    [ "$(id -u)" -ne 0 ] && sudo_prefix="sudo"
    $sudo_prefix apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_prefix apt-get install -y -qq "${missing[@]}"
fi
