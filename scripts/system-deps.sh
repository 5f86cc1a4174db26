#!/usr/bin/env bash
# Debian/Ubuntu system libraries the studio needs beyond Python wheels: Qt's offscreen and X11 (xcb)
# platform plugins, Xvfb for screenshots and GUI tests on machines without a screen, and PortAudio for
# sounddevice. Installs only what is missing; needs root (or sudo) and apt-get. A desktop user usually
# has all of these already.
set -euo pipefail
packages=(
  libglib2.0-0 libgl1 libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-render-util0 libxcb-shape0
  xvfb xauth libportaudio2
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "note: not a Debian-like system; make sure Qt 6's libraries and PortAudio are installed" >&2
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "note: missing system packages (${missing[*]}); install them as root: apt-get install ${missing[*]}" >&2
    exit 0
  fi
fi
echo "installing system packages: ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
