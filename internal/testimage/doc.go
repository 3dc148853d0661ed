// Package testimage builds deterministic OCI/Docker test images from the
// Debian packages of this machine and serves them from in-process registries.
//
// Images are built in memory: an FS tree serialises to a sorted tar with fixed
// mtimes (Epoch) and numeric owners, layers are compressed once (gzip, zstd or
// none) and configs carry no host data, so the same packages give the same
// digests. Root filesystems come from .debs fetched with `apt-get download`
// into a cache directory and unpacked with `dpkg-deb -x`; shared libraries
// are found with ldd and taken from the packages that ship them. Small static
// helpers (pgrep, ipcs, pause, nnp) are compiled from csrc/ with gcc -static.
//
// Mirror scheme for critest: every critest image is pushed under its upstream
// repository path without the host (registry.k8s.io/pause:3.9 -> pause:3.9,
// docker.io/library/busybox:1 -> library/busybox:1), so a single local
// registry can be the mirror endpoint of all upstream hosts; MirrorCollisions
// verifies no two hosts need different images at one path.
package testimage
