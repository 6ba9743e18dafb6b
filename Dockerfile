# syntax=docker/dockerfile:1
# http-autoinstrument container image (used by deployments/kubernetes).
#
#   docker build -t REGISTRY/http-autoinstrument:0.1.0 .
#   docker push REGISTRY/http-autoinstrument:0.1.0     # then set `image:` in the DaemonSet
#
# Stage 1 builds the eBPF probes and the agent with Debian 12's own toolchain, exactly as
# scripts/setup.sh does on a host: rustc-web (Rust + LLVM 22) and bpf-linker built against it.
# Stage 2 is a minimal runtime with only glibc and libgcc: the agent is one binary with the
# probes embedded. To reuse probes built elsewhere, copy them in and set
# HTTP_AUTOINSTRUMENT_PROBES=/path/to/http-autoinstrument-probes for the agent build (host/build.rs).

FROM debian:12 AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      rustc-web cargo-web rust-web-src libstd-rust-web-dev-bpf llvm-22-dev libpolly-22-dev \
      zlib1g-dev libzstd-dev pkg-config ca-certificates gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PATH="/root/.cargo/bin:/usr/lib/llvm-22/bin:${PATH}"
RUN LLVM_SYS_221_PREFIX=/usr/lib/llvm-22 LLVM_PREFIX=/usr/lib/llvm-22 \
    cargo install --locked bpf-linker@0.13.0 --no-default-features --features llvm-22

WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# .cargo/config.toml sets how the allocator (mimalloc) is compiled; every workspace member must
# be present for cargo to read the workspace, even those not built here (bench).
COPY .cargo .cargo
COPY ebpf ebpf
COPY host host
COPY bench bench
# The plugin row layouts, and what `plugin new` copies into projects.
COPY plugin-layout plugin-layout
COPY wit wit
COPY guest-sdk guest-sdk
COPY scripts/build-ebpf.sh scripts/build-ebpf.sh
ENV CARGO_TARGET_DIR=/build
RUN scripts/build-ebpf.sh /build/http-autoinstrument-probes \
 && HTTP_AUTOINSTRUMENT_PROBES=/build/http-autoinstrument-probes \
    cargo build --release --locked -p http-autoinstrument --bin http-autoinstrument \
 && /build/release/http-autoinstrument --version

# glibc + libgcc, no shell, no package manager. Runs as root: the capabilities the agent needs
# are granted by the DaemonSet (or `docker run --cap-add`), never privileged mode.
FROM gcr.io/distroless/cc-debian12
COPY --from=build /build/release/http-autoinstrument /usr/local/bin/http-autoinstrument
COPY deployments/config.example.yaml /usr/local/share/http-autoinstrument/config.example.yaml
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/http-autoinstrument"]
CMD ["run"]
