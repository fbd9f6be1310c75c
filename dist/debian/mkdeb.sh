#!/bin/sh
# Builds posthorn's Debian package with dpkg-deb (make deb runs it): lays
# out the package tree under $STAGE, writes DEBIAN/ (control, conffiles,
# md5sums, maintainer scripts) and builds $OUT. Works as root and as any
# other user: dpkg-deb --root-owner-group makes every file root's. No
# network: the Go modules come from the module cache, for their licenses.
#
# Environment: VERSION, BIN (the binary to ship), MANDIR (rendered pages),
# STAGE (a scratch directory), OUT (the .deb), MAINTAINER, SOURCE_DATE_EPOCH.
set -eu
umask 022
: "${VERSION:?}" "${BIN:?}" "${MANDIR:?}" "${STAGE:?}" "${OUT:?}" "${MAINTAINER:?}" "${SOURCE_DATE_EPOCH:?}"
top=$(cd "$(dirname "$0")/../.." && pwd)
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
BIN=$(abs "$BIN") MANDIR=$(abs "$MANDIR") STAGE=$(abs "$STAGE") OUT=$(abs "$OUT")
deb=$top/dist/debian
arch=$(dpkg --print-architecture)

rm -rf "$STAGE"
r=$STAGE/debian/posthorn # where dpkg-shlibdeps expects a package's tree
mkdir -p "$r"

# The programs: one binary, the other names link to it.
install -D -m 0755 "$BIN" "$r/usr/sbin/sendmail"
# What dh_strip removes besides the symbols (the Go linker drops those).
strip --remove-section=.comment --remove-section=.note "$r/usr/sbin/sendmail"
install -d -m 0755 "$r/usr/bin" "$r/usr/lib" "$r/usr/libexec/posthorn"
for n in mailq newaliases hoststat purgestat; do
	ln -s ../sbin/sendmail "$r/usr/bin/$n"
done
ln -s ../sbin/sendmail "$r/usr/lib/sendmail"
ln -s ../../sbin/sendmail "$r/usr/libexec/posthorn/mail.local"

# Configuration (a conffile) and the unit. The queue is made by postinst.
install -D -m 0644 "$top/conf/sendmail.cf" "$r/etc/mail/sendmail.cf"
install -D -m 0644 "$top/dist/posthorn.service" "$r/lib/systemd/system/posthorn.service"

# Manual pages.
for p in "$MANDIR"/*.[1-8]; do
	s=${p##*.}
	install -D -m 0644 "$p" "$r/usr/share/man/man$s/${p##*/}"
	gzip -9n "$r/usr/share/man/man$s/${p##*/}"
done
ln -s hoststat.8.gz "$r/usr/share/man/man8/purgestat.8.gz"

# Documentation: README, the default sendmail.cf for comparison, the
# changelog and the copyright file with the licenses of what is compiled in.
doc=$r/usr/share/doc/posthorn
install -d -m 0755 "$doc"
gzip -9n < "$top/README.md" > "$doc/README.md.gz"
install -m 0644 "$top/conf/sendmail.cf" "$doc/sendmail.cf"
date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")
commit=$(git -C "$top" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
{
	printf 'posthorn (%s) unstable; urgency=medium\n\n' "$VERSION"
	printf '  * Built from the posthorn tree at commit %s with make deb.\n\n' "$commit"
	printf ' -- %s  %s\n' "$MAINTAINER" "$date"
} | gzip -9n > "$doc/changelog.gz"
{
	cat "$deb/copyright.in"
	printf '\nThe Go standard library (%s):\n\n' "$(go version | cut -d' ' -f3)"
	sed 's/^/    /' "$(go env GOROOT)/LICENSE"
	go version -m "$BIN" | awk '$1 == "dep" { print $2 }' | while read -r mod; do
		dir=$(cd "$top" && go list -m -f '{{.Dir}}' "$mod")
		ver=$(cd "$top" && go list -m -f '{{.Version}}' "$mod")
		lic=
		for f in LICENSE LICENSE.txt LICENSE.md COPYING; do
			[ -f "$dir/$f" ] && lic=$dir/$f && break
		done
		[ -n "$lic" ] || { echo "mkdeb: no license file in $dir" >&2; exit 1; }
		printf '\n%s %s:\n\n' "$mod" "$ver"
		sed 's/^/    /; s/[[:space:]]*$//' "$lic"
	done
} > "$doc/copyright"

# Depends: the shared libraries the binary links (libc for user lookups
# through NSS), as dpkg-shlibdeps computes them.
install -d -m 0755 "$r/DEBIAN" # which dpkg-shlibdeps looks for
printf 'Source: posthorn\n\nPackage: posthorn\nArchitecture: any\n' > "$STAGE/debian/control"
depends=$(cd "$STAGE" && dpkg-shlibdeps -O debian/posthorn/usr/sbin/sendmail | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "mkdeb: dpkg-shlibdeps gave no dependencies" >&2; exit 1; }

for s in preinst postinst prerm postrm; do
	install -m 0755 "$deb/$s" "$r/DEBIAN/$s"
done
echo /etc/mail/sendmail.cf > "$r/DEBIAN/conffiles"
(cd "$r" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort | xargs md5sum) > "$r/DEBIAN/md5sums"
chmod 0644 "$r/DEBIAN/conffiles" "$r/DEBIAN/md5sums"
size=$(du -s -k --apparent-size --exclude=DEBIAN "$r" | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$arch|" -e "s|@MAINTAINER@|$MAINTAINER|" \
	-e "s|@INSTALLED_SIZE@|$size|" -e "s|@DEPENDS@|$depends|" "$deb/control.in" > "$r/DEBIAN/control"

find "$r" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
dpkg-deb --root-owner-group -Zxz --build "$r" "$OUT"
