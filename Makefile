# The two commands of the README, plus the checks CI runs. Every target installs what it needs.
.PHONY: dev test lint check secrets bench

# Run the nine route functions locally at http://127.0.0.1:9000 on the embedded default stack.
dev:
	@dev/bin/dev

# Run every test against a private stack on free loopback ports.
test:
	@dev/bin/test $(ARGS)

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

# Print fresh 256-bit token secrets as .env lines.
secrets:
	@cargo run --quiet -p devtools --bin gen-secrets

# Measure cold start, latency against the floor, local HTTP throughput, binary size and memory
# of the release binaries side by side; prints a table, writes bench-results/latest.{json,txt}.
bench:
	@dev/bin/bench

# A bounded load test (60 s, 32 clients, login/refresh/register) and the login timing
# comparison, against a private stack this starts and stops; prints both tables.
.PHONY: load
load:
	@dev/bin/load

# Bring a Node-era `users` collection to our shape, against MONGODB_URI / MONGODB_DB. A dry run
# unless ARGS="--apply" (and "--remove-refresh-tokens"); ARGS="--help" explains everything.
.PHONY: migrate-node
migrate-node:
	@cargo run --quiet --release -p migrate --bin migrate-node -- $(ARGS)
