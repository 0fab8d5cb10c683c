# syntax=docker/dockerfile:1
# Build: docker build -t enrichd .
# Keys:  docker run --rm -v enrichd-data:/var/lib/enrichd -e ENRICHD__PRIVACY__HASH_KEY=... \
#            enrichd keys create --name crm --scopes enrich
# Run:   docker run -v enrichd-data:/var/lib/enrichd -p 50051:50051 -p 9464:9464 \
#            -e ENRICHD__PRIVACY__HASH_KEY=... enrichd
# Every call needs "authorization: Bearer <key>" (auth.required = true). For
# TLS, mount PEM files and set ENRICHD__SERVER__TLS__CERT / __KEY.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The registry and target directory are kept between builds (BuildKit), so
# a source edit does not rebuild the dependencies.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin enrichd \
    && cp target/release/enrichd /usr/local/bin/enrichd

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin enrichd \
    && mkdir -p /var/lib/enrichd && chown 10001 /var/lib/enrichd
COPY --from=build /usr/local/bin/enrichd /usr/local/bin/enrichd
COPY config /etc/enrichd
USER 10001
ENV ENRICHD__SERVER__LISTEN=0.0.0.0:50051 \
    ENRICHD__AUTH__REQUIRED=true \
    ENRICHD__SERVER__METRICS_LISTEN=0.0.0.0:9464 \
    ENRICHD__SERVER__HTTP_LISTEN=0.0.0.0:8080 \
    ENRICHD__LOG__FORMAT=json \
    ENRICHD__STORAGE__DATA_DIR=/var/lib/enrichd
VOLUME /var/lib/enrichd
# gRPC, metrics, JSON over HTTP. /etc/enrichd/enrichd.toml (the shipped
# settings, copied above) is read by default; mount your own over it.
EXPOSE 50051 9464 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["enrichd", "health", "--addr", "127.0.0.1:50051"]
ENTRYPOINT ["enrichd"]
CMD ["serve"]
