#!/bin/sh
# Prints the version posthorn is built as, for the binary ($v, the greeting,
# Received, -d0.1) and the Debian package: the release in VERSION when the
# tree is at the tag v<VERSION> (or is not a git checkout), otherwise
# <VERSION>+git<commits>.g<hash>, with .dirty when files are modified. The
# commit count makes every later build of main sort higher for dpkg.
set -eu
cd "$(dirname "$0")/.."
base=$(tr -d ' \n' < VERSION)
if ! command -v git >/dev/null 2>&1 || ! git rev-parse --git-dir >/dev/null 2>&1; then
	echo "$base"
	exit 0
fi
v=$base
if [ "$(git describe --tags --exact-match 2>/dev/null || true)" != "v$base" ]; then
	v="$base+git$(git rev-list --count HEAD).g$(git rev-parse --short=7 HEAD)"
fi
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	v="$v.dirty"
fi
echo "$v"
