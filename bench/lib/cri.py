#!/usr/bin/env python3
"""Two CRI image-service calls as kubelet makes them, without crictl: one
gRPC call over a unix socket with curl's HTTP/2.

    cri.py SOCKET pull IMAGE   PullImage; prints the image ref containerd answers
    cri.py SOCKET list         ListImages; exits 0 once the service answers

Requests are encoded by hand (PullImageRequest{image: ImageSpec{image}},
an empty ListImagesRequest); a gRPC status other than 0 is an error.
"""
import struct
import subprocess
import sys
import tempfile


def field(number, payload):
    """A length-delimited protobuf field (wire type 2), payload under 16 KiB."""
    length = len(payload)
    varint = bytes([length]) if length < 0x80 else bytes([(length & 0x7F) | 0x80, length >> 7])
    return bytes([number << 3 | 2]) + varint + payload


def call(socket, method, message):
    frame = b"\0" + struct.pack(">I", len(message)) + message
    with tempfile.NamedTemporaryFile() as body, tempfile.NamedTemporaryFile() as headers:
        body.write(frame)
        body.flush()
        out = subprocess.run(
            ["curl", "-sS", "--http2-prior-knowledge", "--unix-socket", socket, "-D", headers.name,
             "-H", "content-type: application/grpc", "-H", "te: trailers", "--data-binary", "@" + body.name,
             "http://localhost/runtime.v1.ImageService/" + method],
            check=True, capture_output=True).stdout
        # A failed call is "trailers only": its status is among the headers.
        status = [line.strip() for line in open(headers.name, "rb").read().decode(errors="replace").splitlines()
                  if line.lower().startswith(("grpc-status:", "grpc-message:"))]
    failed = any(line.lower().startswith("grpc-status:") and line.split(":", 1)[1].strip() != "0" for line in status)
    if failed or len(out) < 5:
        sys.exit(f"{method}: {' '.join(status) or 'no answer'}")
    return out[5:]


def string_field_1(message):
    """Field 1 of a message, a string (PullImageResponse.image_ref)."""
    i, length, shift = 1, 0, 0
    while True:
        byte = message[i]
        length |= (byte & 0x7F) << shift
        i, shift = i + 1, shift + 7
        if byte < 0x80:
            return message[i:i + length].decode(errors="replace")


def main():
    socket, command = sys.argv[1], sys.argv[2]
    if command == "pull":
        print(string_field_1(call(socket, "PullImage", field(1, field(1, sys.argv[3].encode())))))
    elif command == "list":
        call(socket, "ListImages", b"")
    else:
        sys.exit(f"unknown command {command}")


main()
