# syntax=docker/dockerfile:1
# The bridge in a small image: built with the pinned Rust toolchain, run as a non-root user on
# Debian slim (glibc, CA certificates for HTTPS webhooks, curl for the health check).

FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY admin-api admin-api
COPY bridge bridge
COPY tests tests
# Every workspace member must be present for cargo to load the workspace, the benchmarks' too.
COPY bench/loadgen bench/loadgen
COPY bench/bare bench/bare
COPY migrations migrations
RUN cargo build --release --locked -p bridge \
    && strip target/release/bridge

FROM debian:bookworm-20250113-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/bridge --create-home bridge
COPY --from=build /src/target/release/bridge /usr/local/bin/bridge
USER bridge
WORKDIR /var/lib/bridge
# The admin listener binds every interface inside the container; publish it to loopback only.
ENV BRIDGE_LISTEN=0.0.0.0:3000 \
    BRIDGE_ADMIN_LISTEN=0.0.0.0:3001 \
    DATABASE_URL=sqlite:///var/lib/bridge/bridge.db
EXPOSE 3000 3001
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:3000/readyz"]
ENTRYPOINT ["bridge"]
CMD ["serve"]
