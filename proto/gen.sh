#!/bin/sh
# Regenerates proto/*.pb.go from proto/*.proto.
#
# protoc-gen-go is built from the google.golang.org/protobuf version pinned in
# go.mod, and protoc comes from Debian's protobuf-compiler, so that a given
# tree always generates the same files; CI reruns this and fails on a diff.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! command -v protoc >/dev/null 2>&1; then
	echo "gen.sh: protoc not found, installing protobuf-compiler" >&2
	apt-get install -y protobuf-compiler >&2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go

# Paths are given relative to the module root so that the files register as
# "proto/<name>.proto": CRIU's own Go bindings (go-criu) register the bare
# names, and both may be linked into one test binary.
# Generate aside and swap in, so that a concurrent build never sees the
# package half-written and files of deleted .protos go away.
mkdir "$tmp/out"
protoc -I . \
	--plugin=protoc-gen-go="$tmp/protoc-gen-go" \
	--go_out="$tmp/out" --go_opt=module=github.com/gockpt/gockpt \
	proto/*.proto
for f in proto/*.pb.go; do
	[ -e "$tmp/out/$f" ] || rm -f "$f"
done
for f in "$tmp"/out/proto/*.pb.go; do
	cmp -s "$f" "proto/${f##*/}" || cp "$f" "proto/${f##*/}"
done
