#!/usr/bin/env bash
# Start Debian's PostgreSQL on loopback and create a role/database for the tests; prints the URL.
set -euo pipefail
version=$(ls /usr/lib/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | grep -q "^$version main"; then
  pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || true
for _ in $(seq 1 30); do
  su postgres -c "pg_isready -q -h 127.0.0.1" && break
  sleep 1
done
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_roles WHERE rolname='qa0'\" | grep -q 1 || psql -q -c \"CREATE ROLE qa0 LOGIN SUPERUSER PASSWORD 'qa0'\""
su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname='qa0'\" | grep -q 1 || createdb -O qa0 qa0"
echo "postgresql+psycopg://qa0:qa0@127.0.0.1:5432/qa0"
