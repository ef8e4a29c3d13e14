#!/usr/bin/env bash
# Renders icons/icon.svg into every icon file tauri.conf.json names (and a few more the
# platforms use): PNGs with rsvg-convert (Debian's librsvg2-bin), then icon.ico and icon.icns
# packed by a few lines of Python, since both formats may hold plain PNGs and Debian's
# ImageMagick cannot write ICNS. Run it after changing icon.svg; the outputs are committed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v rsvg-convert >/dev/null || { echo "rsvg-convert not found: apt-get install librsvg2-bin" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
for size in 16 24 32 48 64 128 256 512 1024; do
    rsvg-convert -w "$size" -h "$size" icon.svg -o "$tmp/$size.png"
done
cp "$tmp/32.png" 32x32.png
cp "$tmp/64.png" 64x64.png
cp "$tmp/128.png" 128x128.png
cp "$tmp/256.png" 128x128@2x.png
cp "$tmp/512.png" icon.png

python3 - "$tmp" <<'PY'
import struct, sys
tmp = sys.argv[1]
png = lambda n: open(f"{tmp}/{n}.png", "rb").read()

# ICO: a directory of PNG images (Windows Vista and later read PNG entries).
sizes = [16, 24, 32, 48, 64, 128, 256]
entries, blobs = b"", b""
offset = 6 + 16 * len(sizes)
for s in sizes:
    data = png(s)
    dim = 0 if s >= 256 else s  # 0 means 256 in the ICO directory
    entries += struct.pack("<BBBBHHII", dim, dim, 0, 0, 1, 32, len(data), offset)
    blobs += data
    offset += len(data)
open("icon.ico", "wb").write(struct.pack("<HHH", 0, 1, len(sizes)) + entries + blobs)

# ICNS: OSType chunks holding PNGs (ic07 128, ic08 256, ic09 512, ic10 1024 = 512@2x,
# ic11 32 = 16@2x, ic12 64 = 32@2x, ic13 256 = 128@2x, ic14 512 = 256@2x).
chunks = b""
for kind, s in [(b"ic11", 32), (b"ic12", 64), (b"ic07", 128), (b"ic13", 256),
                (b"ic08", 256), (b"ic14", 512), (b"ic09", 512), (b"ic10", 1024)]:
    data = png(s)
    chunks += kind + struct.pack(">I", 8 + len(data)) + data
open("icon.icns", "wb").write(b"icns" + struct.pack(">I", 8 + len(chunks)) + chunks)
PY
echo "icons written to $(pwd)"
