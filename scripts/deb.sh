#!/usr/bin/env bash
# `make deb`: libnginx-mod-http-txval_<version>_<arch>.deb, laid out like
# Debian's own libnginx-mod-* packages, built with dpkg-deb:
#
#   /usr/lib/nginx/modules/ngx_http_txval_module.so
#   /usr/share/nginx/modules-available/mod-http-txval.conf   (load_module)
#   /usr/share/doc/libnginx-mod-http-txval/: copyright (LICENSE, in
#   Debian's machine-readable format), changelog.Debian.gz
#   (packaging/changelog), README.md.gz, docs/ (*.md gzipped),
#   examples/*.conf
#   postinst/prerm/postrm: the /etc/nginx/modules-enabled/50-mod-http-txval.conf
#   link, as dh_nginx writes them (packaging/)
#   Depends: the nginx ABI the module was built for (nginx-dev's
#   nginx:abi, e.g. nginx-abi-1.22.1-7, which Debian's nginx Provides) and
#   the shared libraries it links (dpkg-shlibdeps: libhiredis0.14, libpq5,
#   libc6)
#
#   scripts/deb.sh [OUTDIR]            (default build/)
#
# The version is the one at the top of packaging/changelog (whose upstream
# part must be packaging/VERSION), the Maintainer field the one in
# packaging/control.in.
#
# Environment: TXVAL_MODULE (the .so, default build/ngx_http_txval_module.so,
# built by `make` for Debian's nginx). Prints the path of the .deb last.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
module=${TXVAL_MODULE:-$top/build/ngx_http_txval_module.so}
out=${1:-$top/build}
pkg=libnginx-mod-http-txval
abi_file=/usr/share/nginx/src/debian/libnginx-mod.abisubstvars

die() {
    echo "deb.sh: $*" >&2
    exit 1
}

# a package for Debian's nginx only: not a custom nginx, not a sanitizer
# build
[ -z "${NGINX_SRC:-}" ] \
    || die "NGINX_SRC is set: the package is for Debian's nginx (run make deb without it)"
[ -z "${SANITIZE:-}" ] \
    || die "SANITIZE is set: a sanitizer build is not for packaging"
[ -f "$module" ] || die "$module missing: run make first"
if readelf -d "$module" | grep -q 'NEEDED.*lib[atm]san'; then
    die "$module links a sanitizer runtime: rebuild with plain make"
fi

# the ABI: what nginx-dev (the headers the module was built with) says,
# which must be what the installed nginx provides
[ -f "$abi_file" ] || die "$abi_file missing: apt-get install nginx-dev"
abi=$(sed -n 's/^nginx:abi=//p' "$abi_file")
[ -n "$abi" ] || die "no nginx:abi in $abi_file"

provides=$(dpkg-query -W -f='${Provides}' nginx 2>/dev/null || true)
if ! tr ',' '\n' <<< "$provides" | tr -d ' ' | grep -qxF "$abi"; then
    die "nginx-dev is for $abi, the installed nginx provides '${provides:-nothing}': install matching nginx and nginx-dev"
fi

command -v dpkg-parsechangelog > /dev/null \
    || die "dpkg-parsechangelog missing: apt-get install dpkg-dev (scripts/deps.sh deb)"
version=$(dpkg-parsechangelog -l "$top/packaging/changelog" -S Version) \
    || die "packaging/changelog does not parse"
upstream=$(tr -d ' \n' < "$top/packaging/VERSION")
[ "${version%-*}" = "$upstream" ] \
    || die "packaging/changelog is at $version, packaging/VERSION at $upstream: add a changelog entry"
arch=$(dpkg --print-architecture)
deb=$out/${pkg}_${version}_${arch}.deb

stage=$(mktemp -d "${TMPDIR:-/tmp}/txval-deb.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root

install -d -m 0755 "$root/DEBIAN" \
    "$root/usr/lib/nginx/modules" \
    "$root/usr/share/nginx/modules-available" \
    "$root/usr/share/doc/$pkg"

# stripped, as dh_strip would
install -m 0644 "$module" "$root/usr/lib/nginx/modules/ngx_http_txval_module.so"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$root/usr/lib/nginx/modules/ngx_http_txval_module.so"

install -m 0644 "$top/packaging/mod-http-txval.conf" \
    "$root/usr/share/nginx/modules-available/mod-http-txval.conf"
# the copyright file carries LICENSE's text, as its format wants it: each
# line indented by one space, an empty line as " ."
license=$(sed -e 's/^$/./' -e 's/^/ /' "$top/LICENSE")
awk -v text="$license" '$0 == "@LICENSE@" { print text; next } { print }' \
    "$top/packaging/copyright" > "$root/usr/share/doc/$pkg/copyright"
chmod 0644 "$root/usr/share/doc/$pkg/copyright"
gzip -9n < "$top/packaging/changelog" > "$root/usr/share/doc/$pkg/changelog.Debian.gz"
chmod 0644 "$root/usr/share/doc/$pkg/changelog.Debian.gz"
gzip -9n < "$top/README.md" > "$root/usr/share/doc/$pkg/README.md.gz"
chmod 0644 "$root/usr/share/doc/$pkg/README.md.gz"
# what the README links to, beside it
install -d -m 0755 "$root/usr/share/doc/$pkg/docs" "$root/usr/share/doc/$pkg/examples"
for f in "$top"/docs/*; do
    name=$(basename "$f")
    case $name in
        *.md) gzip -9n < "$f" > "$root/usr/share/doc/$pkg/docs/$name.gz" ;;
        *) cp "$f" "$root/usr/share/doc/$pkg/docs/$name" ;;
    esac
done
install -m 0644 "$top"/examples/*.conf "$root/usr/share/doc/$pkg/examples/"
chmod 0644 "$root/usr/share/doc/$pkg"/docs/*

for s in postinst prerm postrm; do
    install -m 0755 "$top/packaging/$s" "$root/DEBIAN/$s"
done

# the libraries: dpkg-shlibdeps wants a debian/control to stand in
shlibs=""
if command -v dpkg-shlibdeps > /dev/null; then
    mkdir -p "$stage/src/debian"
    printf 'Source: txval\n\nPackage: %s\nArchitecture: any\n' "$pkg" \
        > "$stage/src/debian/control"
    # nginx's own symbols come from the nginx binary, not a library
    shlibs=$(cd "$stage/src" && dpkg-shlibdeps -O --warnings=0 \
                 "$root/usr/lib/nginx/modules/ngx_http_txval_module.so" \
                 2> "$stage/shlibdeps.log" | sed -n 's/^shlibs:Depends=//p') \
        || { cat "$stage/shlibdeps.log" >&2; die "dpkg-shlibdeps failed"; }
else
    die "dpkg-shlibdeps missing: apt-get install dpkg-dev (scripts/deps.sh deb)"
fi

for lib in libhiredis0.14 libpq5; do
    grep -q "\\b$lib\\b" <<< "$shlibs" \
        || die "the module does not link $lib (dpkg-shlibdeps: $shlibs)"
done

size=$(du -k -s --exclude=DEBIAN "$root" | cut -f1)

sed -e "s|@VERSION@|$version|" -e "s|@ARCH@|$arch|" \
    -e "s|@DEPENDS@|$abi, $shlibs|" -e "s|@SIZE@|$size|" -e "s|@ABI@|$abi|" \
    "$top/packaging/control.in" > "$root/DEBIAN/control"

(cd "$root" && find usr -type f -exec md5sum {} + | sort -k2) \
    > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/md5sums"

# reproducible: every file dated by the last commit
if epoch=$(git -C "$top" log -1 --format=%ct 2> /dev/null) && [ -n "$epoch" ]; then
    export SOURCE_DATE_EPOCH=$epoch
    find "$root" -exec touch -h -d "@$epoch" {} +
fi

mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb.tmp" > /dev/null
mv -f "$deb.tmp" "$deb"

echo "deb.sh: $(dpkg-deb -f "$deb" Package Version Depends | tr '\n' ' ')" >&2
echo "$deb"
