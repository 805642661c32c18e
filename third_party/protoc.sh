#!/bin/sh
# Debian's protoc (protobuf-compiler), matching the libprotobuf that binaries link.
exec /usr/bin/protoc "$@"
