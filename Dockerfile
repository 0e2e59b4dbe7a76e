# Tollgate container image: the `tollgate` binary on Debian slim, run as an
# unprivileged user.
#
#   docker build -t tollgate .
#   docker run -p 8080:8080 \
#     -v ./tollgate.toml:/etc/tollgate/tollgate.toml:ro \
#     -v ./policies:/etc/tollgate/policies:ro \
#     -v tollgate-data:/var/lib/tollgate \
#     -e TOLLGATE_HS256_SECRET -e SHOP_DATABASE_URL tollgate
#
# The config must listen on 0.0.0.0:8080 (not loopback) to be reachable from
# outside the container, keep data_dir = "/var/lib/tollgate" (the volume) and
# take secrets as ${env:NAME} references. server/tests/packaging.rs checks
# that this file stays consistent with the workspace.

FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Every workspace member, and the files they include at compile time
# (the Cedar schema, the demo's policies, the dangerous-functions policy).
COPY Cargo.toml Cargo.lock ./
COPY gateway-core/ gateway-core/
COPY tools/ tools/
COPY server/ server/
COPY tests/ tests/
COPY schemas/ schemas/
COPY examples/ examples/
COPY policies/ policies/
RUN cargo build --release --locked -p tollgate \
 && install -m 0755 target/release/tollgate /usr/local/bin/tollgate

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tollgate \
 && useradd --system --uid 10001 --gid tollgate --home-dir /var/lib/tollgate --shell /usr/sbin/nologin tollgate \
 && install -d -o tollgate -g tollgate -m 0700 /var/lib/tollgate \
 && install -d -m 0755 /etc/tollgate
COPY --from=builder /usr/local/bin/tollgate /usr/local/bin/tollgate
USER tollgate:tollgate
WORKDIR /var/lib/tollgate
VOLUME ["/var/lib/tollgate"]
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tollgate"]
CMD ["serve", "--config", "/etc/tollgate/tollgate.toml"]
