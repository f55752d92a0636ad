# syntax=docker/dockerfile:1
# Multi-stage build of the waitroom binary. The binary embeds its static files, Lua scripts and
# SQL migrations, so the runtime image needs nothing else but CA certificates.
#
# Builder and runtime are both Debian 12 "bookworm" on purpose: plain `rust:1` follows the newest
# Debian release, and a binary linked against its newer glibc does not start on bookworm-slim.

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds (BuildKit, the default builder).
# target/ is a cache mount, so the binary is copied out of it within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin waitroom \
    && cp target/release/waitroom /usr/local/bin/waitroom

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin waitroom
COPY --from=builder /usr/local/bin/waitroom /usr/local/bin/waitroom
USER waitroom
ENV WAITROOM_BIND=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["waitroom"]
CMD ["serve"]
