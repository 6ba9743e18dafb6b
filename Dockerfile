# syntax=docker/dockerfile:1
# http-autoinstrument container image (used by deployments/kubernetes).
#
#   docker build -t REGISTRY/http-autoinstrument:0.1.0 .
#   docker push REGISTRY/http-autoinstrument:0.1.0     # then set `image:` in the DaemonSet
#
# Stage `toolchain` is Debian 12's own toolchain, as scripts/setup.sh installs it on a host:
# rustc-web (Rust + LLVM 22) and bpf-linker built against it. Stage `build` builds the eBPF probes
# and the agent with it. The last stage is a minimal runtime with only glibc and libgcc: the agent
# is one binary with the probes embedded. To reuse probes built elsewhere, copy them in and set
# HTTP_AUTOINSTRUMENT_PROBES=/path/to/http-autoinstrument-probes for the agent build (host/build.rs).
#
# RUNTIME_BASE is the runtime stage's base. The default is the image users pull; a machine with no
# registry builds with a local equivalent (scripts/build-image.sh makes one from Debian packages).

ARG RUNTIME_BASE=gcr.io/distroless/cc-debian12

FROM debian:12 AS toolchain
# A build machine behind a TLS-intercepting proxy gives cargo the proxy's CA (unset otherwise):
#   --volume /etc/ssl/certs/ca-certificates.crt:/run/build-ca.crt:ro \
#   --build-arg CARGO_HTTP_CAINFO=/run/build-ca.crt
ARG CARGO_HTTP_CAINFO
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      rustc-web cargo-web rust-web-src libstd-rust-web-dev-bpf llvm-22-dev libpolly-22-dev \
      zlib1g-dev libzstd-dev pkg-config ca-certificates gcc libc6-dev \
 && rm -rf /var/lib/apt/lists/*
ENV PATH="/root/.cargo/bin:/usr/lib/llvm-22/bin:${PATH}"
RUN LLVM_SYS_221_PREFIX=/usr/lib/llvm-22 LLVM_PREFIX=/usr/lib/llvm-22 \
    cargo install --locked bpf-linker@0.13.0 --no-default-features --features llvm-22

FROM toolchain AS build
# An ARG holds for its stage only: cargo downloads here too.
ARG CARGO_HTTP_CAINFO
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# .cargo/config.toml sets how the allocator (mimalloc) is compiled; every workspace member must
# be present for cargo to read the workspace, even those not built here (bench).
COPY .cargo .cargo
COPY ebpf ebpf
COPY host host
# The plugin interface, compiled into the agent's plugin host (host/src/plugins/bindings.rs).
COPY wit wit
COPY bench bench
# The plugin row layouts, and the guest SDKs that `plugin new` copies into projects.
COPY plugin-layout plugin-layout
COPY guest-sdk guest-sdk
COPY scripts/build-ebpf.sh scripts/build-ebpf.sh
ENV CARGO_TARGET_DIR=/build
# The crate downloads and the target directory are build caches, kept by the engine between
# builds (not in any layer), so that a source change recompiles only what it touches; the binary
# is copied out of them into /out without its DWARF (the release profile keeps debug info for
# profiling on a host; the image needs the symbols only, for backtraces).
RUN --mount=type=cache,id=http-autoinstrument-cargo-registry,target=/root/.cargo/registry,sharing=locked \
    --mount=type=cache,id=http-autoinstrument-target,target=/build,sharing=locked \
    scripts/build-ebpf.sh /build/http-autoinstrument-probes \
 && HTTP_AUTOINSTRUMENT_PROBES=/build/http-autoinstrument-probes \
    cargo build --release --locked -p http-autoinstrument --bin http-autoinstrument \
 && mkdir -p /out \
 && objcopy --strip-debug /build/release/http-autoinstrument /out/http-autoinstrument \
 && /out/http-autoinstrument --version

# glibc + libgcc, no shell, no package manager. Runs as root: the capabilities the agent needs
# are granted by the DaemonSet (or `docker run --cap-add`), never privileged mode.
FROM ${RUNTIME_BASE}
COPY --from=build /out/http-autoinstrument /usr/local/bin/http-autoinstrument
COPY deployments/config.example.yaml /usr/local/share/http-autoinstrument/config.example.yaml
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/http-autoinstrument"]
CMD ["run"]
