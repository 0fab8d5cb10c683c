# Sourced: starts `enrichd serve --sandbox` (gRPC and HTTP on free loopback
# ports) and sets $port (HTTP) and $server; stopped when the script exits.
cargo build --locked --bin enrichd
# ENRICHD_DATA_DIR: a data directory made beforehand (keys in its ledger).
data=${ENRICHD_DATA_DIR:-$(mktemp -d)}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
grpc=$(free_port)
target/debug/enrichd serve --sandbox --data-dir "$data" --listen "127.0.0.1:$grpc" \
  --http-listen "127.0.0.1:$port" > "$data/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
