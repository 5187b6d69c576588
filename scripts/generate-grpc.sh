#!/usr/bin/env bash
# Regenerates Sources/GRPCShim/Generated/ from the .proto files in
# Sources/GRPCShim/Protos/ with protoc (Debian: protobuf-compiler, libprotobuf-dev) and the
# Swift plugins of the package's own dependencies (swift-protobuf's
# protoc-gen-swift, grpc-swift-protobuf's protoc-gen-grpc-swift-2).
# The generated code is committed: building the plugins takes minutes, so
# ordinary builds and CI never run this.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v protoc >/dev/null && [ -f /usr/include/google/protobuf/any.proto ] || { echo "protoc or the well-known types missing: apt-get install protobuf-compiler libprotobuf-dev" >&2; exit 1; }
scratch=.build-protoc
swift build -c release --scratch-path "$scratch" --product protoc-gen-swift
swift build -c release --scratch-path "$scratch" --product protoc-gen-grpc-swift-2
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)
out=Sources/GRPCShim/Generated
rm -rf "$out"
mkdir -p "$out"
protos=$(cd Sources/GRPCShim/Protos && find . -name '*.proto' | sed 's|^\./||' | sort)
# protoc finds google/protobuf/*.proto (well-known types) in /usr/include.
(cd Sources/GRPCShim/Protos && protoc \
  --plugin=protoc-gen-swift="$bin/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift="$bin/protoc-gen-grpc-swift-2" \
  -I . -I /usr/include \
  --swift_out="$OLDPWD/$out" --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
  --grpc-swift_out="$OLDPWD/$out" \
  --grpc-swift_opt=Visibility=Public,Server=true,Client=true,FileNaming=PathToUnderscores \
  $protos)
# The messages and the service stub live in one module (GRPCShim).
ls "$out"
