# shellcheck shell=bash
# Sourced by .ci/run: starts a throwaway PostgreSQL cluster for the
# storage-postgres tests and exports its DSN. PostgreSQL refuses to run as
# root, so as root the cluster belongs to the `postgres` user. The cluster
# lives in a temporary directory, listens on 127.0.0.1 and a socket in that
# directory only, and is stopped (and removed) when the sourcing shell exits.
#
#   . .ci/postgres.sh            # exports SOTTO_POSTGRES_DSN, SOTTO_REQUIRE_POSTGRES=1
#   sotto_pg_stop                # optional: stop it earlier
sotto_pg_bindir() {
	local d
	d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	if [ -z "$d" ] && command -v pg_config >/dev/null; then d=$(pg_config --bindir); fi
	echo "$d"
}
if [ -z "$(sotto_pg_bindir)" ] || [ ! -x "$(sotto_pg_bindir)/initdb" ]; then
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql
fi
SOTTO_PG_BIN=$(sotto_pg_bindir)
SOTTO_PG_DIR=$(mktemp -d /tmp/sotto-pg.XXXXXX)
sotto_pg_as() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres: "$SOTTO_PG_DIR"; fi
chmod 700 "$SOTTO_PG_DIR"
# A random password: the tests connect with password authentication, as an
# operator's node would, so a leak of credentials into logs can be tested.
SOTTO_PG_PASS=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$SOTTO_PG_PASS" >"$SOTTO_PG_DIR/pw"
if [ "$(id -u)" = 0 ]; then chown postgres: "$SOTTO_PG_DIR/pw"; fi
sotto_pg_as "$SOTTO_PG_BIN/initdb" -D "$SOTTO_PG_DIR/data" -U sotto --pwfile="$SOTTO_PG_DIR/pw" \
	-A scram-sha-256 --no-instructions >"$SOTTO_PG_DIR/initdb.log" 2>&1 ||
	{ cat "$SOTTO_PG_DIR/initdb.log"; exit 1; }
rm -f "$SOTTO_PG_DIR/pw"
# A free loopback port below the kernel's ephemeral range (as
# internal/localnet picks them), so no outgoing connection takes it first.
SOTTO_PG_PORT=$(python3 -c '
import random, socket
for _ in range(200):
    p = random.randint(20000, 31999)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        s.close()
')
sotto_pg_as "$SOTTO_PG_BIN/pg_ctl" -D "$SOTTO_PG_DIR/data" -l "$SOTTO_PG_DIR/server.log" -w -t 60 \
	-o "-c listen_addresses=127.0.0.1 -p $SOTTO_PG_PORT -k $SOTTO_PG_DIR -c max_connections=300 -c fsync=on" start >/dev/null ||
	{ cat "$SOTTO_PG_DIR/server.log"; exit 1; }
sotto_pg_stop() {
	if [ -n "${SOTTO_PG_DIR:-}" ] && [ -d "$SOTTO_PG_DIR/data" ]; then
		sotto_pg_as "$SOTTO_PG_BIN/pg_ctl" -D "$SOTTO_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
		rm -rf "$SOTTO_PG_DIR"
	fi
}
trap sotto_pg_stop EXIT
export SOTTO_POSTGRES_DSN="postgres://sotto:$SOTTO_PG_PASS@127.0.0.1:$SOTTO_PG_PORT/postgres?sslmode=disable"
export SOTTO_REQUIRE_POSTGRES=1
echo "postgres: throwaway cluster on 127.0.0.1:$SOTTO_PG_PORT ($SOTTO_PG_DIR)"
